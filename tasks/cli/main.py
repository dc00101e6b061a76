"""`llmjobs`: the command line of LLM Jobs. Every command prints JSON on stdout.

Invalid input (a bad setting included) prints `error: <field>: <reason>` on stderr and exits 2;
a missing or forbidden thing, or a database out of reach, exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from tasks.cli import judges as judge_commands
from tasks.errors import InvalidInput, LLMJobsError

EXIT_INVALID = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


def _json_arg(field: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        from tasks.llm import rendering

        return rendering.parse_context(text, field)

    return parse


def plain(value: Any) -> Any:
    """value ready for JSON: models as dicts, Decimals (costs) as fixed-point strings, never
    exponent notation such as "1E-8"; dates and the rest as pydantic writes them."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _print(value: Any) -> None:
    print(
        json.dumps(
            plain(value),
            default=lambda v: to_jsonable_python(v, fallback=str),
            ensure_ascii=False,
            indent=2,
        )
    )


_opened: list[Any] = []  # the pools a command opened, closed when it ends


def _pool():
    import logging

    from db.pool import sync_pool
    from tasks.config import database_url

    url = database_url()
    _check_reachable(url)
    # A connection lost later is reported once, by main, not by the pool at each retry.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    pool = sync_pool(url, max_size=2)
    _opened.append(pool)
    return pool


def _check_reachable(url: str) -> None:
    """One connection tried (for up to 5 seconds unless the URL sets connect_timeout): a database
    out of reach is one error, at once, instead of the pool's retries."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from db.pool import connect

    wait = {} if "connect_timeout" in conninfo_to_dict(url) else {"connect_timeout": 5}
    try:
        connect(url, **wait).close()
    except psycopg.OperationalError as exc:
        raise LLMJobsError(_unreachable(url, exc)) from None


def _unreachable(url: str, exc: BaseException) -> str:
    """One line naming the database out of reach (host and port, never the password)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:
        params = {}
    where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
    reason = " ".join(str(exc).split()) or type(exc).__name__
    password = str(params.get("password") or "")
    if password:
        reason = reason.replace(password, "***")
    return f"cannot reach the database at {where} (DATABASE_URL): {reason}"


def _database_problem(exc: BaseException) -> str | None:
    """The line for a database lost during a command (None: exc is no such error)."""
    psycopg, psycopg_pool = sys.modules.get("psycopg"), sys.modules.get("psycopg_pool")
    lost = tuple(
        kind
        for kind in (
            getattr(psycopg, "OperationalError", None),
            getattr(psycopg_pool, "PoolTimeout", None),
        )
        if kind is not None
    )
    if not lost or not isinstance(exc, lost):
        return None
    from tasks.config import database_url

    return _unreachable(database_url(), exc)


def _user(pool, name: str | None):
    from tasks.outputs import resolve_user

    with pool.connection() as conn:
        return resolve_user(conn, name)


def cmd_migrate(args: argparse.Namespace) -> Any:
    from db.migrate import apply
    from db.pool import connect
    from tasks import accounts
    from tasks.config import database_url, get_settings

    with connect(database_url()) as conn:
        applied = apply(conn)
    pool = _pool()
    created = None
    if not accounts.list_users(pool):
        # A fresh installation works at once: a local admin for the CLI and single-user mode.
        created = accounts.ensure_user(pool, get_settings().user, admin=True).name
    return {"applied": applied, "created_user": created}


def cmd_submit(args: argparse.Namespace) -> Any:
    from tasks.outputs import submit

    pool = _pool()
    return submit(
        pool,
        user=_user(pool, args.user),
        template=args.template,
        model=args.model,
        context=args.context,
        format=args.format,
        queue=args.queue,
        agent=args.agent,
        fetcher=args.fetcher,
        fetcher_args=args.fetcher_args,
        template_name=args.template_name,
        template_version=args.template_version,
        cache=True if args.cache else None,
        json_schema=_schema_text(args.schema),
    )


def _schema_text(value: str | None) -> str | None:
    """--schema: the schema's JSON as given, or read from the file it names (bounded). Given,
    it may not be empty."""
    if value is None:
        return None
    from tasks.errors import InvalidInput
    from tasks.llm.schemas import MAX_SCHEMA_BYTES

    if _looks_like_json(value):
        return value
    shown = value if len(value) <= 200 else value[:199] + "…"
    try:
        with open(value, "rb") as handle:
            data = handle.read(MAX_SCHEMA_BYTES + 1)
    except OSError as exc:
        raise InvalidInput("json_schema", f"cannot read {shown!r}: {exc.strerror}") from None
    if len(data) > MAX_SCHEMA_BYTES:
        raise InvalidInput("json_schema", f"{shown!r} is larger than {MAX_SCHEMA_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("json_schema", f"{shown!r} is not UTF-8 text") from None
    if not text.strip():
        raise InvalidInput("json_schema", f"{shown!r} is empty: give a JSON Schema in it")
    return text


def _looks_like_json(value: str) -> bool:
    """Whether --schema's value is JSON text rather than a file's name."""
    from tasks.errors import InvalidInput

    text = value.lstrip("\ufeff \t\r\n")
    if not text:
        raise InvalidInput("json_schema", "is empty: give a JSON Schema, or leave --schema out")
    if text[0] in '{["':
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _schema_option(
    parser: argparse.ArgumentParser, what: str, when: str = "for --format json: "
) -> None:
    parser.add_argument(
        "--schema",
        default=None,
        help=f"{when}a JSON Schema {what} (its JSON, or a file holding it)",
    )


def cmd_show(args: argparse.Namespace) -> Any:
    from tasks.outputs import get_output

    pool = _pool()
    return get_output(pool, args.id, _user(pool, args.user))


def cmd_list(args: argparse.Namespace) -> Any:
    from tasks.outputs import list_outputs

    pool = _pool()
    viewer = _user(pool, args.as_user)
    filters: dict[str, Any] = {"status": args.status, "model": args.model, "limit": args.limit}
    if args.comment_contains is not None:
        filters["comment_contains"] = args.comment_contains
    if args.user:
        filters["user_id"] = _user(pool, args.user).id
    return list_outputs(pool, viewer, **filters)


def cmd_feedback(args: argparse.Namespace) -> Any:
    from tasks.feedback import KEEP, set_feedback

    if args.reasons is not None and args.no_reasons:
        raise InvalidInput("reasons", "give --reason or --no-reasons, not both")
    if args.corrected_answer is not None and args.corrected_file is not None:
        raise InvalidInput(
            "corrected_answer", "give --corrected-answer or --corrected-file, not both"
        )
    corrected = args.corrected_answer
    if args.corrected_file is not None:
        corrected = _corrected_file(args.corrected_file)
    pool = _pool()
    return set_feedback(
        pool,
        args.id,
        _user(pool, args.user),
        args.value,
        reasons=[] if args.no_reasons else args.reasons,
        comment=KEEP if args.comment is None else args.comment,
        corrected_answer=KEEP if corrected is None else corrected,
    )


def _corrected_file(name: str) -> str:
    """--corrected-file: the UTF-8 text of the file it names, at most as long as a corrected
    answer may be (an empty file clears the corrected answer)."""
    from tasks.feedback import MAX_CORRECTED_CHARS

    limit = MAX_CORRECTED_CHARS * 4  # bytes: four per character at most in UTF-8
    shown = name if len(name) <= 200 else name[:199] + "…"
    try:
        with open(name, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InvalidInput("corrected_file", f"cannot read {shown!r}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidInput("corrected_file", f"{shown!r} is larger than {limit:,} bytes")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise InvalidInput("corrected_file", f"{shown!r} is not UTF-8 text") from None


def cmd_reasons(args: argparse.Namespace) -> Any:
    from tasks import feedback

    pool = _pool()
    if args.action == "set":
        return feedback.add_reason(
            pool, _user(pool, args.user), args.name, args.description, args.position
        )
    if args.action == "remove":
        feedback.remove_reason(pool, _user(pool, args.user), args.name)
        return {"reason": feedback.reason_name(args.name), "removed": True}
    return feedback.list_reasons(pool)


def cmd_rerun(args: argparse.Namespace) -> Any:
    from tasks.outputs import re_run

    pool = _pool()
    return re_run(pool, args.id, _user(pool, args.user))


def cmd_regenerate(args: argparse.Namespace) -> Any:
    from tasks.outputs import regenerate

    pool = _pool()
    return regenerate(
        pool,
        args.id,
        _user(pool, args.user),
        new_context=args.context,
        new_model=args.model,
        new_format=args.format,
    )


def cmd_models(args: argparse.Namespace) -> Any:
    from dataclasses import asdict

    from tasks.llm import catalog

    return [asdict(m) for m in catalog.usable_models(_pool())]


def cmd_users(args: argparse.Namespace) -> Any:
    from tasks import accounts

    pool = _pool()
    if args.action == "create":
        return accounts.create_user(pool, args.name, admin=args.admin, email=args.email)
    return accounts.list_users(pool)


def cmd_tokens(args: argparse.Namespace) -> Any:
    from tasks import accounts

    pool = _pool()
    if args.action == "create":
        token = accounts.create_token(pool, args.name, args.token_name)
        return {"user": args.name, "token": token, "note": "shown once; only its hash is stored"}
    if args.action == "revoke":
        accounts.revoke_token(pool, args.id)
        return {"revoked": args.id}
    return accounts.list_tokens(pool, args.user)


def cmd_queues(args: argparse.Namespace) -> Any:
    from tasks import admin

    pool = _pool()
    user = _user(pool, args.user)
    if args.action == "pause":
        changed = admin.pause_queue(pool, args.name, user)
        return {"queue": args.name.strip(), "paused": True, "changed": changed}
    if args.action == "resume":
        changed = admin.resume_queue(pool, args.name, user)
        return {"queue": args.name.strip(), "paused": False, "changed": changed}
    return admin.queue_states(pool, user)


def _cap_arg(text: str) -> int | str:
    """A cap as given: a whole number as an int, anything else as it was typed, for
    tasks.limits.check to refuse naming the field."""
    if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        return text
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: as refused as any number too large
        from tasks.config import LIMIT_MAXIMA

        return max(LIMIT_MAXIMA.values()) + 1


def cmd_limits(args: argparse.Namespace) -> Any:
    from tasks import limits
    from tasks.errors import NotFound

    pool = _pool()
    user = _user(pool, args.user)
    if args.action == "set":
        return limits.Limit.of(
            limits.set_limit(
                pool, user, args.model, rpm=args.rpm, tpm=args.tpm, concurrent=args.concurrent
            )
        )
    if args.action == "clear":
        if not limits.clear_limit(pool, user, args.model):
            raise NotFound(f"no limit on {args.model.strip()!r}")
        return {"pattern": args.model.strip(), "cleared": True}
    return limits.overview(pool, user)


def cmd_agents(args: argparse.Namespace) -> Any:
    from tasks import agents

    pool = _pool()
    if args.action == "create":
        return agents.create_agent(
            pool,
            _user(pool, args.user),
            name=args.name,
            default_model=args.model,
            default_format=args.format,
            system_prompt=args.system_prompt,
            description=args.description,
            default_json_schema=_schema_text(args.schema),
        )
    return agents.list_agents(pool)


def cmd_templates(args: argparse.Namespace) -> Any:
    from tasks import templates

    pool = _pool()
    if args.action == "save":
        body = sys.stdin.read() if args.body == "-" else args.body
        schema = _schema_text(args.schema)
        return templates.save_template(
            pool, _user(pool, args.user), args.name, body, args.note, schema
        )
    if args.action == "show":
        return templates.versions(pool, args.name)
    return templates.list_templates(pool)


def cmd_budget(args: argparse.Namespace) -> Any:
    from tasks import budgets

    pool = _pool()
    user = budgets.set_budget(pool, args.name, args.amount)
    return {
        "user": user.name,
        "monthly_budget": user.monthly_budget,
        "spent_this_month": budgets.month_spend(pool, user),
    }


def cmd_compare(args: argparse.Namespace) -> Any:
    from tasks import comparisons

    pool = _pool()
    user = _user(pool, args.user)
    if args.action == "submit":
        return comparisons.submit_comparison(
            pool,
            user=user,
            template=args.template,
            template_name=args.template_name,
            context=args.context,
            models=args.models,
            format=args.format,
            queue=args.queue,
            blind=args.blind,
            json_schema=_schema_text(args.schema),
        )
    if args.action == "pick":
        winner = None if args.winner == "tie" else int(args.winner)
        return comparisons.pick(pool, args.id, user, winner)
    return comparisons.get_comparison(pool, args.id, user)


def cmd_leaderboard(args: argparse.Namespace) -> Any:
    from tasks import comparisons

    pool = _pool()
    entries = comparisons.leaderboard(
        pool,
        _user(pool, args.user),
        template_name=args.template_name,
        version=args.version,
        judge_id=args.judge,
        rank_by=args.rank_by,
    )
    if args.csv:
        sys.stdout.write(comparisons.leaderboard_csv(entries))
        return None
    best = comparisons.suggest(entries, args.cost_ceiling)
    return {"entries": [e.model_dump() for e in entries], "suggested": best.model if best else None}


def cmd_batch(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from tasks import batches

    pool = _pool()
    user = _user(pool, args.user)
    if args.action == "submit":
        path = Path(args.file)
        if not path.is_file():
            raise InvalidInput("file", f"no file {args.file}")
        parsed = batches.parse_file(path.read_bytes(), path.name)
        return batches.submit_batch(
            pool,
            user=user,
            template=args.template,
            template_name=args.template_name,
            model=args.model,
            rows=parsed.rows,
            columns=parsed.columns,
            format=args.format,
            queue=args.queue,
            name=args.name or path.name,
            skip_invalid=args.skip_invalid,
            cache=True if args.cache else None,
            json_schema=_schema_text(args.schema),
        )
    if args.action == "cancel":
        return {"batch": args.id, "cancelled": len(batches.cancel_batch(pool, args.id, user))}
    if args.action == "retry":
        return {"batch": args.id, "queued": len(batches.retry_failed(pool, args.id, user))}
    if args.action == "results":
        sys.stdout.write(batches.results(pool, args.id, user, "jsonl" if args.jsonl else "csv"))
        return None
    if args.action == "list":
        return batches.list_batches(pool, user)
    return batches.get_batch(pool, args.id, user)


def cmd_export(args: argparse.Namespace) -> Any:
    from tasks import exports

    pool = _pool()
    for line in exports.export_jsonl(
        pool, _user(pool, args.user), kind=args.kind, model=args.model, format=args.format
    ):
        sys.stdout.write(line)
    return None


def cmd_seed_demo(args: argparse.Namespace) -> Any:
    from dataclasses import asdict

    from tasks import demo

    pool = _pool()
    if args.remove:
        return {"removed": demo.remove(pool)}
    return asdict(demo.seed(pool))


def cmd_run(args: argparse.Namespace) -> Any:
    from tasks.cli.runner import run

    problem = run(dashboard=not args.no_dashboard, api=not args.no_api)
    if problem:
        raise LLMJobsError(problem)


def cmd_api(args: argparse.Namespace) -> Any:
    import uvicorn

    from tasks.config import get_settings

    # Loaded by import string so the job system never imports its front ends.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port or get_settings().api_port,
        log_config=None,
    )


def cmd_worker(args: argparse.Namespace) -> Any:
    from tasks.worker.app import app

    app.run_worker(**({"concurrency": args.concurrency} if args.concurrency else {}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmjobs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(
        func=cmd_migrate
    )

    p = sub.add_parser("submit", help="queue an LLM job")
    p.add_argument("--template", default=None)
    p.add_argument("--context", type=_json_arg("context"), default=None, help="JSON object")
    p.add_argument("--model", default=None, help="litellm model name (default: agent's)")
    p.add_argument("--format", default=None, help="text, json, markdown or html")
    p.add_argument("--queue", default="default", help="high, default or low")
    p.add_argument("--user", default=None)
    p.add_argument("--agent", default=None)
    p.add_argument("--fetcher", default=None, help="context fetcher name")
    p.add_argument("--fetcher-args", type=_json_arg("fetcher_args"), default=None)
    p.add_argument("--template-name", default=None, help="a library template instead of --template")
    p.add_argument("--template-version", type=int, default=None)
    p.add_argument("--cache", action="store_true", help="reuse an identical recent answer")
    _schema_option(p, "every answer must validate against")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("show", help="one output as JSON")
    p.add_argument("id", type=int)
    p.add_argument("--user", default=None, help="who asks (default LLMJOBS_USER)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", help="outputs, newest first")
    p.add_argument("--user", default=None, help="only this user's outputs (admins)")
    p.add_argument("--as-user", default=None, help="who asks (default LLMJOBS_USER)")
    p.add_argument("--status", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument(
        "--comment-contains", default=None, help="only outputs whose feedback comment has this"
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "feedback",
        help="thumbs, reasons, a comment or a corrected answer on an output (parts left out "
        "are kept)",
    )
    p.add_argument("id", type=int)
    p.add_argument("value", nargs="?", default=None, help="thumbs_up, thumbs_down or none")
    p.add_argument(
        "--reason",
        dest="reasons",
        action="append",
        default=None,
        help="a reason from `llmjobs reasons list` (repeat for several; replaces the reasons)",
    )
    p.add_argument("--no-reasons", action="store_true", help="clear the reasons")
    p.add_argument("--comment", default=None, help='a comment ("" clears it)')
    p.add_argument(
        "--corrected-answer", default=None, help='what the answer should have been ("" clears it)'
    )
    p.add_argument(
        "--corrected-file", default=None, help="the corrected answer from a UTF-8 text file"
    )
    p.add_argument("--user", default=None)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("reasons", help="the reasons feedback may give (admins change them)")
    reasons_sub = p.add_subparsers(dest="action", required=True)
    reasons_sub.add_parser("list", help="the reasons, in order")
    c = reasons_sub.add_parser("set", help="add a reason, or change its description or place")
    c.add_argument("name")
    c.add_argument("--description", default=None, help="what it means (kept when left out)")
    c.add_argument("--position", type=_cap_arg, default=None, help="0 to 1000 (kept when left out)")
    c.add_argument("--user", default=None)
    c = reasons_sub.add_parser("remove", help="take a reason off the list (outputs keep it)")
    c.add_argument("name")
    c.add_argument("--user", default=None)
    p.set_defaults(func=cmd_reasons)

    p = sub.add_parser("rerun", help="run an output again with identical parameters")
    p.add_argument("id", type=int)
    p.add_argument("--user", default=None)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("regenerate", help="run an output again with changes")
    p.add_argument("id", type=int)
    p.add_argument("--context", type=_json_arg("context"), default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--format", default=None)
    p.add_argument("--user", default=None)
    p.set_defaults(func=cmd_regenerate)

    sub.add_parser("models", help="the models usable now").set_defaults(func=cmd_models)

    p = sub.add_parser("users", help="create or list users")
    users_sub = p.add_subparsers(dest="action", required=True)
    c = users_sub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--admin", action="store_true")
    c.add_argument("--email", default=None)
    users_sub.add_parser("list")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser(
        "queues", help="list the queues, pause or resume one (admins; waiting jobs stay)"
    )
    queues_sub = p.add_subparsers(dest="action", required=True)
    for action in ("pause", "resume"):
        c = queues_sub.add_parser(action)
        c.add_argument("name")
        c.add_argument("--user", default=None)
    c = queues_sub.add_parser("list")
    c.add_argument("--user", default=None)
    p.set_defaults(func=cmd_queues)

    p = sub.add_parser("limits", help="provider limits per model or prefix, and their use (admins)")
    limits_sub = p.add_subparsers(dest="action", required=True)
    c = limits_sub.add_parser("list", help="every limit, and the use of each limited model")
    c.add_argument("--user", default=None)
    c = limits_sub.add_parser("set", help="set a limit, replacing its caps (at least one)")
    c.add_argument("model", help="a model's name, or a prefix ending in / (openai/)")
    c.add_argument("--rpm", type=_cap_arg, default=None, help="requests per minute")
    c.add_argument("--tpm", type=_cap_arg, default=None, help="tokens per minute")
    c.add_argument("--concurrent", type=_cap_arg, default=None, help="calls in flight")
    c.add_argument("--user", default=None)
    c = limits_sub.add_parser("clear", help="remove a limit")
    c.add_argument("model")
    c.add_argument("--user", default=None)
    p.set_defaults(func=cmd_limits)

    p = sub.add_parser("tokens", help="create, list or revoke API tokens")
    tokens_sub = p.add_subparsers(dest="action", required=True)
    c = tokens_sub.add_parser("create")
    c.add_argument("name", help="user name")
    c.add_argument("--token-name", default="default")
    c = tokens_sub.add_parser("list")
    c.add_argument("--user", default=None)
    c = tokens_sub.add_parser("revoke")
    c.add_argument("id", type=int)
    p.set_defaults(func=cmd_tokens)

    p = sub.add_parser("agents", help="create or list agents")
    agents_sub = p.add_subparsers(dest="action", required=True)
    c = agents_sub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--model", required=True)
    c.add_argument("--format", default="text")
    c.add_argument("--system-prompt", default="")
    c.add_argument("--description", default="")
    _schema_option(c, "its json submissions that give none use", "with --format json: ")
    c.add_argument("--user", default=None, help="owner")
    agents_sub.add_parser("list")
    p.set_defaults(func=cmd_agents)

    p = sub.add_parser("templates", help="the prompt template library")
    templates_sub = p.add_subparsers(dest="action", required=True)
    c = templates_sub.add_parser("save", help="save a new version of a named template")
    c.add_argument("name")
    c.add_argument("body", help="the template text, or - to read it from stdin")
    c.add_argument("--note", default="")
    _schema_option(c, "the version's outputs answer to (they are json)", "")
    c.add_argument("--user", default=None)
    c = templates_sub.add_parser("show", help="every version of a template")
    c.add_argument("name")
    templates_sub.add_parser("list")
    p.set_defaults(func=cmd_templates)

    p = sub.add_parser("budget", help="set a user's monthly budget in dollars (none: no limit)")
    p.add_argument("name")
    p.add_argument("amount")
    p.set_defaults(func=cmd_budget)

    p = sub.add_parser("compare", help="one prompt to several models, side by side")
    compare_sub = p.add_subparsers(dest="action", required=True)
    c = compare_sub.add_parser("submit")
    c.add_argument("--template", default=None)
    c.add_argument("--template-name", default=None)
    c.add_argument("--context", type=_json_arg("context"), default=None)
    c.add_argument("--models", nargs="+", required=True)
    c.add_argument("--format", default=None)
    c.add_argument("--queue", default=None)
    c.add_argument("--blind", action="store_true")
    _schema_option(c, "every model's answer must validate against")
    c.add_argument("--user", default=None)
    c = compare_sub.add_parser("show")
    c.add_argument("id", type=int)
    c.add_argument("--user", default=None)
    c = compare_sub.add_parser("pick", help="the better answer's output id, or tie")
    c.add_argument("id", type=int)
    c.add_argument("winner")
    c.add_argument("--user", default=None)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("leaderboard", help="models ranked by evidence")
    p.add_argument("--template-name", default=None)
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--cost-ceiling", type=float, default=None, help="dollars per output")
    p.add_argument("--judge", type=int, default=None, help="a judge's id: its pass rate too")
    p.add_argument(
        "--rank-by",
        choices=("human", "judge", "both"),
        default="human",
        help="rank by people's thumbs-up rate, the judge's pass rate, or both (their mean)",
    )
    p.add_argument("--csv", action="store_true")
    p.add_argument("--user", default=None)
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("batch", help="one template over the rows of a CSV or JSONL file")
    batch_sub = p.add_subparsers(dest="action", required=True)
    c = batch_sub.add_parser("submit")
    c.add_argument("file", help="a .csv (header row) or .jsonl file: one context per row")
    c.add_argument("--template", default=None)
    c.add_argument("--template-name", default=None, help="a library template instead")
    c.add_argument("--model", required=True)
    c.add_argument("--format", default=None)
    c.add_argument("--queue", default="low")
    c.add_argument("--name", default="")
    c.add_argument("--skip-invalid", action="store_true", help="queue the good rows anyway")
    c.add_argument("--cache", action="store_true", help="reuse identical recent answers")
    _schema_option(c, "every row's answer must validate against (a CSV column per property)")
    c.add_argument("--user", default=None)
    for action in ("status", "cancel", "retry", "results"):
        c = batch_sub.add_parser(action)
        c.add_argument("id", type=int)
        c.add_argument("--user", default=None)
        if action == "results":
            c.add_argument("--jsonl", action="store_true", help="JSONL instead of CSV")
    c = batch_sub.add_parser("list")
    c.add_argument("--user", default=None)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("export", help="completed outputs as JSONL (datasets)")
    p.add_argument(
        "--kind",
        default="all",
        choices=["all", "golden", "eval"],
        help="golden: thumbs up, and corrected answers (given as the answer); eval: thumbs down",
    )
    p.add_argument("--model", default=None)
    p.add_argument("--format", default=None)
    p.add_argument("--user", default=None)
    p.set_defaults(func=cmd_export)

    judge_commands.register(sub)

    p = sub.add_parser("seed-demo", help="load a demo month of finished work (as user demo)")
    p.add_argument("--remove", action="store_true", help="delete the demo data, and only it")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("run", help="database, migrations, worker and front ends (make run)")
    p.add_argument("--no-dashboard", action="store_true")
    p.add_argument("--no-api", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default LLMJOBS_API_PORT or 8000")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="a worker (same as procrastinate --app=tasks.app worker)")
    p.add_argument("--concurrency", type=int, default=None)
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tasks.config import SettingsError, get_settings
    from tasks.logs import configure_logging

    parser = build_parser()
    try:
        configure_logging(get_settings().log_level)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    args = None
    done = False
    try:
        args = parser.parse_args(argv)
        result = args.func(args)
        done = True
        if result is not None:
            _print(result)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except LLMJobsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        problem = _database_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"interrupted: {_not_done(args, done)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        while _opened:
            _opened.pop().close()
    return 0


# What an interrupted command leaves behind. Each of these writes in one transaction (or only
# reads), so an interruption before its commit leaves nothing.
_QUEUES = ("submit", "rerun", "regenerate", "compare submit", "batch submit", "batch retry")
_QUEUES += ("judge run",)
_STREAMS = ("export", "batch results")
_SERVES = ("run", "api", "worker")
_ATOMIC = (
    *("show", "list", "feedback", "models", "budget", "leaderboard"),
    *("users create", "users list", "tokens create", "tokens list", "tokens revoke"),
    *("queues pause", "queues resume", "queues list"),
    *("limits list", "limits set", "limits clear"),
    *("reasons list", "reasons set", "reasons remove"),
    *("agents create", "agents list", "templates save", "templates show", "templates list"),
    *("compare show", "compare pick", "batch status", "batch cancel", "batch list"),
    *("judge list", "judge add", "judge calibration"),
)


def _not_done(args: argparse.Namespace | None, done: bool) -> str:
    """One line saying what a command interrupted by Ctrl-C did (not) do."""
    if args is None:
        return "nothing was done"
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    if command in _SERVES:
        return "stopped"
    if done:
        return "it was done, but its answer was not printed in full"
    if command in _QUEUES:
        return "nothing was queued"
    if command in _STREAMS:
        return "what was printed is incomplete; nothing was changed"
    if command == "migrate":
        return "migrations apply all or nothing; run `llmjobs migrate` again to be sure"
    if command in _ATOMIC:
        return "nothing was changed"
    return f"`llmjobs {command}` stopped before it finished"


if __name__ == "__main__":
    sys.exit(main())
