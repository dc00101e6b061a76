"""LLM Jobs dashboard: `streamlit run streamlit_app.py` (or `make run`).

Streamlit runs this file for every page view as `__main__`. `streamlit run` first finds `app`
below and serves the file with it (see dashboard/served.py).
"""

from __future__ import annotations

from pathlib import Path

from streamlit.starlette import App

if __name__ != "__main__":
    from dashboard import served

    app = App(__file__, middleware=served.middleware())
else:
    import streamlit as st

    from dashboard import routes, ui
    from tasks.config import SettingsError, get_settings

    ui.keep_imports_out_of_gc()

    # A file, not a ":material/...:" icon, which the browser would fetch from fonts.gstatic.com.
    FAVICON = Path(__file__).parent / "dashboard" / "static" / "favicon.png"
    st.set_page_config(page_title="LLM Jobs", page_icon=str(FAVICON), layout="wide")
    try:
        get_settings()
    except SettingsError as exc:
        st.error(
            "**The dashboard cannot start: fix these settings and restart it.**\n\n"
            + "\n".join(f"- {problem}" for problem in exc.problems),
            icon=":material/settings_alert:",
        )
        st.stop()
    with ui.database_guard():
        routes.current_page().run()
