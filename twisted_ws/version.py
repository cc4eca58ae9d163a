"""
What is running: the versions of twisted_ws, Twisted and Python, and
whether the C accelerator is in use.

One function, so that C{python -m twisted_ws --version} and
C{twistd websocket --version} say the same thing, and a bug report can
quote it.  Twisted is imported inside the function, so importing this
module costs nothing.
"""

from __future__ import annotations

import os
import platform
from importlib.util import find_spec

__all__ = ["__version__", "versionText"]

# The one place the version is written: pyproject.toml reads it for the
# package metadata (without importing the package) and twisted_ws.__version__
# is this name.
__version__ = "0.1.0"


def _acceleratorText() -> str:
    """Whether the C accelerator is in use and, when it is not, why."""
    from .core.masking import HAVE_SPEEDUPS

    if HAVE_SPEEDUPS:
        return "in use"
    # The rule of twisted_ws.core.masking: anything but "" or "0" disables it.
    setting = os.environ.get("TWISTED_WS_NO_EXTENSION", "")
    if setting not in ("", "0"):
        return f"not in use (disabled by TWISTED_WS_NO_EXTENSION={setting})"
    if find_spec("twisted_ws.core._speedups") is None:
        return "not in use (not built; the pure-Python code runs)"
    return "not in use (built, but it could not be loaded)"


def versionText() -> str:
    """
    Four lines: twisted_ws's version, Twisted's, Python's and the state of
    the C accelerator in this process.
    """
    from twisted import __version__ as twistedVersion

    return "\n".join(
        [
            f"twisted_ws {__version__}",
            f"Twisted {twistedVersion}",
            f"Python {platform.python_version()} ({platform.python_implementation()})",
            f"C accelerator: {_acceleratorText()}",
        ]
    )
