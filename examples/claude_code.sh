#!/usr/bin/env bash
# Register systeme-mcp with Claude Code, for you in every project (--scope user). Use SYSTEME_API_KEY instead
# for the direct API. Options go before the server's name; everything after -- is the command Claude Code runs.
set -euo pipefail
claude mcp add --transport stdio --scope user --env MATON_API_KEY="${MATON_API_KEY:?set MATON_API_KEY}" systeme -- systeme-mcp

# Before the package is on PyPI, from a checkout instead:
#   claude mcp add --transport stdio --scope user --env MATON_API_KEY="$MATON_API_KEY" systeme -- uvx --from /path/to/systeme-mcp systeme-mcp
# A server already running over HTTP (systeme-mcp --transport http --auth-token ...):
#   claude mcp add --transport http systeme-http http://127.0.0.1:8000/mcp --header "Authorization: Bearer $SYSTEME_AUTH_TOKEN"
