"""Model calls: the only module that imports litellm (with tasks.llm.offline), loaded by workers.

Which models this process can serve (its worker publishes them to the catalog), the call itself
(one attempt: `max_retries=0`, explicit timeout; the queue does the retrying), and the
translation of provider failures into transient or permanent errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import math
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tasks.config import before_litellm_import

before_litellm_import()  # litellm reads its price map and log settings when it is imported

import litellm
import litellm.main
from litellm.types.utils import LlmProviders

# Fast paths: what this module takes from litellm beyond its public API, each for a measured
# share of a call's CPU (docs/performance.md), each checked by tests/unit/test_litellm_contract.py
# against the litellm versions pyproject.toml allows, each falling back to litellm's plain
# behaviour with one WARNING when a litellm release no longer has it, and all of them off with
# LLMJOBS_LITELLM_FAST_PATH=0:
# - litellm._internal_context.internal_sub_call: skip litellm's logging payload (_quiet_logging);
# - the shape of the synchronous half acompletion hands to the loop's executor (CallExecutor);
# - the loop's private _default_executor, to replace it once (install_call_executor);
# - a nominal price for models we price ourselves (_NOMINAL) and `_hidden_params` to read the
#   cost litellm computed (_cost).
try:  # litellm's switch for calls whose success it should not log (internal sub-calls)
    from litellm._internal_context import internal_sub_call as _unlogged_call
except ImportError:  # another litellm version: its logging stays on
    _unlogged_call = None

from db.catalog import CatalogModel
from tasks import logs
from tasks.config import get_settings
from tasks.errors import InvalidInput
from tasks.llm import catalog, offline
from tasks.llm.errors import ModelError, PermanentModelError, TransientModelError
from tasks.logs import get_logger

log = get_logger("llmjobs.models")


def _fallback(what: str, detail: str) -> None:
    """Log once per process that a fast path is gone and litellm's plain behaviour is used."""
    logs.warn_once(
        log,
        what,
        "litellm fast path unavailable; using litellm's plain behaviour",
        fast_path=what,
        detail=detail,
        litellm_version=_litellm_version(),
    )


def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


def fast_path() -> bool:
    """Whether the fast paths are on (LLMJOBS_LITELLM_FAST_PATH, on by default)."""
    return get_settings().litellm_fast_path


_BUILTIN_PROVIDERS = frozenset(p.value for p in LlmProviders)
_extra_providers: dict[str, Any] = {}
_set_up = False


def set_up_litellm() -> None:
    """Configure litellm for this process, once: no debug prints, no telemetry, and our providers
    registered (the offline models, the test helpers' stubs). A worker calls it when it starts;
    the functions here that call litellm make sure of it too."""
    global _set_up
    if _set_up:
        return
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    _register_providers()
    _set_up = True


# Models listed by default; each shows up only when its credentials are present.
SUGGESTED_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "anthropic/claude-3-5-haiku-latest",
    "anthropic/claude-3-5-sonnet-latest",
    "ollama/llama3.1",
)


def _register_providers() -> None:
    providers = {offline.PROVIDER: offline.OfflineModels(), **_extra_providers}
    litellm.custom_provider_map = [
        {"provider": name, "custom_handler": handler} for name, handler in providers.items()
    ]
    litellm.custom_llm_provider_map = {}  # rebuilt by litellm from custom_provider_map
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


def register_provider(name: str, handler: Any) -> None:
    """Add a litellm CustomLLM handler under a provider name (used by the test helpers)."""
    set_up_litellm()
    _extra_providers[name] = handler
    catalog.register_local(name)
    _register_providers()
    _unpriced.cache_clear()
    _setup_is_cpu_only.cache_clear()


def unregister_provider(name: str) -> None:
    set_up_litellm()
    _extra_providers.pop(name, None)
    catalog.unregister_local(name)
    _register_providers()
    _unpriced.cache_clear()
    _setup_is_cpu_only.cache_clear()


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: str
    offline: bool


@dataclass(frozen=True)
class ModelAnswer:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    latency_ms: int


def _openai_compatible_base() -> str | None:
    return get_settings().openai_api_base or None


# An OpenAI-compatible server (OPENAI_API_BASE, models named openai/<name>) is called through
# litellm's own HTTP handler for such servers, its `hosted_vllm` provider: the same chat request
# (OpenAI's parameter mapping, a bearer key), without the openai SDK's client and response
# models, for less CPU per call (docs/performance.md). LLMJOBS_OPENAI_COMPATIBLE_CLIENT=sdk keeps
# the SDK.
_HTTP_HANDLER = "hosted_vllm"
_COMPATIBLE_SERVER = "OpenAI-compatible server"


def _route(model: str) -> tuple[str, dict[str, Any]]:
    """The model name to give litellm, and the server to call (empty: litellm's default)."""
    base = _openai_compatible_base()
    if not (base and model.startswith("openai/")):
        return model, {}
    settings = get_settings()
    key = settings.openai_api_key.get_secret_value() or "not-needed"
    server = {"api_base": base, "api_key": key}
    if settings.openai_compatible_client == "sdk":
        return model, server
    return f"{_HTTP_HANDLER}/{model.removeprefix('openai/')}", server


@functools.lru_cache(maxsize=512)
def _map_prices(model: str) -> tuple[float, float] | None:
    """litellm's bundled prices per input and output token for model, if it has both."""
    try:
        info = litellm.get_model_info(model)
    except Exception:  # not in the map
        return None
    prices = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not all(isinstance(p, int | float) for p in prices):
        return None
    return float(prices[0]), float(prices[1])


def check_model(model: str) -> ModelInfo:
    """The model if this process can call it now; InvalidInput(field="model") saying why not.
    Front ends check against the catalog instead (tasks.llm.catalog.check_model)."""
    set_up_litellm()
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("model", "is empty")
    provider, _, name = model.partition("/")
    if provider == offline.PROVIDER:
        if name not in offline.MODELS:
            raise InvalidInput(
                "model", f"unknown offline model {model!r} (use {', '.join(offline.NAMES)})"
            )
        return ModelInfo(model, provider, offline=True)
    if provider in _extra_providers:
        return ModelInfo(model, provider, offline=True)
    unknown = InvalidInput(
        "model", f"unknown model {model!r}: name it as litellm does, e.g. openai/<name>"
    )
    try:
        _, provider, _, _ = litellm.get_llm_provider(model)
    except Exception as exc:  # litellm raises BadRequestError for unknown names
        raise unknown from exc
    if provider not in _BUILTIN_PROVIDERS:  # a custom provider registered once, since removed
        raise unknown
    if provider == "openai" and model.startswith("openai/") and _openai_compatible_base():
        return ModelInfo(model, provider, offline=False)  # a local server may need no key
    missing = litellm.validate_environment(model).get("missing_keys") or []
    if missing:
        raise InvalidInput(
            "model", f"{model!r} is not configured: set {', '.join(sorted(missing))}"
        )
    return ModelInfo(model, provider, offline=False)


# Providers whose every model a worker holding their key serves (`provider/*` in the catalog),
# with the chat models litellm's price map knows for them. Other providers' models are served
# when named in LLMJOBS_DEFAULT_MODEL or LLMJOBS_MODELS.
WHOLE_PROVIDERS = (
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "groq",
    "deepseek",
    "xai",
    "together_ai",
    "openrouter",
    "cohere_chat",
    "fireworks_ai",
    "ollama",
)
_CAPABILITIES = (
    "max_input_tokens",
    "max_output_tokens",
    "supports_response_schema",
    "supports_function_calling",
    "supports_vision",
)


def _has_key(provider: str) -> bool:
    if provider == "openai" and _openai_compatible_base():
        return True
    try:
        return not litellm.validate_environment(f"{provider}/any").get("missing_keys")
    except Exception:  # litellm cannot tell: not served as a whole
        return False


def _entry(model: str, provider: str, listed: bool, info: dict[str, Any]) -> CatalogModel:
    override = price_overrides().get(model)
    if catalog.is_local(model):
        costs: tuple[Any, Any] = (0, 0)
    elif override:
        costs = override
    else:
        costs = (info.get("input_cost_per_token"), info.get("output_cost_per_token"))
        if not all(isinstance(c, int | float) for c in costs):
            costs = (None, None)
    return CatalogModel(
        model=model,
        provider=provider,
        listed=listed,
        input_cost_per_token=None if costs[0] is None else Decimal(str(costs[0])),
        output_cost_per_token=None if costs[1] is None else Decimal(str(costs[1])),
        capabilities={k: info[k] for k in _CAPABILITIES if info.get(k) is not None},
    )


def served_models() -> list[CatalogModel]:
    """What this process can serve, as its worker publishes it to the catalog: the offline
    models, the configured default, LLMJOBS_MODELS and the suggested models it holds keys for
    (listed); the models LLMJOBS_MODEL_PRICES prices; and for each of WHOLE_PROVIDERS whose key
    it holds, `provider/*` and the chat models litellm's price map knows (accepted when named)."""
    entries: dict[str, CatalogModel] = {}
    settings = get_settings()
    candidates = [*offline.NAMES, settings.default_model, *settings.extra_models, *SUGGESTED_MODELS]
    for name in dict.fromkeys(candidates):
        try:
            info = check_model(name)
        except InvalidInput:
            continue
        entries[name] = _entry(name, info.provider, True, litellm.model_cost.get(name) or {})
    for name in price_overrides():  # models given prices here: priced wherever they are named
        if name in entries:
            continue
        try:
            info = check_model(name)
        except InvalidInput:
            continue
        entries[name] = _entry(name, info.provider, False, {})
    whole = [p for p in WHOLE_PROVIDERS if _has_key(p)]
    for provider in whole:
        entries.setdefault(f"{provider}/*", _entry(f"{provider}/*", provider, False, {}))
    for name, info in litellm.model_cost.items():
        provider = info.get("litellm_provider")
        if provider not in whole or info.get("mode", "chat") != "chat":
            continue
        for alias in dict.fromkeys([name, name if "/" in name else f"{provider}/{name}"]):
            entries.setdefault(alias, _entry(alias, provider, False, info))
    return list(entries.values())


_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|h|m|s)")


def _seconds(value: object, unit: str = "s") -> float | None:
    """A header's duration in seconds: a number (of `unit`), or OpenAI's `1m2.5s`/`20ms`."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        return sum(float(n) * scale[u] for n, u in parts)
    if not math.isfinite(number) or number < 0:
        return None
    return number / 1000 if unit == "ms" else number


def retry_after(headers: Any) -> float | None:
    """How long a provider asks to wait, in seconds, from its response headers: Retry-After
    (or retry-after-ms), else the later of x-ratelimit-reset-requests and -tokens. litellm may
    pass them prefixed `llm_provider-`."""
    if not headers:
        return None

    def header(name: str) -> Any:
        return headers.get(name) or headers.get(f"llm_provider-{name}")

    for name, unit in (("retry-after-ms", "ms"), ("retry-after", "s")):
        if (found := _seconds(header(name), unit)) is not None:
            return found
    resets = [_seconds(header(f"x-ratelimit-reset-{what}")) for what in ("requests", "tokens")]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    try:
        return retry_after(headers)
    except Exception:  # headers of an unexpected type: no hint
        return None


def translate_error(exc: Exception, server: str | None = None) -> ModelError:
    """A provider failure as TransientModelError (408, 429, 5xx, timeouts, connection, an answer
    that could not be read) or PermanentModelError (everything else: 400, 401, 403, 404, policy,
    ...). `server` names the OpenAI-compatible server a routed call went to (see _route)."""
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    if server is not None:
        message = _readable(message, server)
    transient_types = (litellm.Timeout, litellm.APIConnectionError, litellm.RateLimitError)
    if isinstance(exc, litellm.ContentPolicyViolationError | litellm.ContextWindowExceededError):
        return PermanentModelError(message, status_code=status)
    if status == 200:  # the server said OK but its answer could not be read (not JSON, cut off)
        return TransientModelError(message, status_code=None)
    if isinstance(exc, transient_types) or status in (408, 429) or (status or 0) >= 500:
        return TransientModelError(message, status_code=status, retry_after=_retry_after(exc))
    return PermanentModelError(message, status_code=status)


def _readable(message: str, server: str) -> str:
    """litellm's message for a routed call, naming the server rather than litellm's handler, with
    the server's own error message rather than its whole JSON body."""
    head, found, body = message.partition(f"{_HTTP_HANDLER.capitalize()}Exception - ")
    if not found:
        return message
    try:
        data = json.loads(body)
    except ValueError:
        return f"{head}{server} - {body}"
    error = data.get("error", data) if isinstance(data, dict) else None
    text = error.get("message") if isinstance(error, dict) else error
    return f"{head}{server} - {text if isinstance(text, str) and text else body}"


@functools.lru_cache(maxsize=512)
def native_schema(model: str) -> bool:
    """Whether litellm says the model takes a JSON Schema as its response format (asked of the
    model's own name: an OpenAI-compatible server standing in for it is taken to take it too)."""
    set_up_litellm()
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # a model litellm does not know: the schema goes in the instruction
        return False


async def call_model(
    model: str,
    messages: list[dict[str, str]],
    *,
    timeout: float | None = None,
    json_schema: dict[str, Any] | None = None,
) -> ModelAnswer:
    """One call to the model (asked for answers of json_schema as its response format, when
    given). Raises TransientModelError or PermanentModelError."""
    set_up_litellm()
    target, kwargs = _route(model)
    if json_schema is not None:
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": json_schema},
        }
    watched = _litellm_callbacks()  # a litellm callback reads what litellm records of the call
    prices = price_overrides().get(model)
    if prices is None and target != model:
        prices = _map_prices(model)  # litellm prices the routed name as an unknown model
    if prices is None and (_costs_nothing(model) or _unpriced(model)):
        # _cost records these as 0 (offline, stubs) or unknown, whatever litellm's figure
        prices = _FREE if watched or not fast_path() else _NOMINAL
    if prices is not None:
        # litellm prices the answer with these and skips searching its whole map for the model
        # (a model it has no price for is searched again at every call).
        kwargs["input_cost_per_token"], kwargs["output_cost_per_token"] = prices
    started = time.perf_counter()
    inline = _in_loop_thread.set(_setup_is_cpu_only(model) and not watched and fast_path())
    try:
        with _quiet_logging(watched):
            response = await litellm.acompletion(
                model=target,
                messages=messages,
                timeout=timeout or get_settings().model_timeout,
                max_retries=0,
                **kwargs,
            )
    except Exception as exc:
        raise translate_error(exc, server=_COMPATIBLE_SERVER if target != model else None) from exc
    finally:
        _in_loop_thread.reset(inline)
    latency_ms = int((time.perf_counter() - started) * 1000)
    text = response.choices[0].message.content or ""
    usage = getattr(response, "usage", None)
    return ModelAnswer(
        text=text,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        cost=_cost(model, response),
        latency_ms=latency_ms,
    )


# litellm runs the synchronous half of each async call (mapping parameters, building the request)
# on the event loop's default thread pool and awaits it. With many calls in flight, that hop to a
# thread and back, and the contention for the GIL it brings, cost a share of each call's CPU.
# Under CallExecutor, that half runs in the loop's own thread instead, for the providers whose
# half is CPU only, while no litellm callback (which may block) is configured. Everything else
# the executor is given (DNS lookups, `asyncio.to_thread`, the half of providers that may fetch
# credentials or ask their server about the model) still runs on its threads.
_CPU_ONLY_SETUP = frozenset({"openai", "anthropic", "hosted_vllm"})
_in_loop_thread: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmjobs_litellm_setup_in_loop_thread", default=False
)


@functools.lru_cache(maxsize=512)
def _setup_is_cpu_only(model: str) -> bool:
    if _costs_nothing(model):  # the offline model and stub providers answer in this process
        return True
    try:
        _, provider, _, _ = litellm.get_llm_provider(model)
    except Exception:  # unknown to litellm: the call fails the usual way, from the thread pool
        return False
    return provider in _CPU_ONLY_SETUP


def _is_litellm_setup(fn: Any) -> bool:
    # litellm.acompletion submits partial(context.run, partial(completion, **call)).
    inner = fn.args[0] if isinstance(fn, functools.partial) and fn.args else None
    return isinstance(inner, functools.partial) and inner.func is litellm.main.completion


class CallExecutor(ThreadPoolExecutor):
    """The event loop's default executor in a worker: a thread pool, except for the synchronous
    half of litellm calls to providers whose half does no I/O, which runs at once in the loop's
    thread (see _CPU_ONLY_SETUP and call_model)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        if args or kwargs or not _in_loop_thread.get() or not _is_litellm_setup(fn):
            return super().submit(fn, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:  # as a pool thread would: the awaiting caller sees it
            future.set_exception(exc)
        return future


def install_call_executor(loop: asyncio.AbstractEventLoop) -> None:
    """Make CallExecutor the loop's default executor (once; the pool it replaces winds down)."""
    if not fast_path():
        return
    if not hasattr(loop, "_default_executor"):
        _fallback("call_executor", "the event loop has no _default_executor")
        return
    previous = getattr(loop, "_default_executor", None)  # asyncio keeps no public getter
    if isinstance(previous, CallExecutor):
        return
    loop.set_default_executor(CallExecutor(thread_name_prefix="asyncio"))
    if previous is not None:
        previous.shutdown(wait=False)


# Where litellm keeps the callbacks it calls (a callback given in `callbacks` is copied into
# the lists of the events it handles).
LITELLM_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def _litellm_callbacks() -> bool:
    return any(getattr(litellm, name, None) for name in LITELLM_CALLBACK_LISTS)


def _quiet_logging(watched: bool) -> Any:
    """litellm builds, copies and redacts a logging payload after every call, for its callbacks
    (Langfuse, OpenTelemetry, ...), even when none is configured. With no
    litellm callback configured, calls skip that work; the job logs its own lines."""
    if watched or not fast_path():
        return contextlib.nullcontext()
    if _unlogged_call is None:
        _fallback("internal_sub_call", "litellm._internal_context.internal_sub_call is missing")
        return contextlib.nullcontext()
    return _unlogged_call()


def price_overrides() -> dict[str, tuple[float, float]]:
    """LLMJOBS_MODEL_PRICES as {model: (input, output) dollars per token}.

    The variable reads `model=input/output,...` with prices per million tokens, e.g.
    `openai/llama3=0.10/0.30,ollama/qwen=0/0`; the settings parse and check it at start
    (tasks/config.py, parse_prices).
    """
    return dict(get_settings().model_prices)


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """What a call would cost: configured prices first, then litellm's bundled price map; 0 for
    the offline and stub models; None when no price is known."""
    if _costs_nothing(model):
        return 0.0
    override = price_overrides().get(model)
    if override:
        return prompt_tokens * override[0] + completion_tokens * override[1]
    if _unpriced(model):
        return None
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # a price litellm cannot apply to these figures: unknown, not an error
        return None
    return float(prompt_cost + completion_cost)


_FREE = (0.0, 0.0)
# The price litellm is given for a model whose cost _cost decides itself, while no litellm
# callback is configured (nothing reads litellm's figure then): next to nothing rather than zero,
# because a zero cost makes litellm search its whole price map after every call to explain the
# zero (docs/performance.md has what that costs).
_NOMINAL = (1e-18, 1e-18)


def _costs_nothing(model: str) -> bool:
    """The offline model and the test helpers' stub models."""
    return model.split("/", 1)[0] in (offline.PROVIDER, *_extra_providers)


@functools.lru_cache(maxsize=512)
def _unpriced(model: str) -> bool:
    """Whether litellm's bundled price map (which does not change while a process runs) has no
    price for model."""
    try:
        litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
    except Exception:  # litellm searches its whole map before giving up: asked once per model
        return True
    return False


def _cost(model: str, response: Any) -> float | None:
    if _costs_nothing(model):
        return 0.0
    if model not in price_overrides() and _unpriced(model):
        return None
    # litellm already priced the response during the call (with the configured prices, which
    # call_model passes along): reuse it rather than price it again.
    if fast_path():
        hidden = getattr(response, "_hidden_params", None)
        known = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if known is not None:
            return float(known)
        if not isinstance(hidden, dict):
            _fallback("response_cost", "responses carry no _hidden_params")
    usage = getattr(response, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if prompt is None or completion is None:
        return None
    return estimate_cost(model, prompt, completion)
