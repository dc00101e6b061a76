"""Leaderboard: per model, how often its answers got a thumbs up (with the Wilson 95% interval)
and how often they won side-by-side comparisons, how fast and how costly; with a judge chosen,
how often it passed them (with its interval), ranked by people's thumbs, the judge's pass rate or
both; the model to pick within a cost ceiling; the table as CSV. Analysts see their own outputs;
admins everyone's or one user's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard import auth, charts, deps, empty, ui
from tasks import analytics, comparisons
from tasks.analytics import period
from tasks.errors import InvalidInput

# The table's columns: (heading, help, number format), and their widths in pixels, which add up
# to no more than the 979 px the table has on a 1440 px screen with the sidebar open.
COLUMNS = {
    "model": ("Model", None, None),
    "outputs": ("Outputs", None, None),
    "thumbs_up": ("Up", "Thumbs up", None),
    "thumbs_down": ("Down", "Thumbs down", None),
    "thumbs_up_rate": ("Up rate", "Thumbs-up rate", "percent"),
    "wilson_low": ("95% low", "Wilson 95% interval of the thumbs-up rate", "percent"),
    "wilson_high": ("95% high", "Wilson 95% interval of the thumbs-up rate", "percent"),
    "win_rate": ("Win rate", "Pairwise, in comparisons; a tie counts half.", "percent"),
    "judgements": ("Judged", "Thumbs up or down, plus pairwise judgements.", None),
    "median_latency_ms": ("Latency", "Median latency, in milliseconds", "%.0f ms"),
    "cost_per_output": ("$ / output", "Cost per output, in dollars", "%.6f"),
    "cost_per_thumbs_up": ("$ / up", "Cost per thumbs up, in dollars", "%.6f"),
}
WIDTHS = {"model": 245, "outputs": 65, "thumbs_up": 45, "thumbs_down": 55, "thumbs_up_rate": 65}
WIDTHS |= {"wilson_low": 65, "wilson_high": 70, "win_rate": 65, "judgements": 60}
WIDTHS |= {"median_latency_ms": 75, "cost_per_output": 80, "cost_per_thumbs_up": 75}
# With a judge chosen, its columns follow the thumbs-up rate's.
JUDGE_COLUMNS = {
    "judge_pass_rate": (
        "Pass rate",
        "The judge's pass rate (its verdicts, not people's)",
        "percent",
    ),
    "judge_low": ("Pass 95% low", "Wilson 95% interval of the judge's pass rate", "percent"),
    "judge_high": ("Pass 95% high", "Wilson 95% interval of the judge's pass rate", "percent"),
    "both_rate": ("Both", "Mean of the thumbs-up rate and the judge's pass rate", "percent"),
    "both_low": ("Both low", "Mean of the two intervals' lower bounds", "percent"),
    "both_high": ("Both high", "Mean of the two intervals' upper bounds", "percent"),
}
WIDTHS |= dict.fromkeys(JUDGE_COLUMNS, 80)
RANKINGS = {"human": "People's thumbs up", "judge": "Judge pass rate", "both": "Both (mean)"}

user = auth.require_user()
pool = deps.pool()
library = [t.name for t in deps.library(pool)]
today = datetime.now(UTC).date()

st.title(":material/leaderboard: Leaderboard", anchor=False)
with st.container(border=True):
    row = st.columns([2, 2, 1, 2] if user.is_admin else [2, 2, 1])
    dates = row[0].date_input(
        "Created between (UTC)", value=(today - timedelta(days=29), today), key="leaderboard_dates"
    )
    template_name = row[1].selectbox(
        "Library template",
        [None, *library],
        key="leaderboard_template",
        format_func=lambda t: "All outputs" if t is None else t,
    )
    versions = deps.template_versions(pool, template_name) if template_name else []
    numbers = [v.version for v in versions]
    version = row[2].selectbox(
        "Version",
        [None, *numbers],
        key="leaderboard_version",
        format_func=lambda v: "All" if v is None else f"v{v}",
        disabled=not template_name,
    )
    user_id = None
    if user.is_admin:
        people = {u.id: u.name for u in deps.users(pool)}
        user_id = ui.user_filter(row[3], people, key="leaderboard_user")
    judge_names = {j.id: j.name for j in deps.judge_list(pool, user)}
    ranking = st.columns([2, 3])
    judge_id = ranking[0].selectbox(
        "Judge",
        [None, *judge_names],
        key="leaderboard_judge",
        format_func=lambda j: "No judge" if j is None else judge_names[j],
        help="An LLM judge's pass rate beside people's thumbs (never mixed into them).",
    )
    rank_by = ranking[1].segmented_control(
        "Rank by",
        list(RANKINGS),
        default="human",
        key="leaderboard_rank_by",
        format_func=RANKINGS.get,
        disabled=judge_id is None,
        help="Best first by the lower bound of the rate's 95% interval.",
    )
    if judge_id is None or rank_by is None:
        rank_by = "human"

try:
    start, end = [*dates, None, None][:2]
    created_after, created_before = period(start, end or start)
except InvalidInput as exc:
    ui.show_error(exc)
    st.stop()

entries = deps.leaderboard(
    pool,
    user,
    template_name=template_name,
    version=version,
    user_id=user_id,
    created_after=created_after,
    created_before=created_before,
    judge_id=judge_id,
    rank_by=rank_by,
)
if not entries:
    empty.next_step(
        pool, user, "No outputs in this range.", key="leaderboard", icon=":material/query_stats:"
    )
    st.stop()

ceiling_column, suggestion_column = st.columns([1, 2], gap="large")
ceiling = ceiling_column.number_input(
    "Cost ceiling per output ($)",
    min_value=0.0,
    value=None,
    step=0.001,
    format="%.6f",
    key="leaderboard_ceiling",
    help="Only models whose completed outputs cost at most this on average. Empty: no ceiling.",
)
best = comparisons.suggest(entries, ceiling)
with suggestion_column.container(border=True):
    if best is None:
        st.warning(
            "No rated model within this ceiling." if ceiling is not None else "No rated model yet.",
            icon=":material/recommend:",
        )
    else:
        st.metric(
            "Suggested model",
            best.model,
            help="The best lower bound of the thumbs-up rate (Wilson 95%)"
            + (" within the cost ceiling." if ceiling is not None else "."),
        )
        st.caption(
            f":material/recommend: {best.thumbs_up_rate:.0%} thumbs up "
            f"(95% interval {best.wilson_low:.0%}–{best.wilson_high:.0%}), "
            f"{ui.dollars(best.cost_per_output)} per output."
        )

board = charts.frame(entries)
shown = dict(COLUMNS)
if judge_id is not None:
    names = list(COLUMNS)
    at = names.index("wilson_high") + 1
    shown = (
        {n: COLUMNS[n] for n in names[:at]} | JUDGE_COLUMNS | {n: COLUMNS[n] for n in names[at:]}
    )
st.dataframe(
    board[list(shown)],
    hide_index=True,
    key="leaderboard_table",
    column_config={
        name: st.column_config.NumberColumn(label, width=WIDTHS[name], help=about, format=fmt)
        if name != "model"
        else st.column_config.TextColumn(label, width=WIDTHS[name])
        for name, (label, about, fmt) in shown.items()
    },
)
if judge_id is not None:
    st.caption(
        f":material/gavel: Ranked by {RANKINGS[rank_by].lower()}. The judge's verdicts are "
        "kept apart from people's feedback: the thumbs-up rate counts people only."
    )

st.subheader(":material/thumb_up: Thumbs-up rate with its 95% interval", anchor=False)
if board["wilson_low"].notna().any():
    charts.draw(charts.leaderboard_rates(board))
else:
    st.caption("No rated outputs in this range yet.")

st.subheader(":material/data_object: Schema-valid answers by model", anchor=False)
if template_name and version is None:
    st.caption("Pick a version to see how often answers to it validated against their schema.")
else:
    body = next((v.body for v in versions if v.version == version), None)
    scope = analytics.output_filter(start=start, end=end or start, template=body, user_id=user_id)
    rates = deps.schema_rates(pool, user, scope)
    if rates:
        st.dataframe(charts.schema_rate_rows(rates), hide_index=True, key="leaderboard_schema")
    else:
        st.caption("No json outputs with a JSON Schema finished in this range.")

st.download_button(
    "Download the leaderboard (CSV)",
    data=comparisons.leaderboard_csv(entries),
    file_name=f"llmjobs-leaderboard-{today.isoformat()}.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
    key="leaderboard_csv",
)
