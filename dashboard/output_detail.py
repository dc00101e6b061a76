"""One output (`?id=`): what was asked (with its JSON Schema, if any), the answer as its format
shows it and whether it is valid against that schema, the figures, feedback, re-run and
regenerate, and where it comes from and what came of it."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import auth, deps, feedback_form, forms, ui
from dashboard.joblines import plain
from tasks import analytics, feedback, limits
from tasks import outputs as jobs
from tasks.errors import LLMJobsError, NotFound
from tasks.llm.formats import FORMATS

FEEDBACK_BUTTONS = (
    ("thumbs_up", "Thumbs up", ":material/thumb_up:"),
    ("thumbs_down", "Thumbs down", ":material/thumb_down:"),
)
CLEAR_FEEDBACK = ("none", "Clear rating", ":material/remove:")
REGENERATE = "regenerate_"  # the prefix of the regenerate form's keys


def open_output(output_id: int) -> None:
    """Go to another output, leaving behind the regenerate form's state: it belongs to the output
    it was typed on (its keys name that output, so a browser draws a new, closed form too)."""
    for key in [k for k in st.session_state if str(k).startswith(REGENERATE)]:
        del st.session_state[key]
    st.switch_page(ui.DETAIL_PAGE, query_params={"id": str(output_id)})


user = auth.require_user()
pool = deps.pool()

RECENT = 15

requested = st.query_params.get("id", "").strip()
if not requested:
    # Opened from the sidebar: the person's latest outputs, each a link.
    st.title(":material/article: Your recent outputs", anchor=False)
    recent = jobs.list_outputs(pool, user, user_id=user.id, limit=RECENT)
    if not recent:
        st.caption("You have not submitted anything yet.")
        st.page_link(ui.SUBMIT_PAGE, label="Submit a job", icon=":material/send:")
    for item in recent:
        ui.output_link(
            item.id,
            f"#{item.id} · {item.status} · {item.model} · {ui.context_summary(item.context)}",
        )
    st.page_link("dashboard/outputs.py", label="All outputs", icon=":material/list_alt:")
    st.stop()

try:
    output = jobs.get_output(pool, int(requested), user)
except (ValueError, NotFound):
    st.title(":material/article: Output", anchor=False)
    st.error(f"Output {requested} not found.", icon=":material/search_off:")
    st.page_link("dashboard/outputs.py", label="Back to the outputs", icon=":material/list_alt:")
    st.stop()

st.title(f":material/article: Output #{output.id}", anchor=False)
heading = st.container(horizontal=True)
with heading:
    ui.status_badge(output.status)
    st.badge(output.format, icon=":material/description:", color="gray")
    if output.kind != "original":
        st.badge(output.kind.replace("_", "-"), icon=":material/call_split:", color="violet")
    if output.json_schema is not None and output.schema_valid:
        again = " after a re-ask" if output.schema_first_try is False else ""
        st.badge(f"Valid against its JSON Schema{again}", icon=":material/verified:", color="green")
    owner = deps.user_by_id(pool, output.user_id)
    st.caption(f"{output.model} · by {owner.name if owner else output.user_id}")


def queued(model: str) -> str:
    """What a pending output waits for: its model's limit when that holds its calls now, else a
    worker."""
    pace = limits.pace(pool, model)
    if pace.waiting_for is None:
        return "Queued: waiting for a worker."
    until = f" until {pace.paused_until:%H:%M:%S} UTC" if pace.paused_until else ""
    return (
        f"Queued: {plain(pace.waiting_for)}{until}. It starts once the limit has room; waiting "
        "spends no attempt."
    )


if output.status in ui.ACTIVE:

    def progress() -> bool:
        now = jobs.get_output(pool, output.id, user)
        if now.status == "pending":
            st.info(
                queued(now.model)
                + (f" Last attempt failed: {now.error_message}" if now.error_message else ""),
                icon=":material/schedule:",
            )
        else:
            st.info(
                f"The model is answering (attempt {now.attempts}).",
                icon=":material/progress_activity:",
            )
        return now.status in ui.ACTIVE

    ui.live(f"output:{output.id}", progress, every=1.5, active=True)

# Five figures leave each room for a cost of six decimals at 1440 px.
figures = st.columns(5)
figures[0].metric("Prompt tokens", ui.number(output.prompt_tokens))
figures[1].metric("Completion tokens", ui.number(output.completion_tokens))
figures[2].metric("Cost", ui.dollars(output.cost))
figures[3].metric("Latency", ui.duration(output.latency_ms))
figures[4].metric("Attempts", output.attempts)
st.caption(
    f"Queue {output.queue} · created {ui.when(output.created_at)} · "
    f"started {ui.when(output.started_at)} · finished {ui.when(output.completed_at)}"
)

answer, asked = st.columns([3, 2], gap="large")
with answer:
    st.subheader(":material/chat: Answer", anchor=False)
    broken = [(e["path"], e["message"]) for e in output.schema_errors or []]
    if output.status == "failed" and broken:
        st.error(
            "\n".join(
                [
                    "The answer does not match its JSON Schema:",
                    *(f"- {plain(path)}: {plain(message)}" for path, message in broken),
                ]
            ),
            icon=":material/rule:",
        )
    elif output.status == "failed":
        st.error(output.error_message or "failed", icon=":material/error:")
    if output.cache_hit_of is not None:  # always one of the same user's outputs
        source = output.cache_hit_of
        st.info(f"Answer reused from the cache (output {source}).", icon=":material/cached:")
        ui.output_link(source, f"Open output #{source}")
    if output.status == "completed":
        with st.container(border=True):
            ui.answer(output)
    elif output.status != "failed":
        st.caption("No answer yet.")
    if output.raw_response is not None:
        with st.expander("Raw response", icon=":material/code:"):
            st.code(output.raw_response, language=None, wrap_lines=True)

    if output.status == "completed":
        st.subheader(":material/reviews: Feedback", anchor=False)
        # Nothing is highlighted until the output is rated; a rating can then be cleared.
        offered = [*FEEDBACK_BUTTONS, *([CLEAR_FEEDBACK] if output.feedback != "none" else [])]
        buttons = st.columns(len(offered))
        for column, (value, label, icon) in zip(buttons, offered, strict=True):
            chosen = output.feedback == value
            if (
                column.button(
                    label,
                    icon=icon,
                    type="primary" if chosen and value != "none" else "secondary",
                    key=f"feedback_{value}",
                    width="stretch",
                )
                and not chosen
            ):
                try:
                    feedback.set_feedback(pool, output.id, user, value)
                except LLMJobsError as exc:
                    ui.show_error(exc)
                else:
                    deps.forget_analytics()
                    st.rerun()
        st.caption(f"Current feedback: {ui.FEEDBACK_LABEL[output.feedback]}")
        feedback_form.details(pool, user, output)
        feedback_form.history(pool, user, output)
        ui.verdicts_panel(pool, user, output)  # apart from people's feedback

with asked:
    st.subheader(":material/edit_note: Asked", anchor=False)
    st.markdown("**Template**")
    st.code(output.template, language="jinja2", wrap_lines=True)
    st.markdown("**Context**")
    st.json(output.context, expanded=2)
    if output.json_schema is not None:
        with st.expander("JSON Schema", icon=":material/data_object:"):
            st.json(output.json_schema, expanded=True)
    if output.system_prompt:
        st.markdown("**System prompt**")
        st.code(output.system_prompt, language=None, wrap_lines=True)
    st.markdown("**Prompt**")
    if output.prompt is None:
        st.caption("Rendered when a worker starts the job.")
    else:
        st.code(output.prompt, language=None, wrap_lines=True)

st.divider()
st.subheader(":material/replay: Run again", anchor=False)
if output.blind_pending:  # a new run would show the model before the pick
    st.caption(
        "An answer of a blind comparison not yet judged: pick the better answer on its "
        "comparison first, then it can run again."
    )
    st.stop()
if st.button(
    "Re-run",
    icon=":material/replay:",
    key="re_run",
    help="A new output with exactly the same template, context, model and format.",
):
    try:
        again = jobs.re_run(pool, output.id, user)
    except LLMJobsError as exc:
        ui.show_error(exc)
    else:
        open_output(again.output_id)

with st.expander(
    "Regenerate with changes",
    icon=":material/tune:",
    key=f"{REGENERATE}{output.id}_open",
    on_change="rerun",
):
    models = [m.name for m in deps.usable_models()]
    if output.model not in models:
        models.insert(0, output.model)
    with st.form("regenerate"):
        new_context_text = st.text_area(
            "Context (a JSON object; the keys you give replace the old ones)",
            value=json.dumps(output.context, indent=2, ensure_ascii=False),
            height=160,
            key=f"{REGENERATE}{output.id}_context",
        )
        new_model = st.selectbox(
            "Model", models, index=models.index(output.model), key=f"{REGENERATE}{output.id}_model"
        )
        new_format = st.selectbox(
            "Format",
            FORMATS,
            index=FORMATS.index(output.format),
            key=f"{REGENERATE}{output.id}_format",
        )
        regenerate = st.form_submit_button(
            "Regenerate",
            icon=":material/autorenew:",
            type="primary",
            key=f"{REGENERATE}{output.id}_submit",
        )
    if regenerate:
        new_context, problem = forms.parse_context(new_context_text)
        try:
            if problem:
                raise problem
            made = jobs.regenerate(
                pool,
                output.id,
                user,
                new_context=new_context,
                new_model=new_model,
                new_format=new_format,
            )
        except LLMJobsError as exc:
            ui.show_error(exc)
        else:
            open_output(made.output_id)

family = analytics.lineage(pool, output, user)
if family.parent_id or family.children:
    st.subheader(":material/account_tree: Lineage", anchor=False)
    if family.parent_id:
        ui.output_link(family.parent_id, f"Made from output #{family.parent_id}")
    for child in family.children:
        ui.output_link(child.id, f"#{child.id} · {child.kind.replace('_', '-')} · {child.status}")
