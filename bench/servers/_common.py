"""
Shared helpers for the benchmark echo servers.

Every server takes C{--host} (default 127.0.0.1) and C{--port} (default 0:
the kernel picks a free port), raises its message-size limit to at least
C{MAX_MESSAGE} bytes, does not negotiate compression, does not log per
connection or per message, sets TCP_NODELAY, and prints exactly one line,
C{LISTENING <port>}, on stdout once it accepts connections.  The harness
(C{bench/run.py}) reads that line to learn the port.
"""

from __future__ import annotations

import argparse
import os
import sys

MAX_MESSAGE = 64 * 1024 * 1024  # 64 MiB: well above the 16 MiB echo


def parseArgs(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args()


def announce(port: int, **info: object) -> None:
    """
    Tell the harness the port (stdout) and leave a note in the log (stderr).
    """
    details = " ".join(f"{k}={v}" for k, v in info.items())
    print(f"pid={os.getpid()} python={sys.version.split()[0]} {details}", file=sys.stderr, flush=True)
    print(f"LISTENING {port}", flush=True)
