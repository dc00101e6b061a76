"""Monthly budgets per user: a submission that would take a user past theirs is refused."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from db import evidence
from db.models import User
from tasks.errors import BudgetExceeded, InvalidInput, NotFound
from tasks.llm import catalog

DEFAULT_COMPLETION_TOKENS = 500
CHARS_PER_TOKEN = 4


def set_budget(pool: ConnectionPool, user_name: str, amount: str | Decimal | None) -> User:
    """Set (or clear, with None) a user's monthly budget in dollars."""
    budget = None
    if amount is not None and str(amount).strip().lower() not in ("", "none"):
        try:
            budget = Decimal(str(amount))
        except InvalidOperation as exc:
            raise InvalidInput("budget", f"not an amount: {amount!r}") from exc
        if not budget.is_finite() or budget < 0 or budget >= Decimal("1e10"):
            raise InvalidInput("budget", "must be an amount of 0 or more dollars")
    with pool.connection() as conn:
        user = evidence.set_user_budget(conn, user_name, budget)
    if user is None:
        raise NotFound(f"no user named {user_name!r}")
    return user


def month_spend(pool: ConnectionPool, user: User) -> Decimal:
    """What the user's outputs created this month (UTC) have cost so far."""
    with pool.connection() as conn:
        return evidence.month_spend(conn, user.id)


def ensure_within_budget(
    conn: psycopg.Connection,
    user: User,
    model: str,
    template: str,
    context: dict[str, Any],
    count: int = 1,
) -> None:
    """Refuse (BudgetExceeded) when this month's spend plus the estimated cost of `count` such
    jobs exceeds the user's monthly budget. Users without a budget are never refused."""
    if user.monthly_budget is None:
        return
    prompt_tokens = (len(template) + len(json.dumps(context))) // CHARS_PER_TOKEN + 1
    typical = evidence.typical_completion_tokens(conn, model)
    completion_tokens = int(typical) if typical is not None else DEFAULT_COMPLETION_TOKENS
    # the prices the worker serving the model published (its configured ones, else litellm's)
    prices = catalog.prices(conn, model)
    each = prompt_tokens * prices[0] + completion_tokens * prices[1] if prices else 0.0
    spent = evidence.month_spend(conn, user.id)
    needed = spent + Decimal(str(each)) * count
    if needed > user.monthly_budget:
        raise BudgetExceeded(
            f"monthly budget of ${user.monthly_budget:.2f} would be exceeded: "
            f"${spent:.4f} spent this month, this submission may cost about "
            f"${Decimal(str(each)) * count:.4f}"
        )
