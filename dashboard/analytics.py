"""Analytics: how good the answers are (thumbs-up rate per model with its confidence, over time,
per template), why thumbs went down (the reasons given), how many outputs and failures, how fast
and how costly. Analysts see their own outputs; admins everyone's or one user's. The key figures
head the page; below them one view at a time (quality, reasons, volume and speed, cost), so a
page shows a few charts rather than ten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard import auth, charts, deps, empty, ui
from tasks import analytics
from tasks.errors import InvalidInput

user = auth.require_user()
pool = deps.pool()
choices = deps.filter_choices(pool, user)
today = datetime.now(UTC).date()

st.title(":material/insights: Analytics", anchor=False)
with st.container(border=True):
    row = st.columns([2, 2, 3, 2] if user.is_admin else [2, 2, 3])
    dates = row[0].date_input(
        "Created between (UTC)", value=(today - timedelta(days=29), today), key="analytics_dates"
    )
    model = row[1].selectbox(
        "Model",
        [None, *choices.models],
        key="analytics_model",
        format_func=lambda m: "All models" if m is None else m,
    )
    template = row[2].selectbox(
        "Template",
        [None, *choices.templates],
        key="analytics_template",
        format_func=lambda t: "All templates" if t is None else ui.short(t),
    )
    user_id = None
    if user.is_admin:
        people = {u.id: u.name for u in deps.users(pool)}
        user_id = ui.user_filter(row[3], people, key="analytics_user")

try:
    start, end = [*dates, None, None][:2]
    flt = analytics.output_filter(
        start=start, end=end or start, model=model, template=template, user_id=user_id
    )
except InvalidInput as exc:
    ui.show_error(exc)
    st.stop()

quality_rows = deps.model_quality(pool, user, flt)
if not quality_rows:
    empty.next_step(
        pool, user, "No outputs in this range.", key="analytics", icon=":material/query_stats:"
    )
    st.stop()
quality = charts.frame(quality_rows)
total = analytics.totals(quality_rows)

finished = total.completed + total.failed
kpis = st.columns(7)
kpis[0].metric("Outputs", f"{total.outputs:,}")
kpis[1].metric("Completed", f"{total.completed:,}")
kpis[2].metric(
    "Failed",
    f"{total.failed:,}",
    help="Outputs whose job failed; cancelled ones are counted apart.",
)
kpis[2].caption(
    f"Failure rate {analytics.rate_basis(total.failed, finished, 'finished', total.outputs)}"
)
kpis[3].metric(
    "Cancelled",
    f"{total.cancelled:,}",
    help="Jobs cancelled before they ran: neither completed nor failed.",
)
kpis[4].metric("Thumbs-up rate", analytics.percent(total.thumbs_up_rate))
kpis[4].caption(analytics.rate_basis(total.thumbs_up, total.rated, "rated", total.outputs))
kpis[5].metric("Cost", ui.dollars_short(total.cost), help=f"{ui.dollars(total.cost)} in all")
cache = deps.cache_hit_rate(pool, user, flt)
kpis[6].metric(
    "Cache hit rate",
    analytics.percent(cache.rate),
    help=f"{cache.hits:,} of the {cache.eligible:,} completed outputs that asked for the cache "
    "reused an answer (within the filters above)",
)
kpis[6].caption(f"{cache.hits:,} of {cache.eligible:,} that asked for the cache")
VIEWS = {
    "quality": ":material/thumb_up: Quality",
    "reasons": ":material/label: Reasons",
    "operations": ":material/speed: Volume and speed",
    "cost": ":material/payments: Cost",
}
asked = st.query_params.get("view")  # a link opens a view: /analytics?view=reasons
view = st.radio(
    "Show",
    list(VIEWS),
    index=list(VIEWS).index(asked) if asked in VIEWS else 0,
    format_func=VIEWS.__getitem__,
    horizontal=True,
    key="analytics_view",
    label_visibility="collapsed",
)


def quality_view() -> None:
    st.subheader(":material/thumb_up: Thumbs-up rate by model", anchor=False)
    if total.rated:
        charts.draw(charts.rate_by_model(quality))
    else:
        st.caption("No rated outputs in this range yet.")
    RATES = ["thumbs_up_rate", "ci_low", "ci_high", "failure_rate"]
    st.dataframe(
        quality[
            [
                "model",
                "outputs",
                "rated",
                "thumbs_up",
                "thumbs_down",
                *RATES,
                "completed",
                "failed",
                "cancelled",
                "latency_p50_ms",
                "latency_p95_ms",
                "cost",
                "cost_per_thumbs_up",
            ]
        ].assign(**{rate: quality[rate] * 100 for rate in RATES}),
        hide_index=True,
        key="analytics_by_model",
        column_config={
            "thumbs_up": st.column_config.NumberColumn("thumbs up"),
            "thumbs_down": st.column_config.NumberColumn("thumbs down"),
            "thumbs_up_rate": st.column_config.NumberColumn(
                "thumbs-up rate", format="%.1f %%", help="thumbs up / rated"
            ),
            "ci_low": st.column_config.NumberColumn("95% low", format="%.1f %%"),
            "ci_high": st.column_config.NumberColumn("95% high", format="%.1f %%"),
            "failure_rate": st.column_config.NumberColumn(
                "failure rate",
                format="%.1f %%",
                help="failed / (completed + failed): cancelled outputs are left out",
            ),
            "latency_p50_ms": st.column_config.NumberColumn("p50 (ms)", format="%.0f"),
            "latency_p95_ms": st.column_config.NumberColumn("p95 (ms)", format="%.0f"),
            "cost": st.column_config.NumberColumn("cost ($)", format="%.6f"),
            "cost_per_thumbs_up": st.column_config.NumberColumn("$ per thumbs up", format="%.6f"),
        },
    )

    schema_view()
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(":material/timeline: Thumbs-up rate over time", anchor=False)
        over_time = deps.feedback_over_time(pool, user, flt)
        if over_time:
            charts.draw(charts.rate_over_time(charts.frame(over_time)))
        else:
            st.caption("No rated outputs in this range yet.")
    with right:
        st.subheader(":material/description: By template", anchor=False)
        top = st.slider("Top templates", 3, 25, 10, key="analytics_top")
        templates = deps.top_templates(pool, user, flt, top)
        if templates:
            charts.draw(charts.by_template(charts.frame(templates)))
        else:
            st.caption("No rated outputs in this range yet.")


def schema_view() -> None:
    """Schema-valid rates by model, when some outputs in the range had a JSON Schema."""
    rates = deps.schema_rates(pool, user, flt)
    if not rates:
        return
    st.subheader(":material/data_object: Schema-valid answers by model", anchor=False)
    st.caption(
        "Of the json outputs with a JSON Schema that finished: the share whose first answer "
        "validated, and the share that validated in the end (after re-asks)."
    )
    st.dataframe(
        charts.schema_rate_rows(rates),
        hide_index=True,
        key="analytics_schema_rates",
    )


def reasons_view() -> None:
    """Why thumbs went down: the reasons given, by model, by template and over time."""
    by_model = deps.reasons_by_model(pool, user, flt)
    if not by_model:
        st.info(
            "No thumbs-down in this range has a reason yet. When you give an answer a thumbs "
            "down, pick a reason (wrong, incomplete, off-format…) on its page or in a review "
            "queue: the reasons show here by model, by template and over time.",
            icon=":material/label:",
        )
        return
    with_reason = sum({r.model: r.basis for r in by_model}.values())
    thumbs_down = total.rated - total.thumbs_up
    st.caption(
        f"{with_reason:,} of the {thumbs_down:,} thumbs-down outputs in this range give a "
        "reason; each share below is of the thumbs-down outputs with a reason, and an output may "
        "give several."
    )
    st.subheader(":material/label: Thumbs-down reasons by model", anchor=False)
    charts.draw(charts.reasons_grid(charts.reason_rows(by_model), "model", "model"))
    st.subheader(":material/timeline: Reasons over time", anchor=False)
    points = deps.reasons_over_time(pool, user, flt)
    charts.draw(charts.reasons_over_time(charts.reason_rows(points)))
    st.subheader(":material/description: Reasons by template", anchor=False)
    top = st.slider("Top templates", 3, 25, 10, key="analytics_reasons_top")
    by_template = deps.reasons_by_template(pool, user, flt, top)
    charts.draw(charts.reasons_grid(charts.reason_rows(by_template), "label", "template"))
    st.dataframe(
        charts.reason_rows(by_model)[["model", "reason", "outputs", "basis", "basis_text"]],
        hide_index=True,
        key="analytics_reasons_table",
        column_config={
            "outputs": st.column_config.NumberColumn("thumbs-down giving it"),
            "basis": st.column_config.NumberColumn("thumbs-down with a reason"),
            "basis_text": st.column_config.TextColumn("basis"),
        },
    )


def operations_view() -> None:
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(":material/stacked_bar_chart: Volume by status", anchor=False)
        volume = deps.volume_over_time(pool, user, flt)
        charts.draw(charts.volume_by_status(charts.frame(volume)))
    with right:
        st.subheader(":material/error: Failure rate by model", anchor=False)
        charts.draw(charts.failure_rate(quality))
    st.subheader(":material/timer: Latency p50 / p95 by model", anchor=False)
    charts.draw(charts.latency(quality))


def cost_view() -> None:
    offline = {m.name for m in deps.usable_models() if m.offline}
    no_cost = analytics.zero_cost_reason(total.cost, [r.model for r in quality_rows], offline)
    st.subheader(":material/payments: Cost by model", anchor=False)
    if no_cost:
        st.caption(no_cost)
    else:
        left, right = st.columns(2, gap="large")
        charts.draw(charts.money(quality, "cost", "cost ($)"), left)
        charts.draw(charts.money(quality, "cost_per_thumbs_up", "cost per thumbs up ($)"), right)

    st.subheader(":material/bar_chart: Cost over time", anchor=False)
    spent, budget = deps.month_spend(pool, user), user.monthly_budget
    spend = st.columns(3)
    spend[0].metric("Your spend this month", ui.dollars(spent), help="Since the 1st, UTC")
    spend[1].metric("Your monthly budget", "none" if budget is None else f"${budget:,.2f}")
    if budget is not None:
        spend[2].metric("Left this month", f"${max(budget - spent, 0):,.2f}")
    costs = deps.cost_over_time(pool, user, flt)
    if no_cost or not costs.by_model["cost"].any():
        st.caption(no_cost or "No cost recorded in this range.")
    elif user.is_admin:
        left, right = st.columns(2, gap="large")
        charts.draw(charts.cost_over_time(costs.by_model, "model", "model"), left)
        charts.draw(charts.cost_over_time(costs.by_user, "user_name", "user"), right)
    else:
        charts.draw(charts.cost_over_time(costs.by_model, "model", "model"))


{
    "quality": quality_view,
    "reasons": reasons_view,
    "operations": operations_view,
    "cost": cost_view,
}[view]()

st.download_button(
    "Download the feedback (CSV)",
    data=lambda: analytics.feedback_csv(pool, user, flt),
    file_name=f"llmjobs-feedback-{today.isoformat()}.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
    key="analytics_csv",
)
