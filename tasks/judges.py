"""LLM judges: a model and a rubric that decide whether an output passes or fails.

Admins define judges and run them over a scope of completed outputs. Each run queues ordinary
LLM jobs (json, with the verdict's JSON Schema) through the submit path, so retries, provider
limits, budgets and costs apply as to any job; each judged output's verdict points at its judge
output, in the same transaction as the jobs. A verdict is read from that output: pass or fail
with a reason, no verdict (with the error), or waiting. Verdicts are kept apart from people's
feedback and never change it. Calibration compares them with people's thumbs (up: pass).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import judges as judges_db
from db.judges import OUTCOMES, Judge, Verdict
from db.models import User
from db.pooled import pooled
from tasks import outputs, templates
from tasks.config import QUEUES, model_name_problem
from tasks.errors import Forbidden, InvalidInput, NotFound
from tasks.llm import catalog, rendering
from tasks.logs import get_logger

__all__ = ["OUTCOMES", "Judge", "Verdict"]

log = get_logger("llmjobs.judges")

MAX_NAME_CHARS = 100
MAX_RUBRIC_CHARS = 20_000
MAX_RUN_OUTPUTS = 5_000  # outputs one run judges at most (the newest of its scope)
MAX_REASON_CHARS = 500
MAX_PAGE = 200
_MAX_ID = 2**63 - 1
DEFAULT_QUEUE = "low"
RUBRIC_VARIABLES = ("prompt", "answer", "corrected_answer", "context")
# What each variable may take of the job's context, in bytes of its JSON text: together they stay
# inside the 64 KiB a submission's context may take.
_BUDGETS = {"prompt": 24_000, "answer": 20_000, "corrected_answer": 10_000, "context": 8_000}
_CUT_NOTE = "\n[cut to fit: the first {shown:,} of {total:,} characters]"

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}

DEFAULT_RUBRIC = """\
You are reviewing an answer an AI model gave. Decide whether it passes.

The request it answered:
<request>
{{ prompt }}
</request>
{% if context %}
The values the request was made from:
<values>
{{ context }}
</values>
{% endif %}
The answer:
<answer>
{{ answer }}
</answer>
{% if corrected_answer %}
A person wrote what the answer should have been:
<corrected_answer>
{{ corrected_answer }}
</corrected_answer>
{% endif %}
Pass the answer only if it does what the request asks: it is correct, complete, in the format \
asked for, no longer than needed, and safe. Fail it otherwise\
{% if corrected_answer %}, and fail it when it disagrees with the corrected answer on anything \
that matters{% endif %}.

Reply with a JSON object: {"verdict": "pass" or "fail", "reason": one or two sentences saying \
why, at most 500 characters}.
"""

_SAMPLE = {
    "prompt": "Name a prime number.",
    "answer": "7",
    "corrected_answer": "",
    "context": "",
}


def _admin(user: User, doing: str) -> None:
    if not user.is_admin:
        raise Forbidden(f"only admins {doing}")


def _id(value: Any, what: str = "judge") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_ID:
        raise NotFound(f"{what} {value} not found")
    return value


def _storable(field: str, value: str) -> str:
    """value, unless PostgreSQL cannot store it as text (NUL, lone surrogates)."""
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "is not valid Unicode text (lone surrogate)") from None
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("name", "must be text")
    _storable("name", value)
    name = " ".join(value.split())
    if not name:
        raise InvalidInput("name", "is required")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput("name", f"must be at most {MAX_NAME_CHARS} characters")
    return name


def check_rubric(rubric: Any) -> str:
    """The rubric if it is a template that renders with the judge's variables only.

    Raises InvalidInput(field="rubric") naming the problem (a syntax error with its line).
    """
    if not isinstance(rubric, str) or not rubric.strip():
        raise InvalidInput("rubric", "is required (start from the default rubric)")
    if len(rubric) > MAX_RUBRIC_CHARS:
        raise InvalidInput(
            "rubric", f"must be at most {MAX_RUBRIC_CHARS:,} characters (got {len(rubric):,})"
        )
    try:
        used = rendering.check_template(rubric)
        unknown = sorted(used - set(RUBRIC_VARIABLES))
        if unknown:
            raise InvalidInput(
                "rubric",
                f"unknown variable{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                f"a rubric sees {', '.join(RUBRIC_VARIABLES)}",
            )
        rendering.render(rubric, _SAMPLE)
    except InvalidInput as exc:
        raise InvalidInput("rubric", exc.message) from exc
    return rubric


def _model(conn: psycopg.Connection, model: Any) -> str:
    catalog.check_model(conn, model)  # InvalidInput(field="model")
    return model


def list_judges(pool: ConnectionPool, viewer: User) -> list[Judge]:
    """Every judge, by name (anyone signed in may read them; admins change and run them)."""
    with pool.connection() as conn:
        return judges_db.list_judges(conn)


def get_judge(pool: ConnectionPool, judge_id: Any, viewer: User) -> Judge:
    """One judge; NotFound when there is none."""
    with pool.connection() as conn:
        return _found(conn, judge_id)


def _found(conn: psycopg.Connection, judge_id: Any) -> Judge:
    found = judges_db.get_judge(conn, _id(judge_id))
    if found is None:
        raise NotFound(f"judge {judge_id} not found")
    return found


def _taken(name: str) -> InvalidInput:
    return InvalidInput("name", f"a judge named {name!r} exists already: choose another name")


def add_judge(
    pool: ConnectionPool, admin: User, *, name: Any, model: Any, rubric: Any = None
) -> Judge:
    """Define a judge (admins only): a name, a model and a rubric (the default when None)."""
    _admin(admin, "define judges")
    name = _name(name)
    rubric = check_rubric(DEFAULT_RUBRIC if rubric is None else rubric)
    with pool.connection() as conn:
        model = _model(conn, model)
        try:
            with conn.transaction():
                judge_id = judges_db.insert_judge(
                    conn, name=name, model=model, rubric=rubric, created_by=admin.id
                )
        except pg_errors.UniqueViolation:
            raise _taken(name) from None
        judge = _found(conn, judge_id)
    log.info("judge defined", judge_id=judge.id, model=model, user_id=admin.id)
    return judge


def edit_judge(
    pool: ConnectionPool,
    admin: User,
    judge_id: Any,
    *,
    name: Any = None,
    model: Any = None,
    rubric: Any = None,
) -> Judge:
    """Change a judge's name, model or rubric (admins only; parts left None are kept). Verdicts
    already given stay as they are."""
    _admin(admin, "change judges")
    with pool.connection() as conn:
        old = _found(conn, judge_id)
        new_name = old.name if name is None else _name(name)
        new_model = old.model if model is None else _model(conn, model)
        new_rubric = old.rubric if rubric is None else check_rubric(rubric)
        try:
            with conn.transaction():
                if not judges_db.update_judge(
                    conn, old.id, name=new_name, model=new_model, rubric=new_rubric
                ):
                    raise NotFound(f"judge {judge_id} not found")
        except pg_errors.UniqueViolation:
            raise _taken(new_name) from None
        judge = _found(conn, old.id)
    log.info("judge changed", judge_id=judge.id, model=judge.model, user_id=admin.id)
    return judge


def delete_judge(pool: ConnectionPool, admin: User, judge_id: Any) -> None:
    """Delete a judge and its verdicts (admins only); its outputs stay, as any output."""
    _admin(admin, "delete judges")
    with pool.connection() as conn:
        if not judges_db.delete_judge(conn, _id(judge_id)):
            raise NotFound(f"judge {judge_id} not found")
    log.info("judge deleted", judge_id=judge_id, user_id=admin.id)


class JudgeScope(BaseModel):
    """The outputs a run covers: completed ones, narrowed by any of these."""

    user_id: int | None = None
    model: str | None = None
    template_name: str | None = None
    template_version: int | None = None
    template: str | None = None
    batch_id: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    rated_only: bool = False


class JudgeRun(BaseModel):
    judge_id: int
    queue: str
    queued: int
    capped: bool
    cap: int = MAX_RUN_OUTPUTS
    output_ids: list[int]  # the judged outputs
    judge_output_ids: list[int]  # the judge's jobs' outputs, in the same order
    message: str


def _scope_params(conn: psycopg.Connection, scope: JudgeScope) -> dict[str, Any]:
    """The scope's filters, checked; InvalidInput names the bad one."""
    for field in ("user_id", "batch_id"):
        value = getattr(scope, field)
        if value is not None and not 0 < value <= _MAX_ID:
            raise InvalidInput(field, "must be a positive id")
    for field in ("model", "template_name", "template"):
        value = getattr(scope, field)
        if value is not None:
            _storable(field, value)
    if scope.model is not None and (problem := model_name_problem(scope.model)):
        raise InvalidInput("model", problem)
    if scope.template is not None and len(scope.template) > rendering.MAX_TEMPLATE_BYTES:
        raise InvalidInput("template", f"is larger than {rendering.MAX_TEMPLATE_BYTES // 1024} KiB")
    if scope.template_version is not None and not scope.template_name:
        raise InvalidInput("template_version", "give the template_name it is a version of")
    if scope.template_version is not None and not 0 < scope.template_version < 2**31:
        raise InvalidInput("template_version", "must be a positive version number")
    if scope.template_name and scope.template:
        raise InvalidInput("template", "give a template or a template_name, not both")
    for field in ("created_after", "created_before"):
        value = getattr(scope, field)
        if value is not None and value.utcoffset() is None:
            raise InvalidInput(field, "must carry a time zone (UTC: Z)")
    if scope.created_after and scope.created_before and scope.created_after > scope.created_before:
        raise InvalidInput("created_before", "is before created_after")
    version_id = None
    if scope.template_name:
        version_id = templates.get_version_on(conn, scope.template_name, scope.template_version).id
    return {
        "user_id": scope.user_id,
        "model": scope.model,
        "template_version_id": version_id,
        "template": scope.template,
        "batch_id": scope.batch_id,
        "created_after": scope.created_after,
        "created_before": scope.created_before,
        "rated_only": scope.rated_only,
    }


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8"))


def cut(text: str, budget: int) -> str:
    """text if its JSON takes at most budget bytes; else its beginning and a note saying how
    much of it is shown, together within the budget."""
    if _json_size(text) <= budget:
        return text
    total = len(text)
    # the most characters that fit with the note (a binary search: a character takes 1 to 12
    # bytes of JSON)
    low, high = 0, min(total, budget)
    while low < high:
        middle = (low + high + 1) // 2
        if _json_size(text[:middle] + _CUT_NOTE.format(shown=middle, total=total)) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low] + _CUT_NOTE.format(shown=low, total=total)


def rubric_values(output: judges_db.ScopedOutput) -> dict[str, str]:
    """What the rubric sees of an output, each text cut to fit the submission limits."""
    context = (
        json.dumps(output.context, ensure_ascii=False, indent=2, sort_keys=True)
        if output.context
        else ""
    )
    values = {
        "prompt": output.prompt or "",
        "answer": output.raw_response or "",
        "corrected_answer": output.corrected_answer or "",
        "context": context,
    }
    return {name: cut(text, _BUDGETS[name]) for name, text in values.items()}


def run_judge_on(
    conn: psycopg.Connection,
    admin: User,
    judge_id: Any,
    scope: JudgeScope | None = None,
    *,
    queue: Any = DEFAULT_QUEUE,
    again: bool = False,
) -> JudgeRun:
    """Queue one judge job per output of the scope (admins only; the newest MAX_RUN_OUTPUTS),
    submitted by the admin in queue `queue` (low by default), skipping the outputs this judge
    already judged unless `again` (their verdicts are then replaced). The jobs and the verdicts
    pointing at them are written in one transaction (inside the caller's, when one is open).

    Raises Forbidden, NotFound, InvalidInput naming the field, InvalidRows, BudgetExceeded.
    """
    _admin(admin, "run judges")
    scope = scope or JudgeScope()
    if queue is None:
        queue = DEFAULT_QUEUE
    if not isinstance(queue, str) or queue not in QUEUES:
        raise InvalidInput("queue", f"must be one of {', '.join(QUEUES)}")
    if not isinstance(again, bool):
        raise InvalidInput("again", "must be true or false")
    with conn.transaction():
        judge = _found(conn, judge_id)
        judges_db.lock_judge(conn, judge.id)  # one run of a judge at a time
        params = _scope_params(conn, scope)
        rows = judges_db.judge_scope(
            conn, judge_id=judge.id, limit=MAX_RUN_OUTPUTS + 1, again=again, **params
        )
        capped = len(rows) > MAX_RUN_OUTPUTS
        rows = rows[:MAX_RUN_OUTPUTS]
        if not rows:
            return JudgeRun(
                judge_id=judge.id,
                queue=queue,
                queued=0,
                capped=False,
                output_ids=[],
                judge_output_ids=[],
                message="no output to judge in this scope"
                + ("" if again else " (outputs this judge already judged are skipped)"),
            )
        try:
            prepared = outputs.prepare_many(
                conn,
                template=check_rubric(judge.rubric),
                model=judge.model,
                contexts=[rubric_values(row) for row in rows],
                format="json",
                queue=queue,
                cache=False,
                field="outputs",
                json_schema=VERDICT_SCHEMA,
            )
        except InvalidInput as exc:
            if exc.field == "template":
                raise InvalidInput("rubric", exc.message) from exc
            raise
        judge_output_ids, _ = outputs.write_many(conn, prepared, admin)
        judged = [row.id for row in rows]
        judges_db.put_verdicts(conn, judge.id, judged, judge_output_ids)
        outputs.refresh_queue_statistics(conn, len(judge_output_ids))
    log.info(
        "judge run queued",
        judge_id=judge.id,
        model=judge.model,
        user_id=admin.id,
        queue=queue,
        count=len(judged),
        capped=capped,
    )
    message = f"{len(judged):,} judge job{'s' if len(judged) != 1 else ''} queued in {queue}"
    if capped:
        message += (
            f"; capped at {MAX_RUN_OUTPUTS:,} (the newest outputs of the scope): "
            "run it again for the rest"
        )
    return JudgeRun(
        judge_id=judge.id,
        queue=queue,
        queued=len(judged),
        capped=capped,
        output_ids=judged,
        judge_output_ids=judge_output_ids,
        message=message,
    )


run_judge = pooled(run_judge_on)


def _viewer_scope(viewer: User) -> int | None:
    return None if viewer.is_admin else viewer.id


def verdict_counts(pool: ConnectionPool, judge_id: Any, viewer: User) -> dict[str, int]:
    """How many of the judge's verdicts say pass, fail, no verdict and waiting (analysts: on
    their own outputs)."""
    with pool.connection() as conn:
        judge = _found(conn, judge_id)
        return judges_db.outcome_counts(conn, judge.id, _viewer_scope(viewer))


def list_verdicts(
    pool: ConnectionPool,
    judge_id: Any,
    viewer: User,
    *,
    limit: Any = 50,
    before_id: Any = None,
    outcome: Any = None,
) -> list[Verdict]:
    """A page of the judge's verdicts, newest judged output first (output ids below before_id);
    analysts see those on their own outputs."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")
    if before_id is not None and (
        isinstance(before_id, bool)
        or not isinstance(before_id, int)
        or not 0 < before_id <= _MAX_ID
    ):
        raise InvalidInput("before_id", "must be a positive output id")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidInput("outcome", f"must be one of {', '.join(OUTCOMES)}")
    with pool.connection() as conn:
        judge = _found(conn, judge_id)
        return judges_db.verdicts_page(
            conn,
            judge.id,
            limit=limit,
            user_id=_viewer_scope(viewer),
            outcome=outcome,
            before_id=before_id,
        )


def output_verdicts(pool: ConnectionPool, output_id: Any, viewer: User) -> list[Verdict]:
    """Every judge's verdict on an output the viewer may see (NotFound otherwise)."""
    with pool.connection() as conn:
        output = outputs.find_output(conn, output_id, viewer)
        return judges_db.output_verdicts(conn, output.id)


# Calibration


def cohens_kappa(up_pass: int, up_fail: int, down_pass: int, down_fail: int) -> float | None:
    """Cohen's kappa of people's thumbs (up: pass) against the judge's verdicts: the agreement
    beyond what chance alone would give. None when it is undefined: no pair, or an expected
    agreement of 1 (both always said the same one thing)."""
    n = up_pass + up_fail + down_pass + down_fail
    if n == 0:
        return None
    observed = (up_pass + down_fail) / n
    people_pass, judge_pass = (up_pass + up_fail) / n, (up_pass + down_pass) / n
    expected = people_pass * judge_pass + (1 - people_pass) * (1 - judge_pass)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


class Calibration(BaseModel):
    """People's thumbs against a judge's verdicts, on the outputs that have both."""

    model: str | None  # None: every model
    count: int
    agreement: float | None
    kappa: float | None
    kappa_note: str | None  # why kappa is undefined, when it is
    # rows: the person's thumb; columns: the judge's verdict
    matrix: dict[str, dict[str, int]]

    @classmethod
    def of(
        cls, model: str | None, up_pass: int, up_fail: int, down_pass: int, down_fail: int
    ) -> Calibration:
        n = up_pass + up_fail + down_pass + down_fail
        kappa = cohens_kappa(up_pass, up_fail, down_pass, down_fail)
        note = None
        if n == 0:
            note = "undefined: no output has both a thumb and a verdict"
        elif kappa is None:
            note = (
                "undefined: the expected agreement is 1 (people and the judge each gave only "
                "one answer, the same one), so agreement beyond chance cannot be measured"
            )
        return cls(
            model=model,
            count=n,
            agreement=(up_pass + down_fail) / n if n else None,
            kappa=kappa,
            kappa_note=note,
            matrix={
                "thumbs_up": {"pass": up_pass, "fail": up_fail},
                "thumbs_down": {"pass": down_pass, "fail": down_fail},
            },
        )


class JudgeCalibration(BaseModel):
    judge_id: int
    overall: Calibration
    per_model: list[Calibration]


def calibration(pool: ConnectionPool, judge_id: Any, viewer: User) -> JudgeCalibration:
    """Agreement, Cohen's kappa and the confusion matrix of people's thumbs against the judge,
    overall and per model of the judged outputs (analysts: on their own outputs)."""
    with pool.connection() as conn:
        judge = _found(conn, judge_id)
        cells = judges_db.calibration_cells(conn, judge.id, _viewer_scope(viewer))
    per_model = [
        Calibration.of(c.model, c.up_pass, c.up_fail, c.down_pass, c.down_fail) for c in cells
    ]
    overall = Calibration.of(
        None,
        sum(c.up_pass for c in cells),
        sum(c.up_fail for c in cells),
        sum(c.down_pass for c in cells),
        sum(c.down_fail for c in cells),
    )
    return JudgeCalibration(judge_id=judge.id, overall=overall, per_model=per_model)
