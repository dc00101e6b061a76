"""`llmjobs judge`: list, define and run LLM judges, and read their calibration against people's
thumbs (defining and running: admins, with --user naming one)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from tasks.errors import InvalidInput


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text[:40]!r}") from None


def _rubric(path: str | None) -> str | None:
    """The rubric in a file, read up to a little past the limit (None: the default rubric)."""
    from tasks.judges import MAX_RUBRIC_CHARS

    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise InvalidInput("rubric", f"no file {path}")
    try:
        with file.open(encoding="utf-8") as handle:
            return handle.read(MAX_RUBRIC_CHARS + 1)
    except UnicodeDecodeError:
        raise InvalidInput("rubric", f"{path} is not UTF-8 text") from None


def _judge_id(pool: Any, user: Any, given: str) -> int:
    """A judge's id, given as its id or its name."""
    from tasks import judges
    from tasks.errors import NotFound

    if given.isdigit():
        return int(given)
    for judge in judges.list_judges(pool, user):
        if judge.name == " ".join(given.split()):
            return judge.id
    raise NotFound(f"no judge named {given[:100]!r}")


def cmd_judge(args: argparse.Namespace) -> Any:
    from tasks import judges
    from tasks.analytics import period
    from tasks.cli.main import _pool, _user

    pool = _pool()
    user = _user(pool, args.user)
    if args.action == "list":
        return judges.list_judges(pool, user)
    if args.action == "add":
        return judges.add_judge(
            pool, user, name=args.name, model=args.model, rubric=_rubric(args.rubric)
        )
    judge_id = _judge_id(pool, user, args.judge)
    if args.action == "calibration":
        return judges.calibration(pool, judge_id, user)
    after, before = period(args.since, args.until)
    scope = judges.JudgeScope(
        user_id=_user(pool, args.of).id if args.of else None,
        model=args.model,
        template_name=args.template_name,
        template_version=args.template_version,
        batch_id=args.batch,
        created_after=after,
        created_before=before,
        rated_only=args.rated_only,
    )
    return judges.run_judge(pool, user, judge_id, scope, queue=args.queue, again=args.again)


def register(sub: Any) -> None:
    """Add `judge` and its actions to the command line's subcommands."""
    p = sub.add_parser("judge", help="LLM judges: list, add, run, calibration")
    judge_sub = p.add_subparsers(dest="action", required=True)
    c = judge_sub.add_parser("list", help="every judge")
    c.add_argument("--user", default=None)
    c = judge_sub.add_parser("add", help="define a judge (admins)")
    c.add_argument("name")
    c.add_argument("--model", required=True, help="the judge's model")
    c.add_argument("--rubric", default=None, help="a file holding the rubric (default: built in)")
    c.add_argument("--user", default=None)
    c = judge_sub.add_parser("run", help="queue judge jobs over a scope of outputs (admins)")
    c.add_argument("judge", help="the judge's id or name")
    c.add_argument("--model", default=None, help="only outputs of this model")
    c.add_argument("--template-name", default=None, help="only outputs of this library template")
    c.add_argument("--template-version", type=int, default=None)
    c.add_argument("--batch", type=int, default=None, help="only outputs of this batch")
    c.add_argument("--since", type=_day, default=None, help="created on or after (UTC day)")
    c.add_argument("--until", type=_day, default=None, help="created on or before (UTC day)")
    c.add_argument("--rated-only", action="store_true", help="only outputs with a thumb")
    c.add_argument("--of", default=None, help="only this user's outputs")
    c.add_argument("--queue", default="low", help="high, default or low (default: low)")
    c.add_argument("--again", action="store_true", help="judge again what it already judged")
    c.add_argument("--user", default=None)
    c = judge_sub.add_parser("calibration", help="the judge against people's thumbs")
    c.add_argument("judge", help="the judge's id or name")
    c.add_argument("--user", default=None)
    p.set_defaults(func=cmd_judge)
