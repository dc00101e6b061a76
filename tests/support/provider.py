"""A scriptable OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks.

Each request to /v1/chat/completions takes the next step of the script (or the default step when
the script is empty): answer with content, answer an HTTP error with headers, sleep first, send a
body that is not JSON, or drop the connection. Every request is recorded.

With `limits`, the server enforces rate limits per model itself, as a provider does: a request
that would take the model past its requests or tokens (prompt and answer, counted as the usage
it returns) in the last `window` seconds is answered 429 with a Retry-After.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    content: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw_body: bytes | None = None
    drop: bool = False
    error_body: dict[str, Any] | None = None


@dataclass
class RateLimit:
    """What the server lets through per model in any `window` seconds (None: no cap)."""

    window: float
    rpm: int | None = None
    tpm: int | None = None


@dataclass
class Arrival:
    at: float  # time.monotonic() when the server read the request
    model: str
    tokens: int  # prompt and answer, as the usage returned would count them
    status: int | str


def ok(content: str, delay: float = 0.0) -> Step:
    return Step(content=content, delay=delay)


def error(status: int, message: str = "scripted failure", **headers: str) -> Step:
    return Step(status=status, headers=headers, error_body={"error": {"message": message}})


class ScriptedProvider:
    def __init__(
        self,
        default: Step | Callable[[dict[str, Any]], Step] | None = None,
        limits: dict[str, RateLimit] | None = None,
    ):
        self.script: deque[Step] = deque()
        self.limits = limits or {}
        self.arrivals: list[Arrival] = []
        # A Step, or a function of the request body returning one (see `chaos`).
        self.default = default or ok("default answer")
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, lower-case names
        # (last user message, status answered: 200, an HTTP error, "timeout" or "reset")
        self.outcomes: list[tuple[str, int | str]] = []
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                step = provider._next(body, {k.lower(): v for k, v in self.headers.items()})
                if step.delay:
                    time.sleep(step.delay)
                if step.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                if step.raw_body is not None:
                    payload = step.raw_body
                elif step.status != 200:
                    payload = json.dumps(step.error_body or {}).encode()
                else:
                    payload = json.dumps(_completion(body, step.content)).encode()
                try:
                    self.send_response(step.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for key, value in step.headers.items():
                        self.send_header(key.replace("_", "-"), value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing left to answer

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Step:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            step = self.script.popleft() if self.script else self.default
            if callable(step):
                step = step(body)
            step = self._limited(body, step)
            prompt = str(body.get("messages", [{}])[-1].get("content", ""))
            outcome = "reset" if step.drop else "timeout" if step.delay >= 1 else step.status
            self.outcomes.append((prompt, outcome))
            return step

    def _limited(self, body: dict[str, Any], step: Step) -> Step:
        """The step, or a 429 when it would take its model past its RateLimit (lock held)."""
        model = str(body.get("model", ""))
        usage = _completion(body, step.content)["usage"]
        now = time.monotonic()
        limit = self.limits.get(model)
        status: int | str = step.status
        if limit is not None:
            recent = [
                a
                for a in self.arrivals
                if a.model == model and a.status == 200 and a.at > now - limit.window
            ]
            over_requests = limit.rpm is not None and len(recent) + 1 > limit.rpm
            used = sum(a.tokens for a in recent) + usage["total_tokens"]
            if over_requests or (limit.tpm is not None and used > limit.tpm):
                wait = limit.window - (now - recent[0].at) if recent else limit.window
                step = error(429, "rate limit reached", retry_after=f"{max(wait, 0.001):.3f}")
                status = 429
        self.arrivals.append(Arrival(now, model, usage["total_tokens"], status))
        return step

    def most_in_window(self, model: str, window: float) -> tuple[int, int]:
        """The most requests, and the most tokens, that reached the server for model in any
        `window` seconds."""
        arrivals = sorted((a for a in self.arrivals if a.model == model), key=lambda a: a.at)
        most_requests = most_tokens = 0
        for i, first in enumerate(arrivals):
            inside = [a for a in arrivals[i:] if a.at < first.at + window]
            most_requests = max(most_requests, len(inside))
            most_tokens = max(most_tokens, sum(a.tokens for a in inside))
        return most_requests, most_tokens

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *steps: Step) -> None:
        with self._lock:
            self.script.extend(steps)

    def start(self) -> ScriptedProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    # The standard library listens with a backlog of 5: a worker starting 10 calls at once would
    # see some connections wait for a SYN retransmit (1 s), past a short model timeout, and never
    # reach the script. A real server takes them all.
    request_queue_size = 128


def _completion(request: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "test"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": max(1, len(content) // 4),
            "total_tokens": max(1, prompt_chars // 4) + max(1, len(content) // 4),
        },
    }


def chaos(
    seed: int,
    *,
    p5xx: float = 0.20,
    p429: float = 0.05,
    ptimeout: float = 0.03,
    preset: float = 0.03,
    p400: float = 0.02,
    timeout_delay: float = 1.5,
) -> Callable[[dict[str, Any]], Step]:
    """A provider failing at random (reproducibly for a seed): 5xx, 429 with Retry-After, slow
    answers (the client times out), dropped connections and a few 400s; otherwise an answer."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def step(body: dict[str, Any]) -> Step:
        with lock:
            roll = rng.random()
            status = rng.choice((500, 502, 503))
        edges = [p5xx, p429, ptimeout, preset, p400]
        if roll < edges[0]:
            return error(status, "chaos")
        roll -= edges[0]
        if roll < edges[1]:
            return error(429, "chaos slow down", retry_after="1")
        roll -= edges[1]
        if roll < edges[2]:
            return Step(content="too late", delay=timeout_delay)
        roll -= edges[2]
        if roll < edges[3]:
            return Step(drop=True)
        roll -= edges[3]
        if roll < edges[4]:
            return error(400, "chaos bad request")
        return ok("answer to " + str(body.get("messages", [{}])[-1].get("content", "")))

    return step
