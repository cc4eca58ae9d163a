#!/usr/bin/env python
"""
Throughput of WebSocket payload masking: C extension vs. pure Python.

Prints GB/s (10**9 bytes per second, best of a few repeats) of
C{twisted_ws.core._speedups.mask}, C{twisted_ws.core._speedups.maskInto} and
C{twisted_ws.core.masking.pyMask} for a range of payload sizes.  Each
measurement is bounded in time (see C{--min-time} and C{--repeat}).

Usage::

    python bench/bench_mask.py
    python bench/bench_mask.py --sizes 32 1K 64K 1M 16M --repeat 5

This is a benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Callable

# Run from a source checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted_ws.core.masking import pyMask

try:
    from twisted_ws.core import _speedups
except ImportError:
    _speedups = None

DEFAULT_SIZES = ["32", "1K", "64K", "1M", "16M"]
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parseSize(text: str) -> int:
    """
    Parse C{"32"}, C{"1K"}, C{"64KiB"}, C{"16M"} and the like (binary units).
    """
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in ("K", "M", "G") else ""
    number = t[: len(t) - len(unit)]
    try:
        n = int(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"bad size: {text!r}")
    return n


def formatSize(n: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"


def bestSeconds(
    fn: Callable[[], object], repeat: int, minTime: float, maxTime: float
) -> float:
    """
    Seconds per call of C{fn}: best of C{repeat} runs, each of enough calls
    to last about C{minTime}; stops early once C{maxTime} has been spent.
    """
    timer = timeit.Timer(fn)
    number = 1
    while True:  # calibrate, like timeit's autorange
        elapsed = timer.timeit(number)
        if elapsed >= minTime or number >= 1 << 30:
            break
        number = max(number * 2, int(number * minTime / max(elapsed, 1e-9)))
    best = elapsed / number
    spent = elapsed
    for _ in range(repeat - 1):
        if spent >= maxTime:
            break
        elapsed = timer.timeit(number)
        spent += elapsed
        best = min(best, elapsed / number)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=DEFAULT_SIZES,
        help="payload sizes, e.g. 32 1K 64K 1M 16M (default: %(default)s); "
        "commas also separate",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="repeats, best is kept (%(default)s)"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.05,
        help="seconds per repeat, at least (%(default)s)",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=2.0,
        help="seconds per size and implementation, at most roughly "
        "(%(default)s)",
    )
    parser.add_argument(
        "--offset", type=int, default=1, help="masking offset (%(default)s)"
    )
    args = parser.parse_args(argv)
    sizes = [parseSize(s) for arg in args.sizes for s in arg.split(",") if s]

    key = b"\x37\xfa\x21\x3d"
    offset = args.offset
    if _speedups is None:
        print("C extension: not built (twisted_ws.core._speedups not importable)")
    else:
        print(f"C extension: twisted_ws.core._speedups, kernel {_speedups.KERNEL}")
    print(f"Python {sys.version.split()[0]}; GB/s = 1e9 bytes/s, best of "
          f"{args.repeat}")
    print()
    header = f"{'size':>10}  {'C mask':>10}  {'C maskInto':>10}  {'Py mask':>10}  {'C/Py':>8}"
    print(header)
    print("-" * len(header))

    for size in sizes:
        data = os.urandom(size)
        target = bytearray(data)
        rates: dict[str, float | None] = {"c": None, "cinto": None, "py": None}

        def rate(fn: Callable[[], object], size: int = size) -> float:
            seconds = bestSeconds(fn, args.repeat, args.min_time, args.max_time)
            return size / seconds / 1e9 if seconds > 0 else float("inf")

        if _speedups is not None:
            cMask, cMaskInto = _speedups.mask, _speedups.maskInto
            # Each lambda is timed at once, in this iteration.
            rates["c"] = rate(lambda: cMask(data, key, offset))  # noqa: B023
            rates["cinto"] = rate(lambda: cMaskInto(target, key, offset))  # noqa: B023
        rates["py"] = rate(lambda: pyMask(data, key, offset))  # noqa: B023

        def cell(value: float | None) -> str:
            return f"{value:10.3f}" if value is not None else f"{'-':>10}"

        ratio = (
            f"{rates['c'] / rates['py']:7.1f}x"
            if rates["c"] is not None and rates["py"]
            else f"{'-':>8}"
        )
        print(
            f"{formatSize(size):>10}  {cell(rates['c'])}  "
            f"{cell(rates['cinto'])}  {cell(rates['py'])}  {ratio}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
