"""Compare: one prompt, two to six models, the answers side by side. Blind, the answers are
labelled A, B, ... and the models stay hidden until you pick the better one (or a tie). A
comparison has its own address (`?id=`); your recent ones are listed under the form."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from dashboard import auth, deps, editor, forms, ui
from tasks import comparisons
from tasks.config import QUEUES
from tasks.errors import InvalidInput, LLMJobsError, NotFound

if TYPE_CHECKING:
    from db.models import LLMOutput

EXAMPLE_TEMPLATE = "Explain {{ concept }} to a beginner in three sentences."
RECENT = 20
DEFAULT_MODELS = ("offline/brief", "offline/verbose")

user = auth.require_user()
pool = deps.pool()
requested = st.query_params.get("id", "").strip()


def leave() -> None:
    """Back to a new comparison."""
    st.query_params.pop("id", None)


def answer_card(view: comparisons.ComparisonView, output: LLMOutput) -> None:
    """One answer: its label (and model once shown), status, the answer, and the pick's mark."""
    model = view.models[output.id]
    st.markdown(f"**Answer {view.labels[output.id]}**" + (f" · {model}" if model else ""))
    with st.container(horizontal=True):
        ui.status_badge(output.status)
        if view.winner_output_id == output.id:
            st.badge("Better", icon=":material/trophy:", color="green")
        elif view.tie:
            st.badge("Tie", icon=":material/balance:", color="gray")
    if output.status == "completed":
        ui.answer(output)
    elif output.status == "failed":
        st.error(output.error_message or "failed", icon=":material/error:")
    elif output.status == "pending":
        st.caption(":material/schedule: Queued: waiting for a worker.")
    else:
        st.caption(":material/progress_activity: The model is answering.")
    if model is not None:  # latency, cost and the output's page would give a blind model away
        if output.latency_ms is not None or output.cost is not None:
            st.caption(f"{ui.duration(output.latency_ms)} · {ui.dollars(output.cost)}")
        ui.output_link(output.id)


if requested:
    try:
        view = comparisons.get_comparison(pool, int(requested), user)
    except (ValueError, NotFound):
        st.title(":material/compare_arrows: Compare", anchor=False)
        st.error(f"Comparison {requested} not found.", icon=":material/search_off:")
        st.button("New comparison", icon=":material/add:", on_click=leave, key="compare_new")
        st.stop()

    st.title(f":material/compare_arrows: Comparison #{view.comparison_id}", anchor=False)
    with st.container(horizontal=True):
        if view.blind:
            st.badge("blind", icon=":material/visibility_off:", color="violet")
        st.caption(f"{len(view.outputs)} models · {ui.when(view.outputs[0].created_at)}")
        st.button("New comparison", icon=":material/add:", on_click=leave, key="compare_new")
    with st.expander("Prompt", icon=":material/description:"):
        first = view.outputs[0]
        if first.prompt:
            st.code(first.prompt, language=None, wrap_lines=True)
        else:  # rendered by the worker; until then, what it will render
            st.code(first.template, language=None, wrap_lines=True)
            st.json(first.context, expanded=False)

    def answers() -> bool:
        now = comparisons.get_comparison(pool, view.comparison_id, user)
        for column, output in zip(
            st.columns(len(now.outputs), border=True), now.outputs, strict=True
        ):
            with column:
                answer_card(now, output)
        return any(o.status in ui.ACTIVE for o in now.outputs)

    ui.live(
        f"compare:{view.comparison_id}",
        answers,
        every=1.5,
        active=any(o.status in ui.ACTIVE for o in view.outputs),
    )

    if view.picked:
        winner = view.winner_output_id
        st.success(
            "You called it a tie."
            if winner is None
            else f"You picked answer {view.labels[winner]}: {view.models[winner]}.",
            icon=":material/how_to_vote:",
        )
    if not view.picked or not view.blind:  # a blind pick stays blind: it is not changed later
        st.subheader(
            ":material/how_to_vote: " + ("Change the pick" if view.picked else "Which is better?"),
            anchor=False,
        )
        if any(o.status in ui.ACTIVE for o in view.outputs):
            st.caption("Pick once every answer is finished.")
        else:
            clicked, better = False, None  # better: the winning output, None for a tie
            with st.container(horizontal=True):
                for output in view.outputs:
                    if st.button(
                        f"{view.labels[output.id]} is better",
                        key=f"compare_pick_{output.id}",
                        disabled=output.status != "completed",
                    ):
                        clicked, better = True, output.id
                if st.button("Tie", key="compare_pick_tie", icon=":material/balance:"):
                    clicked = True
            if clicked:
                try:
                    comparisons.pick(pool, view.comparison_id, user, better)
                except LLMJobsError as exc:
                    ui.show_error(exc)
                else:
                    deps.forget_comparisons()
                    st.rerun()
    st.stop()

models = deps.usable_models()
offline = {m.name for m in models if m.offline}
keyed = [m.name for m in models if not m.offline]

st.session_state.setdefault("compare_queue", "default")
# Two offline models by default, so the first click compares something.
st.session_state.setdefault("compare_models", [m for m in DEFAULT_MODELS if m in offline])
st.title(":material/compare_arrows: Compare", anchor=False)
st.info(
    f"**Models you can use now:** {len(offline)} offline ("
    + ", ".join(f"`{m}`" for m in sorted(offline))
    + ")"
    + (f" and {', '.join(f'`{m}`' for m in keyed)}." if keyed else ", no provider models yet.")
    + " To add one, set its provider's key (for example `OPENAI_API_KEY` or "
    "`ANTHROPIC_API_KEY`) where a worker runs and restart that worker: it offers the models "
    "it can serve within seconds.",
    icon=":material/model_training:",
)
left, right = st.columns([3, 2], gap="large")
with left:
    template = editor.template_area("compare", example=EXAMPLE_TEMPLATE)
    context, context_error = editor.context_fields("compare", template)

with right:
    chosen = st.multiselect(
        f"Models ({comparisons.MIN_MODELS} to {comparisons.MAX_MODELS})",
        [m.name for m in models],
        max_selections=comparisons.MAX_MODELS,
        format_func=lambda m: f"{m} (offline)" if m in offline else m,
        placeholder="Pick the models to compare",
        key="compare_models",
    )
    fmt = editor.format_choice("compare", template)
    schema = ui.schema_input("compare_schema", "every model's answer") if fmt == "json" else ""
    queue = st.selectbox("Queue", QUEUES, key="compare_queue", help="high runs before default")
    blind = st.toggle(
        "Blind",
        key="compare_blind",
        help="Label the answers A, B, ... and hide the models until you pick the better one.",
    )
    st.subheader(":material/preview: Preview", anchor=False)
    with ui.database_guard():
        checked = forms.check(
            pool,
            user,
            template=template.text,
            context=context,
            model=chosen[0] if chosen else deps.default_model(),
            format=fmt,
            queue=queue,
            agent=None,
            fetcher=None,
        )
    ready = editor.preview("compare", checked, template, context_error)
    clicked = st.button(
        "Compare",
        type="primary",
        icon=":material/compare_arrows:",
        key="compare_submit",
        on_click=editor.touch,  # before the preview is drawn, so it shows what is missing
        args=("compare",),
    )
    if clicked and ready:
        try:
            made = comparisons.submit_comparison(
                pool,
                user=user,
                **template.submit_args(),
                context=context,
                models=chosen,
                format=fmt,
                queue=queue,
                blind=blind,
                json_schema=schema,
            )
        except InvalidInput as exc:
            editor.show_problem(exc, template.text)
        except LLMJobsError as exc:
            ui.show_error(exc)
        else:
            deps.forget_comparisons()
            st.query_params["id"] = str(made.comparison_id)
            st.rerun()

st.subheader(":material/history: Your recent comparisons", anchor=False)
recent = deps.recent_comparisons(pool, user, RECENT)
if not recent:
    st.caption("None yet.")
else:
    event = st.dataframe(
        pd.DataFrame(
            {
                "id": [r.comparison_id for r in recent],
                "open": [f"compare?id={r.comparison_id}" for r in recent],
                "created": [r.created_at for r in recent],
                "template": [ui.short(r.template, 100) for r in recent],
                "models": [", ".join(r.models) if r.models else "hidden (blind)" for r in recent],
                "finished": [f"{r.finished} of {r.answers}" for r in recent],
                "picked": [r.picked for r in recent],
            }
        ),
        hide_index=True,
        key="compare_recent",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "id": st.column_config.NumberColumn("#", format="%d", width="small"),
            "open": st.column_config.LinkColumn("", display_text="Open", width="small"),
            "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm:ss"),
        },
    )
    if event.selection.rows:
        st.query_params["id"] = str(recent[event.selection.rows[0]].comparison_id)
        st.rerun()
