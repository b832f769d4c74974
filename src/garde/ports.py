"""Listening on a port, and what to say when it cannot be had.

Every server garde starts (the gateway, the monitor, the lab) listens through here or says
the same words: a port in use, a privileged port or an address the machine does not have is
a ``UsageError`` naming the address and what to do, never a traceback.
"""

from __future__ import annotations

import errno
import socket

from garde.errors import UsageError


def listen_problem(host: str, port: int, exc: OSError, flag: str = "--port") -> str:
    """What to tell someone whose server cannot listen on ``host:port`` (``flag`` chooses
    another port)."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {shown}: the port is in use (another garde, or another"
            f" program: `ss -ltnp` shows which); stop it or choose another with {flag}"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {shown}: permission denied (ports under 1024 need privileges);"
            f" choose a port above 1024 with {flag}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {shown}: this machine has no such address; use 127.0.0.1, ::1"
            " or one of its own addresses with --host"
        )
    return f"cannot listen on {shown}: {exc.strerror or exc}"


def bind_tcp(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: one the system picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise UsageError(listen_problem(host, port, exc)) from None
    # asyncio sets TCP_NODELAY only on sockets made with proto IPPROTO_TCP, and
    # create_server makes them with proto 0: without this, the connections accepted here
    # (which inherit it) wait for delayed ACKs, 40 ms per small answer on keep-alive.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
