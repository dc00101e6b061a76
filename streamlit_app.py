"""LLM Jobs dashboard: `streamlit run streamlit_app.py` (or `make run`)."""

from __future__ import annotations

import streamlit as st

from dashboard import routes, ui

st.set_page_config(page_title="LLM Jobs", page_icon=":material/bolt:", layout="wide")
with ui.database_guard():
    routes.current_page().run()
