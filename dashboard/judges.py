"""Judges (admins only): define or change an LLM judge (a model and a rubric), run it over a scope
of completed outputs as ordinary queued jobs, count its verdicts, and see how well it agrees with
people's thumbs: agreement, Cohen's kappa with its count and the confusion matrix, overall and per
model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, deps, ui
from tasks import judges
from tasks.analytics import period
from tasks.errors import InvalidInput, LLMJobsError

# The controls by the names InvalidInput gives their fields, with what a person reads.
FIELDS = {
    "name": "Name",
    "model": "Model",
    "rubric": "Rubric",
    "queue": "Queue",
    "template_name": "Library template",
    "batch_id": "Batch",
    "dates": "Created between",
    "user_id": "User",
}
OUTCOME_LOOK = {
    "pass": ":material/check_circle: Pass",
    "fail": ":material/cancel: Fail",
    "no verdict": ":material/help: No verdict",
    "waiting": ":material/schedule: Waiting",
}

user = auth.require_user()
pool = deps.pool()

st.title(":material/gavel: Judges", anchor=False)
if not user.is_admin:
    st.error(
        "Admins only: a judge's runs queue jobs that cost money. Its verdicts on your outputs "
        "show on their Output pages.",
        icon=":material/lock:",
    )
    st.stop()

st.markdown(
    "A judge is a model and a rubric that decide whether an answer **passes or fails**. A run "
    "queues one ordinary job per output (json, checked against the verdict's schema), so "
    "retries, provider limits, budgets and costs apply as to any job. Verdicts are kept apart "
    "from people's feedback and never change the thumbs-up rate; calibration says how far the "
    "judge agrees with people."
)
flash = st.session_state.pop("judges_flash", None)
if flash:
    st.success(flash, icon=":material/check:")


def problem(exc: LLMJobsError) -> str:
    """A refused change in a person's words, naming the control to fix."""
    if isinstance(exc, InvalidInput):
        return f"{FIELDS.get(exc.field, exc.field)}: {exc.message}"
    return str(exc)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def kappa_text(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


every = {j.id: j for j in judges.list_judges(pool, user)}
if "judges_pick_next" in st.session_state:  # a judge just defined or deleted
    st.session_state["judges_pick"] = st.session_state.pop("judges_pick_next")
chosen = st.selectbox(
    "Judge",
    [None, *every],
    index=1 if every else 0,  # a judge's verdicts and calibration first, when there is one
    key="judges_pick",
    format_func=lambda j: "New judge" if j is None else every[j].name,
)
judge = every.get(chosen)

# A judge's verdicts and calibration come first; its definition folds away.
if judge is None:
    st.subheader(":material/edit: Define a judge", anchor=False)
    editor = st.container()
else:
    editor = st.expander(f":material/edit: Change {judge.name}")
with editor:
    served = [m.name for m in deps.usable_models()]
    models = served if judge is None or judge.model in served else [judge.model, *served]
    form_key = f"judges_form_{chosen or 'new'}"
    with st.form(form_key):
        columns = st.columns([1, 1])
        name = columns[0].text_input(
            "Name",
            value=judge.name if judge else "",
            max_chars=judges.MAX_NAME_CHARS,
            key=f"{form_key}_name",
        )
        model = columns[1].selectbox(
            "Model",
            models,
            index=models.index(judge.model) if judge else None,
            key=f"{form_key}_model",
            placeholder="Choose the judge's model",
        )
        rubric = st.text_area(
            "Rubric",
            value=judge.rubric if judge else judges.DEFAULT_RUBRIC,
            height=360,
            key=f"{form_key}_rubric",
            help="A prompt template (as on Submit) that sees `prompt` (the judged output's "
            "prompt), `answer` (its raw answer), `corrected_answer` (what a person said it "
            "should have been, else empty) and `context` (its values, as JSON text). Long texts "
            "are cut to fit, and say so.",
        )
        saved = st.form_submit_button(
            "Save changes" if judge else "Define the judge", icon=":material/save:", type="primary"
        )
if saved:
    try:
        if judge is None:
            made = judges.add_judge(pool, user, name=name, model=model, rubric=rubric)
            st.session_state["judges_pick_next"] = made.id
            st.session_state["judges_flash"] = f"Judge {made.name} defined."
        else:
            made = judges.edit_judge(pool, user, judge.id, name=name, model=model, rubric=rubric)
            st.session_state["judges_flash"] = f"Judge {made.name} saved."
        deps.judge_list.clear()
        st.rerun()
    except LLMJobsError as exc:
        st.error(problem(exc), icon=":material/error:")

if judge is None:
    st.stop()

with st.expander(":material/delete: Delete this judge"):
    sure = st.checkbox(
        f"Delete {judge.name} and its verdicts (its jobs' outputs stay)", key="judges_delete_sure"
    )
    if st.button("Delete", icon=":material/delete:", disabled=not sure, key="judges_delete"):
        try:
            judges.delete_judge(pool, user, judge.id)
            deps.judge_list.clear()
            st.session_state["judges_flash"] = f"Judge {judge.name} deleted."
            st.session_state["judges_pick_next"] = None
            st.rerun()
        except LLMJobsError as exc:
            st.error(problem(exc), icon=":material/error:")

st.subheader(":material/play_arrow: Run it over a scope", anchor=False)
library = [t.name for t in deps.library(pool)]
people = {u.id: u.name for u in deps.users(pool)}
with st.form("judges_run"):
    row = st.columns([2, 2, 1, 2])
    scope_model = row[0].selectbox(
        "Model judged", [None, *served], key="judges_run_model", format_func=lambda m: m or "Any"
    )
    template_name = row[1].selectbox(
        "Library template",
        [None, *library],
        key="judges_run_template",
        format_func=lambda t: t or "Any",
    )
    batch_id = row[2].number_input(
        "Batch", min_value=1, value=None, step=1, key="judges_run_batch", placeholder="Any"
    )
    scope_user = ui.user_filter(row[3], people, key="judges_run_user")
    row = st.columns([2, 1, 1, 1])
    dates = row[0].date_input("Created between (UTC)", value=[], key="judges_run_dates")
    queue = row[1].selectbox("Queue", ["low", "default", "high"], key="judges_run_queue")
    rated_only = row[2].checkbox("Only rated by people", key="judges_run_rated")
    again = row[3].checkbox(
        "Judge again", key="judges_run_again", help="Also outputs this judge already judged."
    )
    run = st.form_submit_button("Queue judge jobs", icon=":material/gavel:")
if run:
    try:
        start, end = [*dates, None, None][:2]
        after, before = period(start, end or start)
        done = judges.run_judge(
            pool,
            user,
            judge.id,
            judges.JudgeScope(
                user_id=scope_user,
                model=scope_model,
                template_name=template_name,
                batch_id=int(batch_id) if batch_id else None,
                created_after=after,
                created_before=before,
                rated_only=rated_only,
            ),
            queue=queue,
            again=again,
        )
        (st.warning if done.capped else st.success)(done.message, icon=":material/gavel:")
    except LLMJobsError as exc:
        st.error(problem(exc), icon=":material/error:")

st.subheader(":material/how_to_vote: Verdicts", anchor=False)
counts = judges.verdict_counts(pool, judge.id, user)
for column, (outcome, look) in zip(st.columns(4), OUTCOME_LOOK.items(), strict=True):
    column.metric(look, f"{counts[outcome]:,}")
recent = judges.list_verdicts(pool, judge.id, user, limit=20)
if recent:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Output": v.output_id,
                    "Model": v.model,
                    "Verdict": v.outcome,
                    "Reason": v.reason or v.error_message or "",
                }
                for v in recent
            ]
        ),
        hide_index=True,
        key="judges_recent",
    )
    st.caption("The 20 most recent judged outputs.")

st.subheader(":material/balance: Calibration against people", anchor=False)
calibrated = judges.calibration(pool, judge.id, user)
overall = calibrated.overall
if overall.count == 0:
    st.info(
        "No output has both a person's thumb and a pass or fail from this judge yet: run it "
        "with *Only rated by people*.",
        icon=":material/info:",
    )
    st.stop()
columns = st.columns(3)
columns[0].metric("Outputs with both", f"{overall.count:,}")
columns[1].metric("Agreement", percent(overall.agreement))
columns[2].metric(
    "Cohen's kappa",
    kappa_text(overall.kappa),
    help="Agreement beyond chance: 1 always agrees, 0 agrees as often as chance would, below 0 "
    "less. Roughly: above 0.6 substantial, 0.4 to 0.6 moderate, below 0.4 weak.",
)
st.caption(f"Kappa on n = {overall.count:,} outputs (a thumbs up counts as a pass).")
if overall.kappa_note:
    st.caption(f":material/info: Kappa is {overall.kappa_note}.")
st.dataframe(
    pd.DataFrame(
        {
            "Person": ["Thumbs up", "Thumbs down"],
            "Judge: pass": [
                overall.matrix["thumbs_up"]["pass"],
                overall.matrix["thumbs_down"]["pass"],
            ],
            "Judge: fail": [
                overall.matrix["thumbs_up"]["fail"],
                overall.matrix["thumbs_down"]["fail"],
            ],
        }
    ),
    hide_index=True,
    key="judges_matrix",
)
st.markdown("**Per model**")
st.dataframe(
    pd.DataFrame(
        [
            {
                "Model": c.model,
                "n": c.count,
                "Agreement": percent(c.agreement),
                "Kappa": kappa_text(c.kappa),
                "Up, pass": c.matrix["thumbs_up"]["pass"],
                "Up, fail": c.matrix["thumbs_up"]["fail"],
                "Down, pass": c.matrix["thumbs_down"]["pass"],
                "Down, fail": c.matrix["thumbs_down"]["fail"],
            }
            for c in calibrated.per_model
        ]
    ),
    hide_index=True,
    key="judges_per_model",
)
