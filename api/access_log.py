"""One log line per request: method, path, status, duration_ms and the authenticated user_id.

Never the query string or headers: they may carry prompt text or the bearer token.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks.logs import get_logger

log = get_logger("llmjobs.api")


class AccessLog:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The route's dependencies write user_id into this same dict (request.state).
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": state.get("user_id"),
            }
            if status >= 500:
                log.error("request", **fields)
            else:
                log.info("request", **fields)
