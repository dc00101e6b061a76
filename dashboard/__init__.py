"""The analysts' dashboard (Streamlit): one module per page, with deps, auth and ui helpers."""
