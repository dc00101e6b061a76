"""The job system of LLM Jobs. `tasks.app` is the procrastinate App the worker runs:

procrastinate --app=tasks.app worker
"""

from tasks.worker.app import app

__all__ = ["app"]
