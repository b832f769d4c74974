"""Builds garde's one compiled part, the gateway's native data plane (docs/gateway-data-plane.md).

Everything else is declared in pyproject.toml. The extension is optional: where it cannot be
built (no C compiler, not Linux), garde installs without it and the gateway serves with its
Python fast path instead (``fast_path: auto``).
"""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform.startswith("linux"):  # epoll and eventfd
    extensions.append(
        Extension(
            "garde.gateway._plane",
            ["src/garde/gateway/_plane.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
