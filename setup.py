"""Builds garde's one compiled part, the gateway's native data plane (docs/gateway-data-plane.md).

Everything else is declared in pyproject.toml. The extension is optional: where it cannot be
built (no C compiler, not Linux), garde installs without it and the gateway serves with its
Python fast path instead (``fast_path: auto``). Where OpenSSL's headers are found, the plane
also speaks TLS to the data centers; without them, https data centers are Python's.
"""

import os
import sys
import sysconfig

from setuptools import Extension, setup


def _openssl_headers() -> bool:
    places = ["/usr/include", "/usr/local/include", sysconfig.get_paths()["include"]]
    return any(os.path.exists(os.path.join(p, "openssl", "ssl.h")) for p in places)


extensions = []
if sys.platform.startswith("linux"):  # epoll and eventfd
    tls = _openssl_headers()
    extensions.append(
        Extension(
            "garde.gateway._plane",
            ["src/garde/gateway/_plane.c"],
            define_macros=[("GARDE_PLANE_TLS", "1")] if tls else [],
            libraries=["ssl", "crypto"] if tls else [],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
