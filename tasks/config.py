"""Settings, read from the environment once per process (docs/reference.md lists each variable).

The only module that reads environment variables: the settings, the secret values logs mask,
the environment a child process inherits, and what litellm reads when it is imported.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, get_args, get_origin

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
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


MODEL_NAME_RULE = "at most 200 characters, no spaces and no `*`"


def model_name_problem(model: object) -> str | None:
    """Why model cannot be a model's name (None: it can): the check the catalog applies to every
    name it is asked for, and the settings to every model they name."""
    if not isinstance(model, str) or not model.strip():
        return "is empty"
    if len(model) > 200 or "*" in model or any(c.isspace() or not c.isprintable() for c in model):
        return f"must be a model name: {MODEL_NAME_RULE}"
    return None


def parse_prices(text: str) -> tuple[tuple[str, tuple[float, float]], ...]:
    """LLMJOBS_MODEL_PRICES, `model=input/output,...` in dollars per million tokens, as
    ((model, (input, output) dollars per token), ...). ValueError names a malformed entry."""
    found: dict[str, tuple[float, float]] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, _, prices = entry.rpartition("=")
        name = name.strip()
        try:
            per_input, per_output = (float(p) for p in prices.split("/"))
        except ValueError:
            raise ValueError(f"bad entry {entry!r}") from None
        if model_name_problem(name) or not all(
            math.isfinite(p) and p >= 0 for p in (per_input, per_output)
        ):
            raise ValueError(f"bad entry {entry!r}")
        found[name] = (per_input / 1_000_000, per_output / 1_000_000)
    return tuple(found.items())


class LimitSpec(NamedTuple):
    """A provider limit: a model's name, or a prefix ending in `/`, and its caps (None: none)."""

    pattern: str
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None


# The most each cap may be, and the most limits one environment variable may set.
LIMIT_MAXIMA = {"rpm": 1_000_000, "tpm": 1_000_000_000, "concurrent": 100_000}
MAX_LIMITS = 200
LIMITS_RULE = (
    "`model=rpm:N,tpm:N,concurrent:N` entries separated by `;` (a model's name, or a prefix "
    "ending in `/`; each cap a whole number, at least one)"
)


def limit_problem(pattern: object, caps: dict[str, object]) -> str | None:
    """Why (pattern, caps) cannot be a provider limit (None: it can). caps maps rpm, tpm and
    concurrent to whole numbers from 1 to LIMIT_MAXIMA (None or absent: no cap)."""
    if problem := model_name_problem(pattern):
        return f"the model or prefix {problem}"
    unknown = sorted(set(caps) - set(LIMIT_MAXIMA))
    if unknown:
        return f"unknown cap {unknown[0]!r}: use rpm, tpm or concurrent"
    given = {k: v for k, v in caps.items() if v is not None}
    if not given:
        return "give at least one of rpm, tpm and concurrent"
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be a whole number"
        if not 1 <= value <= LIMIT_MAXIMA[name]:
            return f"{name} must be from 1 to {LIMIT_MAXIMA[name]:,}"
    return None


def limit_spec(pattern: str, caps: dict[str, object]) -> LimitSpec:
    """A checked LimitSpec; ValueError says what is wrong."""
    if problem := limit_problem(pattern, caps):
        raise ValueError(problem)
    return LimitSpec(
        pattern,
        caps.get("rpm"),  # type: ignore[arg-type]
        caps.get("tpm"),  # type: ignore[arg-type]
        caps.get("concurrent"),  # type: ignore[arg-type]
    )


def parse_limits(text: str) -> tuple[LimitSpec, ...]:
    """LLMJOBS_MODEL_LIMITS, as LimitSpecs; ValueError names a malformed entry."""
    found: dict[str, LimitSpec] = {}
    entries = [e.strip() for e in text.split(";") if e.strip()]
    if len(entries) > MAX_LIMITS:
        raise ValueError(f"at most {MAX_LIMITS} limits")
    for entry in entries:
        pattern, equals, values = entry.partition("=")
        pattern = pattern.strip()
        caps: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in values.split(","))):
            name, colon, number = part.partition(":")
            name, number = name.strip().lower(), number.strip()
            if not colon or name in caps:
                raise ValueError(f"bad entry {entry[:80]!r}: {LIMITS_RULE}")
            caps[name] = int(number) if re.fullmatch(r"[0-9]{1,12}", number) else number
        if not equals:
            raise ValueError(f"bad entry {entry[:80]!r}: {LIMITS_RULE}")
        if pattern in found:
            raise ValueError(f"{pattern[:80]!r} is limited twice")
        if problem := limit_problem(pattern, caps):
            raise ValueError(f"bad entry {entry[:80]!r}: {problem}")
        found[pattern] = limit_spec(pattern, caps)
    return tuple(found.values())


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(m.strip() for m in value.split(",") if m.strip())
    return value


class Settings(BaseSettings):
    """Every setting of the product, from the environment (names in each field's alias or
    LLMJOBS_ + its name in capitals). The only reader of environment variables besides what
    the libraries read themselves (provider keys for litellm)."""

    model_config = SettingsConfigDict(
        env_prefix="LLMJOBS_",
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,
        # inf, nan and numbers too large for a float (1e400) are no setting's value
        allow_inf_nan=False,
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    default_model: str = Field(OFFLINE_MODEL, description=f"a model name: {MODEL_NAME_RULE}")
    extra_models: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        validation_alias="LLMJOBS_MODELS",
        description=f"model names separated by commas, each {MODEL_NAME_RULE}",
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
    # how long a reviewer holds a review queue's item before others may be given it
    review_hold_seconds: int = Field(300, ge=30, le=3600)
    # Provider limits from the environment, written to the database by each worker at its start.
    model_limits: Annotated[tuple[LimitSpec, ...], NoDecode] = Field(
        (), description=LIMITS_RULE + ", e.g. openai/gpt-4o=rpm:500,tpm:30000;anthropic/=rpm:50"
    )
    # The seconds of a limit's minute: 60, shorter only to test or benchmark limits quickly.
    limit_minute: float = Field(60.0, ge=1, le=3600)
    # {model: (input, output) dollars per token}, from `model=input/output,...` per million tokens
    model_prices: Annotated[tuple[tuple[str, tuple[float, float]], ...], NoDecode] = Field(
        (),
        description=(
            "model=input/output prices in dollars per million tokens, separated by commas "
            "(e.g. openai/llama3=0.10/0.30,ollama/qwen=0/0)"
        ),
    )
    # Unset: the embedded server. Never shown in an error message: it may hold a password.
    database_url: str = Field(
        "",
        validation_alias="DATABASE_URL",
        description=(
            "a PostgreSQL connection URL (postgresql://user:password@host:port/database) "
            "or key=value connection string"
        ),
    )
    # The embedded server's data; unset: `.data` below the project (db.embedded.data_dir).
    data_dir: Path | None = None
    # An OpenAI-compatible server for models named openai/<name> (tasks/llm/calls.py, _route).
    openai_api_base: str = Field(
        "",
        validation_alias=AliasChoices("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        description="a URL starting with http:// or https://",
    )
    # Sent to that server; litellm reads the provider keys it needs itself.
    openai_api_key: SecretStr = Field(SecretStr(""), validation_alias="OPENAI_API_KEY")
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

    @field_validator("default_model")
    @classmethod
    def _model(cls, value: str) -> str:
        if problem := model_name_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("extra_models")
    @classmethod
    def _model_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if problem := model_name_problem(name):
                raise ValueError(f"{name!r} {problem}")
        return value

    @field_validator("model_prices", mode="before")
    @classmethod
    def _prices(cls, value: object) -> object:
        return parse_prices(value.strip()) if isinstance(value, str) else value

    @field_validator("model_limits", mode="before")
    @classmethod
    def _limits(cls, value: object) -> object:
        return parse_limits(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict

        if value:
            try:
                conninfo_to_dict(value)
            except Error:
                raise ValueError("not a PostgreSQL connection string") from None
        return value

    @field_validator("openai_api_base")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


def _env_names(field: str) -> list[str]:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"LLMJOBS_{field.upper()}"]


def _field_of(name: str) -> str | None:
    """The field a validation error's location names (the field, or its variable's name)."""
    if name in Settings.model_fields:
        return name
    return next((f for f in Settings.model_fields if name in _env_names(f)), None)


def _env_name(field: str) -> str:
    """The variable a field was read from: of several names, the first one set."""
    names = _env_names(field)
    return next((n for n in names if os.environ.get(n, "").strip()), names[0])


def _wanted(field: str) -> str:
    """What a field takes, in words: "an integer ≥ 1", "a number > 0", "one of http, sdk"."""
    info = Settings.model_fields[field]
    if info.description:
        return info.description
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


# Fields whose value an error message never repeats (a connection URL may hold a password).
_UNSHOWN = {"database_url"}
# Fields whose error message says which part of the value is wrong before what the field takes.
_EXPLAINED = {"model_limits"}


def load_settings() -> Settings:
    """Read and check every setting; SettingsError names each bad variable and what it takes."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = _field_of(str(error["loc"][0])) if error["loc"] else None
            if field is None:
                problems.append(error["msg"])
                continue
            given = error.get("input")
            secret = Settings.model_fields[field].annotation is SecretStr or field in _UNSHOWN
            readable = isinstance(given, str) and len(given) <= 80 and not secret
            shown = f" (got {given!r})" if readable else ""
            reason = error.get("ctx", {}).get("error") if field in _EXPLAINED else None
            said = f"{reason}; " if reason else ""
            problems.append(f"{_env_name(field)}: {said}must be {_wanted(field)}{shown}")
        raise SettingsError(problems) from None


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read once. Raises SettingsError on a malformed value."""
    return load_settings()


def database_url() -> str:
    """DATABASE_URL, else the URL of the embedded server in data_dir() (started on demand)."""
    url = get_settings().database_url
    if url:
        return url
    from db import embedded

    return embedded.start(data_dir())


def data_dir() -> Path:
    """The embedded server's folder: LLMJOBS_DATA_DIR, else `.data` below the project."""
    from db import embedded

    return embedded.data_dir(get_settings().data_dir)


_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def secret_values(shortest: int = 8) -> list[str]:
    """The values of secret-looking environment variables (API keys, tokens, passwords, the
    provider keys litellm reads itself included) of at least `shortest` characters, for logs
    to mask."""
    return [
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name.upper()) and len(value) >= shortest
    ]


def child_environment(**overrides: str) -> dict[str, str]:
    """This process's environment with overrides, for a child process to read its settings."""
    return {**os.environ, **overrides}


def before_litellm_import() -> None:
    """Set what litellm reads from the environment when it is imported: call it before
    `import litellm` (litellm reads these at import, before any setting could be passed)."""
    # its bundled price map, never a download at import; its own log lines at ERROR unless set
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
