"""``python -m lamina.mcp``: run Lamina's MCP server (see :func:`lamina.mcp.main`)."""

import sys

from lamina.mcp import main

sys.exit(main())
