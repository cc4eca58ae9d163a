"""
C{python -m twisted_ws --version}: what is installed, for bug reports and
to check that the C accelerator is in use.  Servers run with
C{twistd -n websocket} (see C{twistd websocket --help}).
"""

from __future__ import annotations

import argparse
import sys

from .version import versionText


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twisted_ws",
        description="twisted_ws: WebSocket for Twisted. Run a server with: twistd -n websocket",
    )
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the versions of twisted_ws, Twisted and Python, and whether the C accelerator is in use",
    )
    args = parser.parse_args(argv)
    if not args.version:
        parser.print_help()
        return 0
    print(versionText())
    return 0


if __name__ == "__main__":
    sys.exit(main())
