"""Tokens and nonces: unpredictable, and never repeated, not even by a forked child."""

from __future__ import annotations

import os
import sys

import pytest

from garde.journal.sealing import order_digest, unique


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_a_forked_child_does_not_repeat_its_parents_tokens_or_nonces() -> None:
    unique.token(8)  # the parent has drawn some already
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it draws next, then leave at once
        try:
            os.write(write, (unique.token(8) + unique.nonce().hex()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = unique.token(8) + unique.nonce().hex()
    assert len(child) == len(parent) == 16 + 24
    assert child[:16] != parent[:16]  # the token
    assert child[16:32] != parent[16:32]  # the nonce's random field, drawn again


def test_stored_ordering_keys_keep_their_form() -> None:
    """Journals on disk hold these digests: a change would split a key's entries in two."""
    salt = b"\x01" * 32
    assert order_digest(salt, "recipe-executor", "BEP0ABCDEFGH") == (
        "51715164ab3e02ce3d857bf09f32457d"
    )
    assert order_digest(salt, "recipe-executor", None) is None
