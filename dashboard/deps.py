"""What pages share: the connection pool (one per process) and cached query results.

Cached results are keyed by their arguments (the viewer included, so nobody gets another's
figures); arguments starting with `_` are not hashed. Writers clear what they change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import streamlit as st
from psycopg_pool import ConnectionPool

from dashboard import charts
from db.pool import sync_pool
from tasks import (
    accounts,
    admin,
    analytics,
    batches,
    budgets,
    comparisons,
    feedback,
    judges,
    limits,
    templates,
)
from tasks import agents as agent_cases
from tasks.analytics import OutputFilter
from tasks.config import database_url, get_settings
from tasks.llm import catalog

if TYPE_CHECKING:
    from datetime import datetime
    from decimal import Decimal

    import pandas as pd

    from db.limits import LimitUse, ModelLimit
    from db.models import Agent, FeedbackReason, User


class CostTables(NamedTuple):
    """Cost and outputs per time bucket, by model and by user (charts.cost_by)."""

    by_model: pd.DataFrame
    by_user: pd.DataFrame


def _db_wait_seconds() -> float:
    """How long a page waits for a database connection before saying it cannot reach it."""
    return get_settings().dashboard_db_timeout


@st.cache_resource(show_spinner=False, on_release=lambda p: p.close())
def _pool_for(url: str) -> ConnectionPool:
    created = sync_pool(url or database_url(), max_size=10)
    created.timeout = _db_wait_seconds()  # the factory's 10 s is long for a person waiting
    return created


def pool() -> ConnectionPool:
    """The pool of DATABASE_URL (the embedded server's when unset)."""
    return _pool_for(get_settings().database_url)


# Short: a worker that starts (or stops) changes what can be offered.
@st.cache_data(ttl=10, show_spinner=False)
def usable_models() -> list[catalog.ModelInfo]:
    return catalog.usable_models(pool())


@st.cache_data(ttl=10, show_spinner=False)
def default_model() -> str:
    return catalog.default_model(pool())


@st.cache_data(ttl=10, show_spinner=False)
def live_workers() -> int:
    return catalog.live_workers(pool())


@st.cache_data(ttl=30, show_spinner=False)
def agents(_pool: ConnectionPool) -> list[Agent]:
    return agent_cases.list_agents(_pool)


@st.cache_data(ttl=60, show_spinner=False)
def users(_pool: ConnectionPool) -> list[User]:
    return accounts.list_users(_pool)


@st.cache_data(ttl=30, show_spinner=False)
def user_by_id(_pool: ConnectionPool, user_id: int) -> User | None:
    return admin.user_by_id(_pool, user_id)


@st.cache_data(ttl=30, show_spinner=False)
def user_by_email(_pool: ConnectionPool, email: str) -> User | None:
    return admin.user_by_email(_pool, email)


@st.cache_data(ttl=60, show_spinner=False)
def local_user(_pool: ConnectionPool, name: str) -> User:
    return admin.local_user(_pool)


@st.cache_data(ttl=30, show_spinner=False)
def filter_choices(_pool: ConnectionPool, viewer: User) -> analytics.FilterChoices:
    return analytics.filter_choices(_pool, viewer)


@st.cache_data(ttl=60, show_spinner=False)
def model_quality(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[analytics.ModelQuality]:
    return analytics.model_quality(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False)
def schema_rates(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[analytics.SchemaRate]:
    return analytics.schema_rates(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False)
def feedback_over_time(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[analytics.FeedbackPoint]:
    return analytics.feedback_over_time(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False)
def volume_over_time(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[analytics.VolumePoint]:
    return analytics.volume_over_time(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False)
def top_templates(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter, limit: int
) -> list[analytics.TemplateStats]:
    return analytics.top_templates(_pool, viewer, flt, limit)


@st.cache_data(ttl=60, show_spinner=False)
def reasons_by_model(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[analytics.ModelReason]:
    return analytics.reasons_by_model(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False)
def reasons_by_template(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter, limit: int
) -> list[analytics.TemplateReason]:
    return analytics.reasons_by_template(_pool, viewer, flt, limit)


@st.cache_data(ttl=60, show_spinner=False)
def reasons_over_time(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> list[analytics.ReasonPoint]:
    return analytics.reasons_over_time(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False, max_entries=20)
def feedback_csv(_pool: ConnectionPool, viewer: User, flt: OutputFilter) -> str:
    return analytics.feedback_csv(_pool, viewer, flt)


@st.cache_data(ttl=60, show_spinner=False)
def cost_over_time(_pool: ConnectionPool, viewer: User, flt: OutputFilter) -> CostTables:
    """Cost per time bucket by model and by user. Kept summed: over a month of many users the
    points per bucket, model and user run to thousands, slow to read back from the cache."""
    points = analytics.cost_over_time(_pool, viewer, flt)
    return CostTables(charts.cost_by(points, "model"), charts.cost_by(points, "user_name"))


@st.cache_data(ttl=60, show_spinner=False)
def cache_hit_rate(
    _pool: ConnectionPool, viewer: User, flt: OutputFilter
) -> analytics.CacheHitRate:
    return analytics.cache_hit_rate(_pool, viewer, flt)


@st.cache_data(ttl=2, show_spinner=False)
def batch_list(_pool: ConnectionPool, viewer: User, limit: int) -> list[batches.Batch]:
    """The viewer's newest batches (admins: everyone's) with their progress."""
    return batches.list_batches(_pool, viewer, limit)


@st.cache_data(ttl=2, show_spinner=False)
def batch(_pool: ConnectionPool, viewer: User, batch_id: int) -> batches.Batch:
    """One batch's progress (shorter-lived than the page's refresh). Raises NotFound."""
    return batches.get_batch(_pool, batch_id, viewer)


@st.cache_data(ttl=600, show_spinner=False, max_entries=4)
def parsed_file(file_id: str, filename: str, _content: bytes) -> batches.ParsedFile:
    """An uploaded file's rows, parsed once per upload (each upload has a new file_id).
    Raises InvalidInput or InvalidRows as batches.parse_file does."""
    return batches.parse_file(_content, filename)


@st.cache_data(ttl=30, show_spinner=False)
def month_spend(_pool: ConnectionPool, user: User) -> Decimal:
    return budgets.month_spend(_pool, user)


@st.cache_data(ttl=30, show_spinner=False)
def library(_pool: ConnectionPool) -> list[templates.TemplateVersion]:
    """Every library template as its latest version."""
    return templates.list_templates(_pool)


@st.cache_data(ttl=30, show_spinner=False)
def template_versions(_pool: ConnectionPool, name: str) -> list[templates.TemplateVersion]:
    return templates.versions(_pool, name)


@st.cache_data(ttl=60, show_spinner=False)
def leaderboard(
    _pool: ConnectionPool,
    viewer: User,
    *,
    template_name: str | None,
    version: int | None,
    user_id: int | None,
    created_after: datetime | None,
    created_before: datetime | None,
    judge_id: int | None = None,
    rank_by: str = "human",
) -> list[comparisons.LeaderboardEntry]:
    return comparisons.leaderboard(
        _pool,
        viewer,
        template_name=template_name,
        version=version,
        user_id=user_id,
        created_after=created_after,
        created_before=created_before,
        judge_id=judge_id,
        rank_by=rank_by,
    )


@st.cache_data(ttl=30, show_spinner=False)
def judge_list(_pool: ConnectionPool, viewer: User) -> list[judges.Judge]:
    return judges.list_judges(_pool, viewer)


@st.cache_data(ttl=10, show_spinner=False)
def recent_comparisons(
    _pool: ConnectionPool, viewer: User, limit: int
) -> list[comparisons.RecentComparison]:
    return comparisons.list_comparisons(_pool, viewer, limit)


@st.cache_data(ttl=2, show_spinner=False)
def queue_overview(
    _pool: ConnectionPool, viewer: User, hours: int, failed_before: int | None
) -> admin.QueueOverview:
    """One snapshot of the queues: the page's figures and lists come from it together."""
    return admin.queue_overview(_pool, viewer, hours=hours, failed_before=failed_before)


@st.cache_data(ttl=10, show_spinner=False)
def model_limits(_pool: ConnectionPool) -> list[ModelLimit]:
    """Every provider limit, by pattern."""
    return limits.list_limits(_pool)


@st.cache_data(ttl=2, show_spinner=False)
def limit_use(_pool: ConnectionPool, viewer: User) -> list[LimitUse]:
    """Each limited model's use now (admins only: raises Forbidden)."""
    return limits.use(_pool, viewer)


@st.cache_data(ttl=2, show_spinner=False)
def batch_pace(
    _pool: ConnectionPool, viewer: User, batch: batches.Batch
) -> limits.BatchPace | None:
    """How its model's rate limit paces a batch the viewer sees (None: it does not)."""
    return limits.batch_pace(_pool, batch)


@st.cache_data(ttl=30, show_spinner=False)
def feedback_reasons(_pool: ConnectionPool) -> list[FeedbackReason]:
    """The reasons feedback may give, in order."""
    return feedback.list_reasons(_pool)


def forget_reasons() -> None:
    """After the reasons list changed."""
    feedback_reasons.clear()


def forget_agents() -> None:
    agents.clear()


def forget_analytics() -> None:
    """After feedback changed: the figures that count it are recomputed on the next view."""
    for cached in (
        model_quality,
        feedback_over_time,
        top_templates,
        feedback_csv,
        leaderboard,
        reasons_by_model,
        reasons_by_template,
        reasons_over_time,
    ):
        cached.clear()


def forget_templates() -> None:
    for cached in (library, template_versions):
        cached.clear()


def forget_comparisons() -> None:
    """After a comparison was queued or picked: the list and the win rates change."""
    for cached in (recent_comparisons, leaderboard, filter_choices):
        cached.clear()


def forget_queues() -> None:
    queue_overview.clear()


def forget_limits() -> None:
    """After a limit was set or cleared: the list, the use and the paces change."""
    for cached in (model_limits, limit_use, batch_pace):
        cached.clear()


def forget_batches() -> None:
    """After a batch was queued, cancelled or retried: its progress and the filters change."""
    for cached in (batch_list, batch, filter_choices):
        cached.clear()


def forget_demo() -> None:
    """After demo data was loaded: every figure, list and filter may change."""
    forget_analytics()
    forget_templates()
    forget_comparisons()
    forget_queues()
    forget_batches()
    for cached in (volume_over_time, cost_over_time, cache_hit_rate, users, month_spend):
        cached.clear()
