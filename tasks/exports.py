"""Datasets for evaluation or fine-tuning: completed outputs as JSONL, filtered like the outputs
page; the "golden set" (thumbs-up answers, and the corrected answers people wrote) and the
thumbs-down "eval set". Every line carries the feedback's reasons, comment and corrected answer,
and the verdicts of the LLM judges that judged the output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from psycopg_pool import ConnectionPool

from db import batches as batches_db
from db.models import User
from tasks.errors import InvalidInput
from tasks.llm import formats

Kind = Literal["all", "golden", "eval"]
_FEEDBACK_OF_KIND = {"all": None, "golden": "thumbs_up", "eval": "thumbs_down"}
PAGE = 1000


def _answer(row: dict[str, Any], corrected: bool) -> tuple[str | None, Any]:
    """The answer a line gives (its text and stored form): the corrected answer when `corrected`
    (decoded as the output's format, its text when it does not parse), else the model's."""
    if not corrected:
        return row["raw_response"], row["parsed_output"]
    text = row["corrected_answer"]
    try:
        return text, formats.parse(row["format"], text)
    except formats.ParseError:
        return text, text


def _record(row: dict[str, Any], kind: Kind = "all") -> dict[str, Any]:
    corrected = kind == "golden" and row["corrected_answer"] is not None
    text, output = _answer(row, corrected)
    messages = []
    if row["system_prompt"]:
        messages.append({"role": "system", "content": row["system_prompt"]})
    messages += [
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": text},
    ]
    record = {
        "id": row["id"],
        "prompt": row["prompt"],
        "system_prompt": row["system_prompt"],
        "output": output,
        "corrected": corrected,
        "model": row["model"],
        "format": row["format"],
        "feedback": row["feedback"],
        "reasons": list(row["feedback_reasons"]),
        "comment": row["feedback_comment"],
        "corrected_answer": row["corrected_answer"],
        "judge_verdicts": row["judge_verdicts"],
        "template": row["template"],
        "template_name": row["template_name"],
        "template_version": row["template_version"],
        "context": row["context"],
        "created_at": row["created_at"].isoformat(),
        "messages": messages,
    }
    if corrected:
        record["original_answer"] = row["raw_response"]
    return record


def export_jsonl(
    pool: ConnectionPool,
    viewer: User,
    *,
    kind: Kind = "all",
    user_id: int | None = None,
    model: str | None = None,
    format: str | None = None,
    template: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Iterator[str]:
    """One JSON line per completed output (oldest first): prompt, output, model, format,
    feedback with its reasons, comment and corrected answer, the judges' verdicts, template name
    and version, context, and chat `messages` ready for fine-tuning.

    kind golden keeps thumbs-up answers and every output with a corrected answer, whose line
    gives the corrected answer as its output and assistant message (`"corrected": true`, the
    model's answer kept as `original_answer`); eval keeps thumbs-down ones, with the model's
    answer. Analysts export their own outputs; admins everyone's or user_id's. Raises
    InvalidInput for an unknown kind."""
    if kind not in _FEEDBACK_OF_KIND:
        raise InvalidInput("kind", "one of all, golden, eval")
    filters = {
        "user_id": user_id if viewer.is_admin else viewer.id,
        "model": model,
        "format": format,
        "feedback": _FEEDBACK_OF_KIND[kind],
        "or_corrected": kind == "golden",
        "template": template,
        "created_after": created_after,
        "created_before": created_before,
    }
    after = 0
    while True:
        with pool.connection() as conn:
            page = batches_db.export_outputs(conn, after_id=after, limit=PAGE, **filters)
        for row in page:
            yield json.dumps(_record(row, kind), ensure_ascii=False, default=str) + "\n"
        if len(page) < PAGE:
            return
        after = page[-1]["id"]
