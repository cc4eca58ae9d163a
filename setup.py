"""
Packaging for twisted_ws.

The C accelerator (masking and frame scanning) is optional: when it cannot be
compiled the install still succeeds and the pure-Python code is used.
"""

import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the accelerator when a compiler is there; never fail the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # pragma: no cover - depends on the machine
            self._warn(e)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # pragma: no cover - depends on the machine
            self._warn(e)

    @staticmethod
    def _warn(e: Exception) -> None:
        sys.stderr.write(
            f"warning: twisted_ws C accelerator not built ({e}); "
            "using the pure-Python code\n"
        )


extModules = []
if os.environ.get("TWISTED_WS_NO_EXTENSION", "") in ("", "0"):
    extModules.append(
        Extension(
            "twisted_ws.core._speedups",
            sources=["twisted_ws/core/_speedups.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    )

with open("README.md", encoding="utf-8") as f:
    longDescription = f.read()

setup(
    name="twisted_ws",
    version="0.1.0",
    description="A complete, fast, hardened RFC 6455 WebSocket implementation for Twisted",
    long_description=longDescription,
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    python_requires=">=3.11",
    # Editable installs (pip install -e .) must keep twistd's plugin: Twisted
    # finds plugins in every sys.path entry that holds twisted/plugins/, so
    # the project root itself has to be on sys.path.  Naming the root as the
    # package directory makes the layout "simple" for setuptools' editable
    # build, which then writes a plain .pth with the root (its default
    # "lenient" mode; no deprecated "compat" mode; "strict" mode works too,
    # its link tree being such an entry).  Without it setuptools
    # installs an import hook instead, which imports the packages but is no
    # sys.path entry, so twistd said "Unknown command: websocket".  Regular
    # installs are unchanged: the plugin file lands in site-packages'
    # twisted/plugins/.  .ci/run checks both.
    package_dir={"": "."},
    packages=find_packages(include=["twisted_ws", "twisted_ws.*"]) + ["twisted.plugins"],
    package_data={"twisted_ws": ["py.typed"], "twisted.plugins": ["*.py"]},
    include_package_data=False,
    zip_safe=False,
    ext_modules=extModules,
    cmdclass={"build_ext": OptionalBuildExt},
    install_requires=[
        "Twisted[tls]>=23.10",
        "zope.interface>=5",
    ],
    extras_require={
        "test": [
            "Twisted[tls,http2]>=23.10",
            "pytest>=7",
            "hypothesis>=6",
            "websockets>=12",
            "treq>=23",
            "autobahn[twisted]>=23",
            "txredisapi>=1.6",
            "prometheus_client>=0.17",
        ],
        # RedisBus: broadcast rooms shared across processes (twistd --redis).
        "redis": [
            "txredisapi>=1.6",
        ],
        # twistd websocket --metrics PATH: the Prometheus text format.
        "metrics": [
            "prometheus_client>=0.17",
        ],
        "bench": [
            "websockets>=13",
            "autobahn[twisted]>=23",
            "wsproto>=1.2",
        ],
    },
    entry_points={},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP",
    ],
)
