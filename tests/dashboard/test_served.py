"""How the dashboard is served: the page tells Streamlit's client where its server is."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dashboard import served

ROOT = Path(__file__).resolve().parents[2]
PAGE = "<!DOCTYPE html><html><head><title>x</title></head><body>page</body></html>"
SCRIPT = served.page_script("").decode()
seen_encodings: list[str | None] = []


async def page(request):
    seen_encodings.append(request.headers.get("accept-encoding"))
    return HTMLResponse(PAGE)


async def health(request):
    return PlainTextResponse("ok")


async def data(request):
    return JSONResponse({"head": "<head>"})


async def big(request):
    chunk = b"<head>" + b"x" * 1024

    async def chunks():
        for _ in range(400):  # 400 KiB: over the limit a page is held to
            yield chunk

    return StreamingResponse(chunks(), media_type="text/html")


async def split(request):
    async def chunks():
        yield b"<!DOCTYPE html><html><he"
        yield b"ad><title>x</title></head><body>page</body></html>"

    return StreamingResponse(chunks(), media_type="text/html")


def client(base_path: str = "") -> TestClient:
    inner = Starlette(
        routes=[
            Route("/{path:path}/_stcore/health", health),
            Route("/_stcore/health", health),
            Route("/data", data),
            Route("/big", big),
            Route("/split", split),
            Route("/{path:path}", page, methods=["GET", "POST"]),
        ]
    )
    return TestClient(served.ServerAddress(inner, base_path=base_path))


@pytest.mark.parametrize("address", ["/", "/analytics", "/output?id=3", "/no/such/page"])
def test_a_page_carries_its_servers_address_first_in_its_head(address):
    seen_encodings.clear()
    answer = client().get(address, headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.text == PAGE.replace("<head>", "<head>" + SCRIPT)
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert 'window.location.origin+"/"' in answer.text
    # asked for without compression, so it can be read
    assert seen_encodings == [None]


def test_a_page_in_pieces_is_put_together_before_its_head_is_found():
    answer = client().get("/split")
    assert answer.text.startswith("<!DOCTYPE html><html><head>" + SCRIPT + "<title>")


def test_everything_else_passes_untouched():
    with client() as http:
        assert http.get("/_stcore/health").text == "ok"
        assert http.get("/analytics/_stcore/health").text == "ok"
        assert http.get("/data").json() == {"head": "<head>"}  # not HTML
        assert http.post("/analytics").text == PAGE  # not a GET
        large = http.get("/big")
        assert len(large.content) == 400 * 1030
        assert SCRIPT.encode() not in large.content  # too big to hold: passed on as it came


def test_under_a_base_path_the_address_has_it():
    script = served.page_script("/tools/llm/")
    assert b'window.location.origin+"/tools/llm"' in script
    with client("/tools/llm/") as http:
        assert script.decode() in http.get("/tools/llm/analytics").text
        assert http.get("/tools/llm/_stcore/health").text == "ok"


def test_the_installed_client_reads_the_address_from_the_page():
    """The contract the middleware relies on: this Streamlit was checked, and its client bundle
    reads window.__streamlit.BACKEND_BASE_URL (the browser test shows the effect)."""
    assert served.client_reads_the_setting() is None
    assert [m.cls for m in served.middleware()] == [served.ServerAddress]


def test_another_streamlit_gets_the_page_unchanged_and_a_warning(monkeypatch, caplog):
    served.client_reads_the_setting.cache_clear()
    monkeypatch.setattr(served.metadata, "version", lambda name: "9.1.0")
    try:
        with caplog.at_level(logging.WARNING, logger="llmjobs.dashboard"):
            assert served.middleware() == []
        assert "Streamlit 9.1.0 was not checked" in caplog.text
        monkeypatch.setattr(served.metadata, "version", lambda name: "1.67.0")
        monkeypatch.setattr(served, "_client_files", lambda: [])
        served.client_reads_the_setting.cache_clear()
        assert "does not read window.__streamlit" in served.client_reads_the_setting()
    finally:
        served.client_reads_the_setting.cache_clear()


def test_streamlit_run_serves_the_file_with_its_app():
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "streamlit_app.py")
    assert found.is_asgi_app and found.import_string == "streamlit_app:app"
