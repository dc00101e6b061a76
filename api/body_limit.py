"""Refuse request bodies over a size with a JSON 413, judged on Content-Length when it is sent
and on the bytes actually received in any case (a chunked body has no Content-Length).

The body is read here, before routing, and handed on whole: our bodies are JSON documents
that the route would read in full anyway. One limit holds for every request except the few
routes given a larger one by method and path (a batch carries all its rows).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIB = 1024 * 1024
BATCH_BODY_BYTES = 20 * MIB
LARGER_BODIES: Mapping[tuple[str, str], int] = {("POST", "/api/v1/batches"): BATCH_BODY_BYTES}


def size_text(size: int) -> str:
    """A byte count as people write it: "256 KiB", "20 MiB"."""
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size // 1024} KiB"


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: Mapping[tuple[str, str], int] = LARGER_BODIES,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger)

    async def _too_large(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body larger than {size_text(limit)}"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get((scope["method"], scope["path"]), self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)
