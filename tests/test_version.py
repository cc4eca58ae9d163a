"""
C{python -m twisted_ws --version} and C{twistd websocket --version}: the
versions of twisted_ws, Twisted and Python, and whether the C accelerator
is in use, from one function.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.util import find_spec

import pytest
import twisted

import twisted_ws
from twisted_ws.core.masking import HAVE_SPEEDUPS
from twisted_ws.twistd import Options
from twisted_ws.version import versionText


def versionOutput(**environ: str) -> subprocess.CompletedProcess[str]:
    # -P: a checkout in the current directory (no accelerator built in
    # place) must not stand in for the installed package under test.
    return subprocess.run(
        [sys.executable, "-P", "-m", "twisted_ws", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, **environ),
    )


def test_versionText():
    lines = versionText().splitlines()
    assert lines[:3] == [
        f"twisted_ws {twisted_ws.__version__}",
        f"Twisted {twisted.__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
    ]
    assert len(lines) == 4
    assert lines[3].startswith("C accelerator: ")
    assert (lines[3] == "C accelerator: in use") == HAVE_SPEEDUPS


def test_dashMVersion():
    """python -m twisted_ws --version, in a process of its own (there was no __main__)."""
    result = versionOutput()
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == versionText() + "\n"


def test_dashMVersionAcceleratorOff():
    """With TWISTED_WS_NO_EXTENSION=1 the text says the accelerator is off, and why."""
    result = versionOutput(TWISTED_WS_NO_EXTENSION="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "C accelerator: not in use (disabled by TWISTED_WS_NO_EXTENSION=1)"
    )


def test_dashMVersionAcceleratorOn():
    """With TWISTED_WS_NO_EXTENSION=0 a built accelerator is in use."""
    result = versionOutput(TWISTED_WS_NO_EXTENSION="0")
    assert result.returncode == 0, result.stderr
    built = find_spec("twisted_ws.core._speedups") is not None
    assert result.stdout.splitlines()[-1] == (
        "C accelerator: in use" if built else "C accelerator: not in use (not built; the pure-Python code runs)"
    )


def test_twistdOptionsVersion(capsys):
    """twistd websocket --version prints the same text (it printed Twisted's version only) and exits 0."""
    with pytest.raises(SystemExit) as exited:
        Options().parseOptions(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == versionText() + "\n"
