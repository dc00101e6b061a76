"""How the dashboard is served: Streamlit's ASGI app, with the page told where its server is.

Streamlit's browser client does not know whether the page it was served at (`/analytics`) is
its server's root or a path the server lives under, so it first asks `/analytics/_stcore/health`,
gets a 404, waits, and only then asks `/_stcore/health`: every page but the root starts one
round trip and one retry late. The client reads an embedding setting, `window.__streamlit
.BACKEND_BASE_URL`, before it connects; given the server's address there, it asks the right
place first. Streamlit does not document that setting, so this module is the one place that
relies on it:

- the Streamlit versions it was checked against are pinned in `pyproject.toml` and below;
- `tests/dashboard/test_served.py` checks the installed client still reads the setting, and the
  browser test checks no page asks a page address for its health;
- when either check would fail at start (another version, a client bundle without the setting),
  the page is served unchanged and one warning says why: pages then start a round trip later,
  nothing else changes.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger("llmjobs.dashboard")

# The Streamlit releases whose client was read for the setting below.
CHECKED_VERSIONS = ("1.67.",)
# Requests for these never return the page itself.
NOT_PAGES = ("/_stcore/", "/static/", "/media/", "/component/", "/favicon")
# Bigger than any page Streamlit serves (its index.html is about 4 KB): a larger body is passed
# on as it came, never held in memory.
PAGE_LIMIT = 256 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _client_files() -> list[Path]:
    """The client's entry scripts, as Streamlit's page names them."""
    import streamlit

    static = Path(streamlit.__file__).parent / "static"
    page = (static / "index.html").read_text(encoding="utf-8", errors="replace")
    found = re.findall(r'<script[^>]*\bsrc="\./(static/js/[^"]+\.js)"', page)
    return [static / name for name in found if (static / name).is_file()]


@functools.cache
def client_reads_the_setting() -> str | None:
    """None when the installed Streamlit client takes its server's address from the page, else
    why it cannot be relied on."""
    version = metadata.version("streamlit")
    if not version.startswith(CHECKED_VERSIONS):
        return f"Streamlit {version} was not checked (checked: {', '.join(CHECKED_VERSIONS)}x)"
    try:
        scripts = [path.read_text(encoding="utf-8", errors="replace") for path in _client_files()]
    except OSError as exc:
        return f"the client of Streamlit {version} cannot be read ({exc})"
    if any("window.__streamlit" in text and "BACKEND_BASE_URL" in text for text in scripts):
        return None
    return f"the client of Streamlit {version} does not read window.__streamlit.BACKEND_BASE_URL"


def page_script(base_path: str) -> bytes:
    """The script put first in the page's head: the server's address, as the client reads it."""
    path = "/" + base_path.strip("/")
    # json.dumps quotes the path for JavaScript; a base path is the server's own setting.
    return (
        "<script>window.__streamlit=Object.assign({},window.__streamlit,"
        f"{{BACKEND_BASE_URL:window.location.origin+{json.dumps(path)}}});</script>"
    ).encode()


class ServerAddress:
    """ASGI middleware: a page served as HTML gets `page_script` first in its head.

    Assets, Streamlit's own endpoints, websockets, and bodies that are not HTML or too large pass
    through untouched. The page is asked for without compression so it can be read."""

    def __init__(self, app: ASGIApp, base_path: str = "") -> None:
        self.app = app
        self.script = page_script(base_path)
        self.prefix = "/" + base_path.strip("/") if base_path.strip("/") else ""

    def _is_page(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        path: str = scope["path"]
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :] or "/"
        return not path.startswith(NOT_PAGES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_page(scope):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        started: Message | None = None
        held: list[bytes] = []
        size = 0
        passing = False

        async def forward(message: Message) -> None:
            nonlocal started, size, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if not headers.get(b"content-type", b"").startswith(b"text/html") or (
                    b"content-encoding" in headers
                ):
                    passing = True
                    await send(message)
                    return
                started = message
                return
            if message["type"] != "http.response.body" or started is None:
                await send(message)
                return
            chunk = message.get("body", b"")
            held.append(chunk)
            size += len(chunk)
            if size > PAGE_LIMIT:
                passing = True
                await send(started)
                await send(
                    {"type": "http.response.body", "body": b"".join(held), "more_body": True}
                )
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            if message.get("more_body", False):
                return
            body = b"".join(held)
            marker = body.find(b"<head>")
            if marker >= 0:
                at = marker + len(b"<head>")
                body = body[:at] + self.script + body[at:]
            headers = [
                (k, v) for k, v in started.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**started, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, forward)


def middleware() -> list[Any]:
    """The dashboard's middleware: ServerAddress when the installed client reads the setting."""
    from starlette.middleware import Middleware
    from streamlit import config

    problem = client_reads_the_setting()
    if problem is not None:
        log.warning(
            "pages are served as Streamlit makes them (%s): each page but the root starts one "
            "round trip later",
            problem,
        )
        return []
    return [Middleware(ServerAddress, base_path=config.get_option("server.baseUrlPath") or "")]
