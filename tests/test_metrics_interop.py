"""
C{twistd websocket --metrics} as a real command (the interop tier): without
prometheus_client it stops at once with one line naming the extra.  The
series themselves, across workers and machines, are checked in
test_scaleout_interop.py; their logic in test_metrics.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.interop

MISSING = "twisted_ws: --metrics needs prometheus_client: pip install 'twisted_ws[metrics]'"


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["alone", "workers"])
def test_missingPrometheusClientStopsTwistdInOneLine(twistd: Any, tmp_path: Path, workers: list[str]) -> None:
    """An import of prometheus_client that fails (a stand-in package first on the path)."""
    blocker = tmp_path / "block" / "prometheus_client"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    env = dict(twistd.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocker.parent), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        twistd.command + ["-n", "--pidfile=", "websocket", "--listen", "tcp:0:interface=127.0.0.1",
                          "--metrics", "/metrics", *workers],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert (result.stdout + result.stderr).strip() == MISSING
