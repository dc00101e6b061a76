"""The HTTP API of LLM Jobs (FastAPI): thin routes over the use-cases in `tasks`.

Serve it with `llmjobs api`; the app factory is `api.app:create_app`.
"""
