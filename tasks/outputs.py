"""Outputs: submit, re-run, regenerate and read them (feedback on them: tasks.feedback).

Each validates everything before it writes, then writes the output row and its procrastinate job
in one statement (many of them in one transaction): there is never an output without a job nor a
job without an output. The use-cases that queue jobs run on the connection they are given
(submit_on, re_run_on, regenerate_on, submit_many_on), inside the caller's transaction when one
is open, so that the caller commits what it adds with the jobs or not at all (the API's
idempotency key and rate limit); submit, re_run, regenerate and submit_many run them on a
connection of their own from a pool (db.pooled).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import psycopg
from procrastinate import SyncPsycopgConnector
from procrastinate.jobs import Job
from procrastinate.manager import JobManager
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import agents, feedback_details, outputs, queues, users
from db.models import FEEDBACK_VALUES, STATUSES, Agent, LLMOutput, User
from db.pooled import pooled
from tasks import budgets, fetchers, templates
from tasks.config import LLM_TASK, QUEUE_PRIORITY, QUEUES, get_settings, model_name_problem
from tasks.errors import Conflict, InvalidInput, InvalidRows, NotFound
from tasks.llm import catalog, rendering, sandbox, schemas
from tasks.llm.formats import FORMATS
from tasks.logs import get_logger

# Jobs are inserted on the caller's own connection, inside its transaction: this manager needs
# no pool of its own and never touches the worker's async one.
_job_manager = JobManager(SyncPsycopgConnector())


def defer_outputs(
    conn: psycopg.Connection, output_ids: list[int], queue: str, priority: int
) -> list[int]:
    """Queue one LLM job per output on conn (one statement); return the job ids in order."""
    batch = [
        Job(
            queue=queue,
            priority=priority,
            lock=None,
            queueing_lock=None,
            task_name=LLM_TASK,
            task_kwargs={"output_id": output_id},
        )
        for output_id in output_ids
    ]
    return [job.id for job in _job_manager.batch_defer_jobs(jobs=batch, connection=conn)]


log = get_logger("llmjobs.submit")
_DEFAULT_LATENCY_MS = 2000.0
_MAX_ID = 2**63 - 1  # PostgreSQL bigint
MAX_BULK_ROWS = 100_000


class Submission(BaseModel):
    output_id: int
    job_id: int
    status: Literal["queued"] = "queued"
    estimated_completion: datetime


class _Request(BaseModel):
    """A validated request, ready to be written."""

    template: str
    model: str
    context: dict[str, Any]
    format: str
    queue: str
    agent: Agent | None = None
    system_prompt: str | None = None
    template_version_id: int | None = None
    use_cache: bool = False
    json_schema: dict[str, Any] | None = None


def resolve_user(conn: psycopg.Connection, name: str | None) -> User:
    """The user named name (LLMJOBS_USER when None). Raises InvalidInput(field="user")."""
    name = name or get_settings().user
    user = users.get_user_by_name(conn, name)
    if user is None:
        raise InvalidInput("user", f"no user named {name!r} (create one: llmjobs users create)")
    return user


def _resolve_agent(conn: psycopg.Connection, agent: str | int | None) -> Agent | None:
    if agent is None or agent == "":
        return None
    if isinstance(agent, int):
        found = agents.get_agent_by_id(conn, agent)
    else:
        found = agents.get_agent_by_name(conn, agent)
    if found is None:
        raise InvalidInput("agent", f"no agent {agent!r}")
    return found


def validate(
    conn: psycopg.Connection,
    *,
    template: str,
    model: str | None,
    context: Any,
    format: str | None,
    queue: str | None,
    agent: str | int | None = None,
    render: bool = True,
    json_schema: Any = None,
    template_schema: dict[str, Any] | None = None,
) -> _Request:
    """Check a request the way submit does, without writing anything (render=False leaves the
    template and context to the caller). A JSON Schema (a dict, or its JSON text) is for a json
    output only.

    The schema is the one given; else the library template version's (template_schema), whose
    outputs are json (the format when none is given; another format is refused); else, for a
    json output, the agent's default one.

    Raises InvalidInput naming the field: queue, format, model, agent, context, template,
    json_schema.
    """
    queue = queue or "default"
    if queue not in QUEUES:
        raise InvalidInput("queue", f"unknown queue {queue!r} (one of {', '.join(QUEUES)})")
    found_agent = _resolve_agent(conn, agent)
    format = _format(format, found_agent, template_schema)
    model = model or (found_agent.default_model if found_agent else None)
    if not model:
        raise InvalidInput("model", "is required")
    catalog.check_model(conn, model)
    schema = checked_schema(json_schema, format) or _default_schema(
        format, template_schema, found_agent
    )
    if render:
        rendering.check_context(context)
        rendering.render(template, context)
    return _Request(
        json_schema=schema,
        template=template,
        model=model,
        context=context,
        format=format,
        queue=queue,
        agent=found_agent,
        system_prompt=(found_agent.system_prompt or None) if found_agent else None,
    )


def _format(format: str | None, agent: Agent | None, template_schema: Any) -> str:
    """The format asked for, else json for a template version with a schema, else the agent's
    default, else text."""
    if template_schema is not None and not format:
        return "json"
    format = format or (agent.default_format if agent else "text")
    if format not in FORMATS:
        raise InvalidInput("format", f"unknown format {format!r} (one of {', '.join(FORMATS)})")
    if template_schema is not None and format != "json":
        raise InvalidInput(
            "format",
            f"the library template's version carries a JSON Schema, so its outputs are json: "
            f"give the format json or none (not {format})",
        )
    return format


def _default_schema(
    format: str, template_schema: Any, agent: Agent | None
) -> dict[str, Any] | None:
    """The schema of a json output whose request gives none: its template version's, else its
    agent's default one (checked again: what is stored may predate a rule)."""
    if format != "json":
        return None
    if template_schema is not None:
        return schemas.check_schema(template_schema)
    if agent is not None and agent.default_json_schema is not None:
        return schemas.check_schema(agent.default_json_schema)
    return None


def checked_schema(json_schema: Any, format: str) -> dict[str, Any] | None:
    """The JSON Schema of a request (None when none is given: an empty text or {} is none), checked
    (tasks.llm.schemas.check_schema); only a json output takes one."""
    if not schemas.given(json_schema):
        return None
    if format != "json":
        raise InvalidInput(
            "json_schema", f"only a json output takes a JSON Schema (the format is {format})"
        )
    return schemas.check_schema(json_schema)


def write_job(
    conn: psycopg.Connection,
    request: _Request,
    user: User,
    *,
    kind: str = "original",
    parent_id: int | None = None,
    comparison_id: int | None = None,
) -> outputs.Enqueued:
    """Insert the output of a validated request and its job on conn, in one statement (inside
    the caller's transaction if one is open); return their ids and the queue estimate."""
    output = outputs.NewOutput(
        user_id=user.id,
        agent_id=request.agent.id if request.agent else None,
        template=request.template,
        model=request.model,
        context=request.context,
        format=request.format,
        queue=request.queue,
        priority=QUEUE_PRIORITY[request.queue],
        kind=kind,
        parent_id=parent_id,
        system_prompt=request.system_prompt,
        template_version_id=request.template_version_id,
        comparison_id=comparison_id,
        use_cache=request.use_cache,
        json_schema=request.json_schema,
    )
    return outputs.enqueue_output(conn, output, task_name=LLM_TASK)


def _enqueue(
    conn: psycopg.Connection,
    request: _Request,
    user: User,
    *,
    kind: str = "original",
    parent_id: int | None = None,
) -> Submission:
    # The output and its job are one statement: in autocommit it commits alone, with no BEGIN
    # and COMMIT round trips (the budget check before it only reads).
    budgets.ensure_within_budget(conn, user, request.model, request.template, request.context)
    enqueued = write_job(conn, request, user, kind=kind, parent_id=parent_id)
    output_id, job_id = enqueued.output_id, enqueued.job_id
    concurrency = get_settings().worker_concurrency
    waves = 1 + enqueued.ahead // concurrency
    estimated = datetime.now(UTC) + timedelta(
        milliseconds=(enqueued.median_latency_ms or _DEFAULT_LATENCY_MS) * waves
    )
    log.info(
        "queued",
        job_id=job_id,
        output_id=output_id,
        template=request.template[:200],
        model=request.model,
        user_id=user.id,
        queue=request.queue,
        kind=kind,
    )
    return Submission(output_id=output_id, job_id=job_id, estimated_completion=estimated)


class ResolvedTemplate(NamedTuple):
    """The template of a request: its text, and its library version's id and JSON Schema."""

    text: str
    version_id: int | None = None
    json_schema: dict[str, Any] | None = None


def resolve_template(
    conn: psycopg.Connection,
    template: str | None,
    template_name: str | None,
    template_version: int | None = None,
) -> ResolvedTemplate:
    """The text given, or the named library version's (with its id and JSON Schema).

    Raises InvalidInput when both or neither are given, or the name or version is unknown.
    """
    if template_name:
        if template:
            raise InvalidInput("template", "give a template or a template_name, not both")
        version = templates.get_version_on(conn, template_name, template_version)
        return ResolvedTemplate(version.body, version.id, version.json_schema)
    if template is None:
        raise InvalidInput("template", "is required (or give a template_name)")
    return ResolvedTemplate(template)


def submit_on(
    conn: psycopg.Connection,
    *,
    user: User,
    template: str | None,
    model: str | None,
    context: dict[str, Any] | None = None,
    format: str | None = None,
    queue: str | None = None,
    agent: str | int | None = None,
    fetcher: str | None = None,
    fetcher_args: dict[str, Any] | None = None,
    template_name: str | None = None,
    template_version: int | None = None,
    cache: bool | None = None,
    json_schema: Any = None,
) -> Submission:
    """Queue an LLM job on conn (the seed's `LLMJob.perform_later`).

    A json output may take a JSON Schema (json_schema: a dict or its JSON text, Draft 2020-12),
    which every answer must then validate against (tasks.llm.schemas); without one, the library
    template version's schema applies, else a json agent's default one (see validate).

    The template is the text given, or a version of a named library template (the latest unless
    template_version). The context is the named fetcher's result (if any) overlaid by the
    explicit context. With cache (default LLMJOBS_CACHE), a completed answer to the same rendered
    prompt, model and format within LLMJOBS_CACHE_WINDOW is reused instead of calling the model.
    Raises InvalidInput naming the field, or BudgetExceeded; nothing is written then.
    """
    if context is None:
        context = {}
    rendering.check_context(context)
    resolved = resolve_template(conn, template, template_name, template_version)
    if fetcher:
        context = {**fetchers.fetch_context(conn, fetcher, user, fetcher_args), **context}
    request = validate(
        conn,
        template=resolved.text,
        model=model,
        context=context,
        format=format,
        queue=queue,
        agent=agent,
        json_schema=json_schema,
        template_schema=resolved.json_schema,
    )
    request = request.model_copy(
        update={"template_version_id": resolved.version_id, "use_cache": _use_cache(cache)}
    )
    return _enqueue(conn, request, user)


submit = pooled(submit_on)


def _use_cache(cache: bool | None) -> bool:
    return get_settings().cache if cache is None else bool(cache)


class BulkSubmission(BaseModel):
    output_ids: list[int]
    job_ids: list[int]
    status: Literal["queued"] = "queued"
    skipped: list[tuple[int, str, str]] = []


class UnreadableRow(str):
    """A row a file reader could not read, standing in its place; the text says why."""


class PreparedRows(BaseModel):
    """A validated bulk request: what all rows share, and the good rows with their numbers."""

    base: _Request
    rows: list[tuple[int, dict[str, Any]]]
    skipped: list[tuple[int, str, str]]


def prepare_many(
    conn: psycopg.Connection,
    *,
    template: str,
    model: str | None,
    contexts: list[Any],
    format: str | None = None,
    queue: str | None = None,
    agent: str | int | None = None,
    skip_invalid: bool = False,
    cache: bool | None = None,
    template_version_id: int | None = None,
    field: str = "contexts",
    json_schema: Any = None,
    template_schema: dict[str, Any] | None = None,
) -> PreparedRows:
    """Validate a bulk request without writing anything.

    Raises InvalidRows listing each bad row by number (from 1), unless skip_invalid (then they are
    reported in `skipped`, and InvalidRows only when no row is good). Raises InvalidInput for
    problems common to all rows (template, model, format, queue, agent). The template is the
    same for every row, so a row it is too expensive for refuses the whole submission at once
    (InvalidRows naming that row, skip_invalid or not), and so do all the renders together
    spending more than the batch budget (sandbox.MAX_BATCH_STEPS, MAX_BATCH_CHARS). `field` is
    what errors call the rows: the caller's name for them. Every row's output gets the same
    JSON Schema (json_schema, template_schema: as validate).
    """
    if not isinstance(contexts, list) or not contexts:
        raise InvalidInput(field, "must be a non-empty list of JSON objects")
    if len(contexts) > MAX_BULK_ROWS:
        raise InvalidInput(field, f"at most {MAX_BULK_ROWS} rows at once")
    # what all rows share is checked once; each row is then rendered on its own
    base = validate(
        conn,
        template=template,
        model=model,
        context={},
        format=format,
        queue=queue,
        agent=agent,
        render=False,
        json_schema=json_schema,
        template_schema=template_schema,
    )
    rendering.check_template(template)
    good: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, str, str]] = []
    spent = sandbox.Spent()
    for number, context in enumerate(contexts, start=1):
        if isinstance(context, UnreadableRow):
            bad.append((number, "row", str(context)))
            continue
        try:
            rendering.render(template, rendering.check_context(context), spent)
            good.append((number, context))
        except rendering.TooExpensive as exc:
            # the template, not the row: the other rows would cost as much, so none is rendered
            raise InvalidRows([(number, exc.field, exc.message)], field) from exc
        except InvalidInput as exc:
            bad.append((number, exc.field, exc.message))
        if over := spent.over():
            raise InvalidInput(
                "template", f"template too expensive for a batch of {len(contexts)} rows: {over}"
            )
    if (bad and not skip_invalid) or not good:
        raise InvalidRows(bad, field)
    base = base.model_copy(
        update={"use_cache": _use_cache(cache), "template_version_id": template_version_id}
    )
    return PreparedRows(base=base, rows=good, skipped=bad)


def write_many(
    conn: psycopg.Connection, prepared: PreparedRows, user: User
) -> tuple[list[int], list[int]]:
    """Check the budget, then insert every good row's output and job with bulk statements on conn
    (inside the caller's transaction); return (output ids, job ids) in row order."""
    base = prepared.base
    contexts = [context for _, context in prepared.rows]
    budgets.ensure_within_budget(
        conn, user, base.model, base.template, contexts[0], count=len(contexts)
    )
    priority = QUEUE_PRIORITY[base.queue]
    output_ids = outputs.reserve_output_ids(conn, len(contexts))
    job_ids = defer_outputs(conn, output_ids, base.queue, priority)
    outputs.insert_outputs_bulk(
        conn,
        ids=output_ids,
        job_ids=job_ids,
        user_id=user.id,
        agent_id=base.agent.id if base.agent else None,
        template=base.template,
        model=base.model,
        contexts=contexts,
        format=base.format,
        queue=base.queue,
        priority=priority,
        system_prompt=base.system_prompt,
        template_version_id=base.template_version_id,
        use_cache=base.use_cache,
        json_schema=base.json_schema,
    )
    return output_ids, job_ids


def refresh_queue_statistics(conn: psycopg.Connection, rows: int) -> None:
    """The last statement of a bulk write of `rows` jobs, in its transaction: fresh statistics
    for the queue tables it grows a lot (db.queues.analyze_grown_tables), committed with the
    rows, so the workers drain the new backlog at the rate they drain a short queue from the
    first job on, without waiting for autovacuum's ANALYZE."""
    started = time.perf_counter()
    analyzed = queues.analyze_grown_tables(conn, rows)
    if analyzed:
        log.info(
            "queue statistics refreshed",
            tables=analyzed,
            rows=rows,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )


def submit_many_on(
    conn: psycopg.Connection,
    *,
    user: User,
    template: str,
    model: str | None,
    contexts: list[dict[str, Any]],
    format: str | None = None,
    queue: str | None = None,
    agent: str | int | None = None,
    skip_invalid: bool = False,
    cache: bool | None = None,
    json_schema: Any = None,
) -> BulkSubmission:
    """Queue one job per context, all in one transaction (bulk statements), every output with
    the same JSON Schema when json_schema is given (json only).

    Every row is validated first (see prepare_many); nothing is written when a row is refused,
    unless skip_invalid. Raises InvalidRows, InvalidInput, BudgetExceeded.
    """
    prepared = prepare_many(
        conn,
        template=template,
        model=model,
        contexts=contexts,
        format=format,
        queue=queue,
        agent=agent,
        skip_invalid=skip_invalid,
        cache=cache,
        json_schema=json_schema,
    )
    with conn.transaction():
        output_ids, job_ids = write_many(conn, prepared, user)
        refresh_queue_statistics(conn, len(output_ids))
    log.info(
        "queued in bulk",
        user_id=user.id,
        model=prepared.base.model,
        template=template[:200],
        count=len(output_ids),
        skipped=len(prepared.skipped),
    )
    return BulkSubmission(output_ids=output_ids, job_ids=job_ids, skipped=prepared.skipped)


submit_many = pooled(submit_many_on)


BLIND_MODEL = "hidden until the comparison is judged"


def hidden_model(model: str, blind_pending: bool) -> str:
    """The model name a viewer sees: BLIND_MODEL while the answer belongs to a blind comparison
    not yet judged. Every front end (pages, API, CLI, exports) shows a model through this."""
    return BLIND_MODEL if blind_pending else model


def shown(output: LLMOutput) -> LLMOutput:
    """The output as a viewer sees it: a blind comparison's answers keep their models to
    themselves until the pick, everywhere."""
    if not output.blind_pending:
        return output
    return output.model_copy(update={"model": hidden_model(output.model, True)})


def _not_blind(output: LLMOutput) -> None:
    # A new run of a blind answer would show its model before the pick.
    if output.blind_pending:
        raise Conflict(
            f"output {output.id} is an answer of a blind comparison not yet judged: "
            "pick the better answer first"
        )


def get_output(pool: ConnectionPool, output_id: int, viewer: User) -> LLMOutput:
    """The output if viewer owns it or is an admin; NotFound otherwise (existence not revealed).
    The model of an answer in a blind comparison not yet judged reads BLIND_MODEL."""
    with pool.connection() as conn:
        return shown(find_output(conn, output_id, viewer))


def find_output(conn: psycopg.Connection, output_id: int, viewer: User) -> LLMOutput:
    """get_output with the model shown even while a blind comparison hides it."""
    if not isinstance(output_id, int) or not 0 < output_id <= _MAX_ID:
        raise NotFound(f"output {output_id} not found")
    found = outputs.get_output(conn, output_id, viewer_id=None if viewer.is_admin else viewer.id)
    if found is None:
        raise NotFound(f"output {output_id} not found")
    return found


def list_outputs(pool: ConnectionPool, viewer: User, **filters: Any) -> list[LLMOutput]:
    """A page of outputs newest first: the viewer's own, or anyone's (user_id filter) for admins.
    With comment_contains, only those whose feedback comment contains that text (any case)."""
    limit = filters.pop("limit", 50)
    comment = _comment_search(filters.pop("comment_contains", None))
    if not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidInput("limit", "must be between 1 and 500")
    before_id = filters.get("before_id")
    if before_id is not None and (not isinstance(before_id, int) or not 0 < before_id <= _MAX_ID):
        raise InvalidInput("before_id", "must be a positive output id")
    batch_id = filters.get("batch_id")
    if batch_id is not None and (not isinstance(batch_id, int) or not 0 < batch_id <= _MAX_ID):
        raise InvalidInput("batch_id", "must be a positive batch id")
    for name in ("status", "model", "format", "feedback", "template"):
        value = filters.get(name)
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise InvalidInput(name, "must be text without NUL characters")
    for name, allowed in (("status", STATUSES), ("format", FORMATS), ("feedback", FEEDBACK_VALUES)):
        value = filters.get(name)
        if value is not None and value not in allowed:
            raise InvalidInput(name, f"must be one of {', '.join(allowed)}")
    if filters.get("model") is not None and (problem := model_name_problem(filters["model"])):
        raise InvalidInput("model", problem)
    if not viewer.is_admin:
        filters["user_id"] = viewer.id
    with pool.connection() as conn:
        if comment is not None:
            found = feedback_details.list_commented_outputs(conn, comment, limit=limit, **filters)
        else:
            found = outputs.list_outputs(conn, limit=limit, **filters)
        return [shown(o) for o in found]


MAX_COMMENT_SEARCH_CHARS = 200


def _comment_search(value: Any) -> str | None:
    """The text a comment search looks for; None (no search) when empty."""
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidInput("comment_contains", "must be text without NUL characters")
    if len(value) > MAX_COMMENT_SEARCH_CHARS:
        raise InvalidInput(
            "comment_contains", f"must be at most {MAX_COMMENT_SEARCH_CHARS} characters"
        )
    return value.strip() or None


def re_run_on(conn: psycopg.Connection, output_id: int, user: User) -> Submission:
    """A new output with exactly the parameters of output_id (kind re_run, parent linked)."""
    old = find_output(conn, output_id, user)
    _not_blind(old)
    catalog.check_model(conn, old.model)
    agent = agents.get_agent_by_id(conn, old.agent_id) if old.agent_id else None
    request = _Request(
        template=old.template,
        model=old.model,
        context=old.context,
        format=old.format,
        queue=old.queue,
        agent=agent,
        system_prompt=old.system_prompt,
        template_version_id=old.template_version_id,
        json_schema=old.json_schema,
    )
    return _enqueue(conn, request, user, kind="re_run", parent_id=old.id)


re_run = pooled(re_run_on)


def regenerate_on(
    conn: psycopg.Connection,
    output_id: int,
    user: User,
    *,
    new_context: dict[str, Any] | None = None,
    new_model: str | None = None,
    new_format: str | None = None,
) -> Submission:
    """A new output from output_id with changes: given context keys replace the old ones, the
    rest stay; model and format replaced when given (kind regenerate, parent linked)."""
    old = find_output(conn, output_id, user)
    _not_blind(old)
    if new_context is not None:
        rendering.check_context(new_context)
    request = validate(
        conn,
        template=old.template,
        model=new_model or old.model,
        context={**old.context, **(new_context or {})},
        format=new_format or old.format,
        queue=old.queue,
        agent=old.agent_id,
        # the schema stays with a json answer, and goes with the format when that changes
        json_schema=old.json_schema if (new_format or old.format) == "json" else None,
    )
    request = request.model_copy(
        update={"system_prompt": old.system_prompt, "template_version_id": old.template_version_id}
    )
    return _enqueue(conn, request, user, kind="regenerate", parent_id=old.id)


regenerate = pooled(regenerate_on)
