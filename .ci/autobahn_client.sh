#!/usr/bin/env bash
# Autobahn|TestSuite in client-testing mode: start the suite's fuzzingserver
# on a free loopback port, run examples/autobahn_client.py (twisted_ws's
# client) through every case of sections 1-7, 9 and 10, then fail unless
# the report is clean (0 FAILED, 0 NON-STRICT, every close OK).
#
#   .ci/autobahn_client.sh [OUTDIR]
# env: PYTHON (default: python), TWISTED_WS_SHARED (default: ../shared),
#      WSTEST (default: /tmp/abvenv/bin/wstest), AUTOBAHN_CASES (JSON list).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${TWISTED_WS_SHARED:-$root/../shared}"
python="${PYTHON:-python}"
wstest="${WSTEST:-/tmp/abvenv/bin/wstest}"
outdir="${1:-$(mktemp -d /tmp/twisted_ws-ab-client.XXXXXX)}"
cases="${AUTOBAHN_CASES:-[\"1.*\", \"2.*\", \"3.*\", \"4.*\", \"5.*\", \"6.*\", \"7.*\", \"9.*\", \"10.*\"]}"
agent=twisted_ws_client

[ -x "$wstest" ] || bash "$shared/tools/autobahn/port.sh"

work="$(mktemp -d /tmp/twisted_ws-ab-client-work.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rm -rf "$outdir"; mkdir -p "$outdir"
cat >"$work/spec.json" <<JSON
{"url": "ws://127.0.0.1:$port", "outdir": "$outdir", "cases": $cases,
 "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}, "options": {}}
JSON

(cd "$work" && exec "$wstest" -m fuzzingserver -s "$work/spec.json" --webport 0) >"$work/wstest.log" 2>&1 &
pid=$!
# Wait (bounded) until the fuzzingserver accepts connections.
for _ in $(seq 1 100); do
  if "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { echo "fuzzingserver died:"; cat "$work/wstest.log"; exit 1; }
  sleep 0.1
done

start=$(date +%s)
timeout 1800 "$python" "$root/examples/autobahn_client.py" "ws://127.0.0.1:$port" "$agent" | tail -n 3
echo "client run: $(( $(date +%s) - start )) s; reports in $outdir"
"$python" "$shared/tools/autobahn/summarize.py" "$outdir" | head -n 40
"$python" "$root/.ci/check_autobahn.py" "$shared/tools/autobahn/summarize.py" "$outdir"
