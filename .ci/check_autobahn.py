"""
Fail unless an Autobahn|TestSuite report is clean.

Reads a report directory through the suite's summarize.py --json and exits
non-zero when any case is FAILED, NON-STRICT or UNIMPLEMENTED, or when a
close behaviour is anything but OK or INFORMATIONAL.

    python .ci/check_autobahn.py SUMMARIZE_PY REPORT_DIR
"""

import json
import subprocess
import sys


def main() -> int:
    summarize, reportDir = sys.argv[1:3]
    out = subprocess.run(
        [sys.executable, summarize, "--json", reportDir],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    problems = []
    for agent in json.loads(out):
        behavior = agent["behavior"]
        close = agent["behaviorClose"]
        for name in ("FAILED", "NON-STRICT", "UNIMPLEMENTED"):
            if behavior.get(name):
                problems.append(f"{agent['agent']}: {behavior[name]} {name}")
        for name, count in close.items():
            if name not in ("OK", "INFORMATIONAL") and count:
                problems.append(f"{agent['agent']}: {count} close {name}")
        print(
            f"autobahn {agent['agent']}: {agent['cases']} cases, "
            + ", ".join(f"{k}={v}" for k, v in behavior.items())
        )
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
