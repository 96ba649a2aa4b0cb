"""A small real MCP server for tests/test_mcp.py, built with the SDK's 2.x `MCPServer`.

python tests/mcp_server.py              serve over stdio
python tests/mcp_server.py --http PORT  serve streamable HTTP at http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer = MCPServer("calc", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def fail(message: str) -> str:
    """Fail with the message."""
    raise ToolError(message)


@server.tool()
async def sleep(seconds: float) -> str:
    """Answer after a while."""
    await asyncio.sleep(seconds)
    return "awake"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def env(name: str) -> str:
    """An environment variable of this server."""
    return os.environ.get(name, "(unset)")


@server.tool()
def header(name: str, ctx: Context) -> str:
    """A header of the HTTP request that carried this call."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", {})
    return str(headers.get(name, "(none)"))


@server.tool()
def picture() -> Image:
    """A tiny image."""
    return Image(data=b"\x89PNG\r\n\x1a\n" + bytes(92), format="png")


@server.tool()
def big(chars: int) -> str:
    """That many x's."""
    return "x" * chars


@server.tool(name="read.file")
def read_file() -> str:
    """A tool whose name the providers would refuse."""
    return "contents"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
