"""
Build steps for twisted_ws that pyproject.toml cannot declare.

The C accelerator (masking, message buffers, head parsing) is optional:
when it cannot be compiled the install still succeeds and the pure-Python
code is used.
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

# The metadata (name, version, dependencies, extras) is in pyproject.toml;
# this file says only what that cannot: the optional accelerator, the package
# directory and the packages, twisted.plugins included.
setup(
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
)
