"""Encryption at rest and integrity of journal entries.

Payloads are health data: they are sealed with AES-GCM under a key from a keyring, and the
key's id travels inside every sealed blob so keys can rotate (new entries use the current
key; older keys stay in the ring to open what they sealed until ``garde journal rekey`` has
moved everything to the current one). Running without a key is an explicit, loudly logged
opt-out. Every entry also carries a checksum over its stored fields, so a row damaged on disk
(or edited by hand) is quarantined instead of delivered.

Keyring format (a file, or the ``GARDE_JOURNAL_KEYS`` environment variable): one key per
line, ``KEY_ID BASE64_OF_32_BYTES``; the last line is the current key. ``#`` starts a comment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garde.errors import UsageError

log = logging.getLogger("garde.journal")

ENV_KEYS = "GARDE_JOURNAL_KEYS"
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SEALED = b"\x01"
_CLEAR = b"\x00"
_NONCE = 12


class _Unique:
    """Unpredictable, never-repeating tokens without a system call each.

    ``os.urandom`` costs tens of microseconds on some virtual machines, twice per accepted
    write; so each process draws 32 random bytes once and derives tokens with a keyed BLAKE2b
    over a counter (unpredictable without the seed). AES-GCM nonces follow NIST SP 800-38D's
    deterministic construction: a random 8-byte field per process and a 4-byte counter; the
    field is drawn again before the counter could wrap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reseed()
        # A forked child must not repeat its parent (one instance per process: the hook is
        # registered once). Asking getpid() on every token cost a system call each.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._reseed()

    def _reseed(self) -> None:
        self._seed = os.urandom(32)
        self._field = os.urandom(8)
        self._count = itertools.count()

    def _next(self) -> int:
        with self._lock:
            n = next(self._count)
            if n >= 0xFFFFFFFF:
                self._reseed()
                n = next(self._count)
            return n

    def token(self, size: int) -> str:
        n = self._next()
        return hashlib.blake2b(n.to_bytes(8, "big"), key=self._seed, digest_size=size).hexdigest()

    def sortable(self, size: int) -> str:
        """``token(size)`` after the time in milliseconds (12 hex digits): tokens made later
        sort later, so that an index on them grows at its end (a random key lands on a
        random page of the index: one more page written per write, more as the journal
        grows), and no less unpredictable."""
        return f"{int(time.time() * 1000):012x}" + self.token(size)

    def nonce(self) -> bytes:
        n = self._next()
        return self._field + n.to_bytes(4, "big")


unique = _Unique()


class SealError(Exception):
    """A blob cannot be opened: damaged, or sealed with a key the ring does not hold."""


class Keyring:
    """The keys that seal and open payloads; ``current`` seals, all of them open."""

    def __init__(self, keys: Mapping[str, bytes], current: str | None) -> None:
        for key_id, key in keys.items():
            if not _KEY_ID.match(key_id):
                raise UsageError(
                    f"journal key id {key_id!r} is not valid: use 1-64 letters, digits, . _ -"
                )
            if len(key) != 32:
                raise UsageError(
                    f"journal key {key_id!r} has {len(key)} bytes; AES-256-GCM needs 32"
                    " (make one with `garde journal keygen`)"
                )
        if current is not None and current not in keys:
            raise UsageError(f"current journal key {current!r} is not in the keyring")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current
        self.without_keys = False
        """True for ``Keyring.none()``: nothing sealed can be opened, and that is expected."""

    @classmethod
    def none(cls) -> Keyring:
        """No key at all, on purpose: an operator listing the journal without its keys sees
        what is sealed as sealed, not as a missing key to add back."""
        keyring = cls({}, None)
        keyring.without_keys = True
        return keyring

    @classmethod
    def clear(cls) -> Keyring:
        """No encryption: only with an explicit opt-out, and said loudly."""
        log.warning(
            "JOURNAL ENCRYPTION IS OFF: payloads (health data) are stored in clear on disk."
            " Give a key file (--journal-key-file) or GARDE_JOURNAL_KEYS to encrypt them."
        )
        return cls({}, None)

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        keys: dict[str, bytes] = {}
        current = None
        for number, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise UsageError(
                    f"{source}:{number}: expected 'KEY_ID BASE64_KEY' (one key per line)"
                )
            key_id, encoded = parts
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise UsageError(f"{source}:{number}: key {key_id!r} is not base64") from None
            if key_id in keys:
                raise UsageError(f"{source}:{number}: key id {key_id!r} appears twice")
            keys[key_id] = key
            current = key_id
        if current is None:
            raise UsageError(f"{source}: no key found; make one with `garde journal keygen`")
        return cls(keys, current)

    @classmethod
    def load(
        cls, key_file: str | Path | None, keys: str | None = None, allow_clear: bool = False
    ) -> Keyring:
        """The keyring from ``key_file``, else from ``keys`` (the text of ``GARDE_JOURNAL_KEYS``,
        read by ``garde.journal.settings``), else the opt-out."""
        if isinstance(keys, Mapping):  # the signature before garde.journal.settings
            warnings.warn(
                "Keyring.load(key_file, env) is deprecated: pass the keys' text"
                " (load_journal_settings(env).store.keys)",
                DeprecationWarning,
                stacklevel=2,
            )
            keys = keys.get(ENV_KEYS)
        if key_file is not None:
            path = Path(key_file)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise UsageError(
                    f"cannot read journal key file {path}: there is no such file; check the"
                    f" path, or make a key there with `garde journal keygen --key-file {path}`"
                ) from None
            except OSError as exc:
                raise UsageError(f"cannot read journal key file {path}: {exc.strerror}") from None
            return cls.parse(text, str(path))
        if keys:
            return cls.parse(keys, ENV_KEYS)
        if allow_clear:
            return cls.clear()
        raise UsageError(
            "the journal needs an encryption key: give --journal-key-file FILE or set"
            f" {ENV_KEYS} (make a key with `garde journal keygen`), or pass"
            " --journal-no-encryption to store payloads in clear (not for production)"
        )

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str | None, bytes]:
        """``(key_id, blob)``; the blob names its key, so it opens after a rotation."""
        if self.current is None:
            return None, _CLEAR + plaintext
        kid = self.current.encode()
        nonce = unique.nonce()
        body = self._keys[self.current].encrypt(nonce, plaintext, aad)
        return self.current, _SEALED + bytes([len(kid)]) + kid + nonce + body

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if blob[:1] == _CLEAR:
            return blob[1:]
        if blob[:1] != _SEALED or len(blob) < 2:
            raise SealError("unknown payload format")
        size = blob[1]
        key_id = blob[2 : 2 + size].decode(errors="replace")
        rest = blob[2 + size :]
        aead = self._keys.get(key_id)
        if aead is None:
            raise SealError(
                f"sealed with key {key_id!r}, which is not in the keyring: add it back,"
                " then `garde journal retry ID`"
            )
        try:
            return aead.decrypt(rest[:_NONCE], rest[_NONCE:], aad)
        except InvalidTag:
            raise SealError("payload fails authentication (damaged or tampered)") from None

    @staticmethod
    def blob_key_id(blob: bytes) -> str | None:
        if blob[:1] != _SEALED or len(blob) < 2:
            return None
        return blob[2 : 2 + blob[1]].decode(errors="replace")


def new_key_line(key_id: str) -> str:
    """A fresh line for a keyring file."""
    if not _KEY_ID.match(key_id):
        raise UsageError(f"key id {key_id!r} is not valid: use 1-64 letters, digits, . _ -")
    return f"{key_id} {base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}\n"


def checksum(*fields: object) -> str:
    """SHA-256 over the stored fields of an entry, each length-prefixed (no ambiguity)."""
    parts = []
    for value in fields:
        data = value if isinstance(value, bytes) else repr(value).encode()
        parts.append(len(data).to_bytes(8, "big"))
        parts.append(data)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def order_digest(salt: bytes, service: str, ordering_key: str | None) -> str | None:
    """The ordering key as stored: a keyed digest (equality is all the journal needs).

    The salt lives with the journal, so this hides a NISS or RID from a casual reader of the
    file, not from someone who holds the whole database and guesses identifiers.
    """
    if ordering_key is None:
        return None
    keyed = _KEYED.get(salt)
    if keyed is None:
        keyed = _KEYED[salt] = hmac.new(salt, digestmod=hashlib.sha256)
    mac = keyed.copy()  # the key schedule and digest look-up done once per salt
    mac.update(service.encode() + b"\x00" + ordering_key.encode())
    return mac.hexdigest()[:32]


_KEYED: dict[bytes, hmac.HMAC] = {}
"""One keyed HMAC per journal salt (a process opens few journals), copied for each key."""
