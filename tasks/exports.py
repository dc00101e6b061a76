"""Datasets for evaluation or fine-tuning: completed outputs as JSONL, filtered like the outputs
page; the thumbs-up "golden set" and the thumbs-down "eval set"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from psycopg_pool import ConnectionPool

from db import batches as batches_db
from db.models import User
from tasks.errors import InvalidInput

Kind = Literal["all", "golden", "eval"]
_FEEDBACK_OF_KIND = {"all": None, "golden": "thumbs_up", "eval": "thumbs_down"}
PAGE = 1000


def _record(row: dict[str, Any]) -> dict[str, Any]:
    output = row["parsed_output"]
    messages = []
    if row["system_prompt"]:
        messages.append({"role": "system", "content": row["system_prompt"]})
    messages += [
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": row["raw_response"]},
    ]
    return {
        "id": row["id"],
        "prompt": row["prompt"],
        "system_prompt": row["system_prompt"],
        "output": output,
        "model": row["model"],
        "format": row["format"],
        "feedback": row["feedback"],
        "template": row["template"],
        "template_name": row["template_name"],
        "template_version": row["template_version"],
        "context": row["context"],
        "created_at": row["created_at"].isoformat(),
        "messages": messages,
    }


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
    feedback, template name and version, context, and chat `messages` ready for fine-tuning.
    kind golden keeps thumbs-up answers, eval thumbs-down ones. Analysts export their own
    outputs; admins everyone's or user_id's. Raises InvalidInput for an unknown kind."""
    if kind not in _FEEDBACK_OF_KIND:
        raise InvalidInput("kind", "one of all, golden, eval")
    filters = {
        "user_id": user_id if viewer.is_admin else viewer.id,
        "model": model,
        "format": format,
        "feedback": _FEEDBACK_OF_KIND[kind],
        "template": template,
        "created_after": created_after,
        "created_before": created_before,
    }
    after = 0
    while True:
        with pool.connection() as conn:
            page = batches_db.export_outputs(conn, after_id=after, limit=PAGE, **filters)
        for row in page:
            yield json.dumps(_record(row), ensure_ascii=False, default=str) + "\n"
        if len(page) < PAGE:
            return
        after = page[-1]["id"]
