"""LLM Jobs dashboard: `streamlit run streamlit_app.py` (or `make run`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import routes, ui

ui.keep_imports_out_of_gc()

# A file, not a ":material/...:" icon, which the browser would fetch from fonts.gstatic.com.
FAVICON = Path(__file__).parent / "dashboard" / "static" / "favicon.png"
st.set_page_config(page_title="LLM Jobs", page_icon=str(FAVICON), layout="wide")
with ui.database_guard():
    routes.current_page().run()
