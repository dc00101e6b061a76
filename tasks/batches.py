"""Batches: one template over the rows of a CSV or JSONL file, each row a job; progress, cancel,
retry of the failed rows, and the results as CSV or JSONL.

Queuing a batch and retrying its failed rows run on the connection they are given (submit_batch_on,
retry_failed_on), in a transaction of their own or a savepoint inside the caller's; submit_batch
and retry_failed run them on a connection of their own from a pool (db.pooled).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from db import batches as batches_db
from db import outputs as outputs_db
from db.batches import Batch, BatchResult
from db.models import User
from db.pooled import pooled
from tasks import outputs
from tasks.config import QUEUE_PRIORITY
from tasks.csvcells import csv_text, safe_cell
from tasks.errors import Conflict, InvalidInput, InvalidRows, NotFound
from tasks.llm.rendering import NESTED_TOO_DEEPLY
from tasks.logs import get_logger

__all__ = ["Batch", "BatchResult"]
log = get_logger("llmjobs.batches")
# A batch waits behind single jobs unless its submitter picks a queue.
BATCH_QUEUE = "low"
MAX_FILE_BYTES = 50 * 1024 * 1024
RESULT_PAGE = 2000


class ParsedFile(BaseModel):
    columns: list[str]
    rows: list[Any]


def parse_file(content: bytes, filename: str) -> ParsedFile:
    """The rows of a CSV (header row, one context per line, values as text) or JSONL (one JSON
    object per line; blank lines ignored) file, by its name's ending (.csv, .jsonl, .ndjson).

    Raises InvalidInput (file) for an unknown kind, a file that is not UTF-8 or too large, a CSV
    header row that leaves a column unnamed or names one twice, and InvalidRows for JSONL lines
    that do not parse.
    """
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput("file", f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("file", f"is not UTF-8 text (byte {exc.start})") from exc
    if "\x00" in text:
        raise InvalidInput("file", "contains a NUL character")
    name = filename.lower()
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or any(not f for f in reader.fieldnames):
            raise InvalidInput("file", "a CSV file needs a header row naming every column")
        repeated = [f for f in dict.fromkeys(reader.fieldnames) if reader.fieldnames.count(f) > 1]
        if repeated:  # a row would keep only the last of its values under that name
            raise InvalidInput(
                "file",
                f"the header row names {'columns' if len(repeated) > 1 else 'column'} "
                f"{', '.join(repr(f) for f in repeated)} more than once; name each column once",
            )
        rows: list[Any] = []
        for row in reader:
            if None in row:  # more values than columns
                rows.append(
                    outputs.UnreadableRow(f"line {reader.line_num}: more values than columns")
                )
            else:
                rows.append(dict(row))
        return ParsedFile(columns=list(reader.fieldnames), rows=rows)
    if name.endswith((".jsonl", ".ndjson")):
        rows, bad, columns = [], [], {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append((len(rows) + 1, "context", f"line {number} is not JSON: {exc.msg}"))
                value = None
            except RecursionError:
                bad.append((len(rows) + 1, "context", f"line {number} {NESTED_TOO_DEEPLY}"))
                value = None
            rows.append(value)
            if isinstance(value, dict):
                columns.update(dict.fromkeys(value))
        if bad:
            raise InvalidRows(bad)
        return ParsedFile(columns=list(columns), rows=rows)
    raise InvalidInput("file", "name a .csv, .jsonl or .ndjson file")


def submit_batch_on(
    conn: psycopg.Connection,
    *,
    user: User,
    template: str | None,
    model: str | None,
    rows: list[Any],
    columns: list[str] | None = None,
    format: str | None = None,
    queue: str | None = None,
    name: str = "",
    skip_invalid: bool = False,
    cache: bool | None = None,
    template_name: str | None = None,
    template_version: int | None = None,
    json_schema: Any = None,
) -> Batch:
    """Validate every row, then write the batch, its outputs and their jobs on conn in one
    transaction (a savepoint inside the caller's), ending with fresh queue statistics.
    The template is the text given, or a library template's version (recorded on each output).
    Every row's answer answers to the same JSON Schema: json_schema (json only), else the
    template version's (see outputs.validate); the batch records it.

    Raises InvalidRows (bad rows by number, nothing queued unless skip_invalid), InvalidInput,
    BudgetExceeded.
    """
    if len(name) > 200:
        raise InvalidInput("name", "is longer than 200 characters")
    resolved = outputs.resolve_template(conn, template, template_name, template_version)
    template = resolved.text
    prepared = outputs.prepare_many(
        conn,
        template=template,
        model=model,
        contexts=rows,
        format=format,
        queue=queue or BATCH_QUEUE,
        skip_invalid=skip_invalid,
        cache=cache,
        template_version_id=resolved.version_id,
        field="rows",
        json_schema=json_schema,
        template_schema=resolved.json_schema,
    )
    base = prepared.base
    with conn.transaction():
        batch = batches_db.insert_batch(
            conn,
            user_id=user.id,
            name=name,
            template=template,
            model=base.model,
            format=base.format,
            queue=base.queue,
            columns=columns or [],
            skipped=[list(s) for s in prepared.skipped],
            json_schema=base.json_schema,
        )
        output_ids, _ = outputs.write_many(conn, prepared, user)
        batches_db.set_batch_rows(conn, batch.id, output_ids, [n for n, _ in prepared.rows])
        outputs.refresh_queue_statistics(conn, len(output_ids))
    log.info(
        "batch queued",
        batch_id=batch.id,
        user_id=user.id,
        model=base.model,
        count=len(output_ids),
        skipped=len(prepared.skipped),
    )
    return get_batch_on(conn, batch.id, user)


submit_batch = pooled(submit_batch_on)


def get_batch_on(conn: psycopg.Connection, batch_id: int, viewer: User) -> Batch:
    """The batch with its progress (owner or admin); NotFound otherwise."""
    if not isinstance(batch_id, int) or not 0 < batch_id < 2**63:
        raise NotFound(f"batch {batch_id} not found")
    found = batches_db.get_batch(conn, batch_id, viewer_id=None if viewer.is_admin else viewer.id)
    if found is None:
        raise NotFound(f"batch {batch_id} not found")
    return found


get_batch = pooled(get_batch_on)


def list_batches(pool: ConnectionPool, viewer: User, limit: int = 50) -> list[Batch]:
    """The viewer's batches (admins: everyone's), newest first, with progress."""
    with pool.connection() as conn:
        return batches_db.list_batches(
            conn, user_id=None if viewer.is_admin else viewer.id, limit=limit
        )


def cancel_batch(pool: ConnectionPool, batch_id: int, user: User) -> list[int]:
    """Cancel the batch's jobs that have not started (their outputs fail "cancelled by <user>");
    jobs already running finish. Returns the output ids cancelled."""
    batch = get_batch(pool, batch_id, user)
    with pool.connection() as conn, conn.transaction():
        cancelled = batches_db.cancel_batch_jobs(
            conn, batch.id, message=f"cancelled by {user.name}"
        )
    log.info("batch cancelled", batch_id=batch.id, user_id=user.id, outputs=len(cancelled))
    return cancelled


def retry_failed_on(conn: psycopg.Connection, batch_id: int, user: User) -> list[int]:
    """Queue the batch's failed and cancelled rows again (same outputs, a fresh run of attempts)
    on conn, in one transaction (a savepoint inside the caller's). Returns the output ids
    queued. Raises Conflict when no row failed or was cancelled."""
    batch = get_batch_on(conn, batch_id, user)
    with conn.transaction():
        failed = batches_db.batch_failed_outputs(conn, batch.id)
        if not failed:
            raise Conflict(f"batch {batch.id} has no failed or cancelled rows")
        ids = [row["id"] for row in failed]
        batches_db.requeue_outputs(conn, ids)
        job_ids = outputs.defer_outputs(conn, ids, batch.queue, QUEUE_PRIORITY[batch.queue])
        outputs_db.set_output_jobs_bulk(conn, ids, job_ids)
        batches_db.clear_batch_cancelled(conn, batch.id)
        outputs.refresh_queue_statistics(conn, len(ids))
    log.info("batch failed rows queued again", batch_id=batch.id, user_id=user.id, count=len(ids))
    return ids


retry_failed = pooled(retry_failed_on)


def iter_results(pool: ConnectionPool, batch_id: int, viewer: User) -> Iterator[BatchResult]:
    """The batch's outputs in file order, read a page at a time."""
    batch = get_batch(pool, batch_id, viewer)
    after = 0
    while True:
        with pool.connection() as conn:
            page = batches_db.batch_results(conn, batch.id, after_row=after, limit=RESULT_PAGE)
        yield from page
        if len(page) < RESULT_PAGE:
            return
        after = page[-1].batch_row


# What the results add to each row's input columns.
RESULT_FIELDS = ("row", "output", "status", "feedback", "error", "cost", "cached", "output_id")


def _input_columns(columns: list[str]) -> dict[str, str]:
    """{results column: input column}: an input column named like a result field (or like an
    earlier one once prefixed) is prefixed with `input.`, so no input value is overwritten."""
    used = set(RESULT_FIELDS)
    named: dict[str, str] = {}
    for column in columns:
        name = column
        while name in used:
            name = f"input.{name}"
        used.add(name)
        named[name] = column
    return named


def _result_record(batch: Batch, result: BatchResult) -> dict[str, Any]:
    record: dict[str, Any] = {"row": result.batch_row}
    for name, column in _input_columns(batch.columns or list(result.context)).items():
        record[name] = result.context.get(column)
    record.update(
        output=result.parsed_output,
        status=result.status,
        feedback=result.feedback,
        error=result.error_message,
        cost=float(result.cost) if result.cost is not None else None,
        cached=result.cache_hit_of is not None,
        output_id=result.id,
    )
    return record


def results(
    pool: ConnectionPool, batch_id: int, viewer: User, kind: Literal["csv", "jsonl"]
) -> str:
    """The results as CSV or JSONL: the input columns (one named like a result field prefixed
    with `input.`), then output, status, feedback, error, cost, cached and output_id per row. In
    the CSV, text a spreadsheet would run as a formula
    starts with `'` (tasks.csvcells), and a batch whose JSON Schema is an object with
    `properties` gets a column per top-level property after those (see answer_columns); the
    JSONL holds every value exactly."""
    batch = get_batch(pool, batch_id, viewer)
    records = [_result_record(batch, r) for r in iter_results(pool, batch.id, viewer)]
    if kind == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    fields = list(records[0]) if records else ["row", "output", "status"]
    answers = answer_columns(batch.json_schema, fields)
    return csv_text(
        fields + list(answers),
        (
            {
                **record,
                "output": record["output"]
                if isinstance(record["output"], str)
                else json.dumps(record["output"], ensure_ascii=False),
                **{
                    column: _cell_value(_answer_property(record["output"], name))
                    for column, name in answers.items()
                },
            }
            for record in records
        ),
    )


def answer_columns(json_schema: dict[str, Any] | None, taken: list[str]) -> dict[str, str]:
    """The CSV columns of a schema's top-level properties, {column name: property name}, in the
    schema's order: none unless the schema is an object with `properties`. A property's name is
    someone's input, so its column name is made safe like a cell (tasks.csvcells), and prefixed
    with `answer.` while it would repeat a column in taken or an earlier one."""
    if not json_schema or not isinstance(json_schema.get("properties"), dict):
        return {}
    kind = json_schema.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        return {}
    used = set(taken)
    columns: dict[str, str] = {}
    for name in json_schema["properties"]:
        column = safe_cell(name)
        while column in used:
            column = f"answer.{column}"
        used.add(column)
        columns[column] = name
    return columns


def _answer_property(output: Any, name: str) -> Any:
    return output.get(name) if isinstance(output, dict) else None


def _cell_value(value: Any) -> Any:
    """A CSV cell's value: text, numbers and None as they are, anything else (booleans too) as
    JSON."""
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)
