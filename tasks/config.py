"""Settings, read from the environment once per process (see the README for each variable)."""

from __future__ import annotations

import functools
import os
from typing import Literal

from pydantic import BaseModel, Field

OFFLINE_MODEL = "offline/echo"
LLM_TASK = "llm_job"
QUEUES = ("high", "default", "low")
MAINTENANCE_QUEUE = "maintenance"
# A worker fetches the highest priority first: high before default before low, whatever the age.
QUEUE_PRIORITY = {"high": 20, "default": 10, "low": 0}
MAINTENANCE_PRIORITY = 30


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


class Settings(BaseModel):
    model_config = {"frozen": True}

    log_level: str = "INFO"
    default_model: str = OFFLINE_MODEL
    extra_models: tuple[str, ...] = ()
    model_timeout: float = Field(60.0, gt=0)
    openai_compatible_client: Literal["http", "sdk"] = "http"
    max_retries: int = Field(5, ge=0)
    retry_base: float = Field(5.0, ge=0)
    retry_cap: float = Field(300.0, ge=0)
    # Multiplies every retry wait; 1.0 in production, small in tests.
    retry_scale: float = Field(1.0, ge=0)
    json_reasks: int = Field(2, ge=0)
    worker_concurrency: int = Field(10, ge=1)
    worker_fetchers: int = Field(0, ge=0, le=64)
    worker_pool_size: int = Field(0, ge=0)
    poll_interval: float = Field(0.5, gt=0)
    heartbeat_interval: float = Field(5.0, gt=0)
    stalled_after: float = Field(30.0, gt=0)
    shutdown_grace: float = Field(30.0, ge=0)
    max_response_chars: int = Field(1_000_000, ge=1000)
    user: str = "local"
    cache: bool = False
    cache_window: float = Field(86_400.0, ge=0)
    api_port: int = Field(8000, ge=1, le=65535)
    dashboard_port: int = Field(8501, ge=1, le=65535)


@functools.cache
def get_settings() -> Settings:
    """The settings of this process. Raises pydantic.ValidationError on a malformed value."""
    models = tuple(m.strip() for m in _env("LLMJOBS_MODELS", "").split(",") if m.strip())
    return Settings(
        log_level=_env("LLMJOBS_LOG_LEVEL", "INFO").upper(),
        default_model=_env("LLMJOBS_DEFAULT_MODEL", OFFLINE_MODEL),
        extra_models=models,
        model_timeout=_env("LLMJOBS_MODEL_TIMEOUT", "60"),
        openai_compatible_client=_env("LLMJOBS_OPENAI_COMPATIBLE_CLIENT", "http").lower(),
        max_retries=_env("LLMJOBS_MAX_RETRIES", "5"),
        retry_base=_env("LLMJOBS_RETRY_BASE", "5"),
        retry_cap=_env("LLMJOBS_RETRY_CAP", "300"),
        retry_scale=_env("LLMJOBS_RETRY_SCALE", "1"),
        json_reasks=_env("LLMJOBS_JSON_REASKS", "2"),
        worker_concurrency=_env("LLMJOBS_WORKER_CONCURRENCY", "10"),
        worker_fetchers=_env("LLMJOBS_WORKER_FETCHERS", "0"),
        worker_pool_size=_env("LLMJOBS_WORKER_POOL_SIZE", "0"),
        poll_interval=_env("LLMJOBS_POLL_INTERVAL", "0.5"),
        heartbeat_interval=_env("LLMJOBS_HEARTBEAT_INTERVAL", "5"),
        stalled_after=_env("LLMJOBS_STALLED_AFTER", "30"),
        shutdown_grace=_env("LLMJOBS_SHUTDOWN_GRACE", "30"),
        max_response_chars=_env("LLMJOBS_MAX_RESPONSE_CHARS", "1000000"),
        user=_env("LLMJOBS_USER", "local"),
        cache=_env("LLMJOBS_CACHE", "0").lower() in ("1", "true", "yes", "on"),
        cache_window=_env("LLMJOBS_CACHE_WINDOW", "86400"),
        api_port=_env("LLMJOBS_API_PORT", "8000"),
        dashboard_port=_env("LLMJOBS_DASHBOARD_PORT", "8501"),
    )
