"""The job system of LLM Jobs. `tasks.app` is the procrastinate App the worker runs:

procrastinate --app=tasks.app worker
"""

from tasks.queue import app

__all__ = ["app"]
