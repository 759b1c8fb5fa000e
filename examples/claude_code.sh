#!/usr/bin/env bash
# Register systeme-mcp with Claude Code (stdio). Use SYSTEME_API_KEY instead for the direct API.
claude mcp add systeme --env MATON_API_KEY="${MATON_API_KEY:?set MATON_API_KEY}" -- systeme-mcp
