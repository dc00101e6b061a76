"""Settings, read from the environment once per process (docs/reference.md lists each variable)."""

from __future__ import annotations

import functools
from typing import Annotated, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

OFFLINE_MODEL = "offline/echo"
LLM_TASK = "llm_job"
QUEUES = ("high", "default", "low")
MAINTENANCE_QUEUE = "maintenance"
# A worker fetches the highest priority first: high before default before low, whatever the age.
QUEUE_PRIORITY = {"high": 20, "default": 10, "low": 0}
MAINTENANCE_PRIORITY = 30


class SettingsError(ValueError):
    """Environment variables with values the settings refuse, one line per variable."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(m.strip() for m in value.split(",") if m.strip())
    return value


class Settings(BaseSettings):
    """Every setting of the product, from the environment (names in each field's alias or
    LLMJOBS_ + its name in capitals). The only reader of environment variables besides what
    the libraries read themselves (provider keys for litellm)."""

    model_config = SettingsConfigDict(
        env_prefix="LLMJOBS_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    default_model: str = OFFLINE_MODEL
    extra_models: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias="LLMJOBS_MODELS"
    )
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
    api_rate_limit: int = Field(60, ge=0)
    single_user: bool = False
    dashboard_db_timeout: float = Field(5.0, gt=0)
    model_prices: str = ""
    database_url: str = Field("", validation_alias="DATABASE_URL")
    # Off: litellm is used through its public API alone (see tasks/llm/calls.py, "fast paths").
    litellm_fast_path: bool = True
    # Off: procrastinate's own worker and job manager (see tasks/worker/app.py, "fast paths").
    worker_fast_path: bool = True

    @field_validator("log_level", "openai_compatible_client", mode="before")
    @classmethod
    def _case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("extra_models", mode="before")
    @classmethod
    def _models(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"LLMJOBS_{field.upper()}"


def _wanted(field: str) -> str:
    """What a field takes, in words: "an integer ≥ 1", "a number > 0", "one of http, sdk"."""
    info = Settings.model_fields[field]
    kind = info.annotation
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(kind))
    words = {int: "an integer", float: "a number", bool: "true or false"}.get(kind, "text")
    bounds = []
    for item in info.metadata:
        for name, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(item, name, None)
            if bound is not None:
                bounds.append(f"{sign} {bound}")
    return f"{words} {' and '.join(bounds)}".strip()


def load_settings() -> Settings:
    """Read and check every setting; SettingsError names each bad variable and what it takes."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field not in Settings.model_fields:
                problems.append(error["msg"])
                continue
            given = error.get("input")
            shown = f" (got {given!r})" if isinstance(given, str) and len(given) <= 80 else ""
            problems.append(f"{_env_name(field)}: must be {_wanted(field)}{shown}")
        raise SettingsError(problems) from None


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read once. Raises SettingsError on a malformed value."""
    return load_settings()
