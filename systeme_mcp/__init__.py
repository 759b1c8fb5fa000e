"""systeme-mcp: an MCP server for Systeme.io."""

__version__ = "0.1.0"
