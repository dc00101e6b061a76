"""Submit: a template (typed, or a version from the library), its variables, a model, a format
(a json one may take a JSON Schema) and a queue; a live preview; the monthly budget; then the
job followed until it is done."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, deps, editor, forms, ui
from tasks import outputs as jobs
from tasks.config import QUEUES, get_settings
from tasks.errors import BudgetExceeded, InvalidInput
from tasks.fetchers import FETCHERS
from tasks.llm.formats import FORMATS

EXAMPLE_TEMPLATE = "Explain {{ concept }} to a beginner in three sentences."

user = auth.require_user()
pool = deps.pool()
agents = {a.id: a for a in deps.agents(pool)}
models = deps.usable_models()
model_names = [m.name for m in models]
offline = {m.name for m in models if m.offline}


def apply_agent() -> None:
    """Start from the chosen agent's model and format."""
    agent = agents.get(st.session_state.get("submit_agent"))
    if agent is None:
        return
    if agent.default_model in model_names:
        st.session_state["submit_model"] = agent.default_model
    st.session_state["submit_format"] = agent.default_format


st.session_state.setdefault("submit_model", deps.default_model())
st.session_state.setdefault("submit_format", "text")
st.session_state.setdefault("submit_queue", "default")
st.session_state.setdefault("submit_cache", get_settings().cache)
NO_AGENT = 0  # a selectbox shows None as "nothing chosen", so "no agent" is 0
st.session_state.setdefault("submit_agent", NO_AGENT)
requested = st.query_params.get("agent", "")
if requested and requested != st.session_state.get("submit_agent_requested"):
    # Arriving from the Agents page (?agent=ID): start from that agent, once.
    st.session_state["submit_agent_requested"] = requested
    if requested.isdigit() and int(requested) in agents:
        st.session_state["submit_agent"] = int(requested)
        apply_agent()
library_request = f"{st.query_params.get('template', '')}@{st.query_params.get('version', '')}"
if library_request != "@" and library_request != st.session_state.get("submit_library_requested"):
    # Arriving from the Templates page (?template=NAME&version=N): start from it, once.
    st.session_state["submit_library_requested"] = library_request
    name, _, version = library_request.rpartition("@")
    editor.open_version("submit", name, int(version) if version.isdigit() else None)

st.title(":material/send: Submit", anchor=False)
left, right = st.columns([3, 2], gap="large")

with left:
    agent_id = st.selectbox(
        "Agent (optional)",
        [NO_AGENT, *agents],
        format_func=lambda a: agents[a].name if a in agents else "No agent",
        key="submit_agent",
        on_change=apply_agent,
        help="An agent brings a system prompt and a default model and format.",
    )
    if agent_id in agents:
        agent = agents[agent_id]
        if agent.description:
            st.caption(agent.description)
        with st.expander("System prompt", icon=":material/smart_toy:"):
            st.text(agent.system_prompt or "(none)")
    library_template = editor.template_area("submit", example=EXAMPLE_TEMPLATE)
    template = library_template.text
    fetcher = st.selectbox(
        "Context fetcher (optional)",
        [None, *sorted(FETCHERS)],
        format_func=lambda f: "None" if f is None else f,
        key="submit_fetcher",
        help="Fills variables from what LLM Jobs knows; what you type wins.",
    )
    context, context_error = editor.context_fields("submit", library_template)

with right:
    model = st.selectbox(
        "Model",
        model_names,
        format_func=lambda m: f"{m} (offline)" if m in offline else m,
        key="submit_model",
    )
    fmt = st.selectbox("Format", FORMATS, key="submit_format")
    schema = editor.schema_area("submit") if fmt == "json" else None
    queue = st.selectbox("Queue", QUEUES, key="submit_queue", help="high runs before default")
    use_cache = st.checkbox(
        "Use cache",
        key="submit_cache",
        help="Reuse a recent answer to the same prompt, model and format: no call, no cost.",
    )
    st.subheader(":material/preview: Preview", anchor=False)
    with ui.database_guard():
        checked = forms.check(
            pool,
            user,
            template=template,
            context=context,
            model=model,
            format=fmt,
            queue=queue,
            agent=agent_id or None,
            fetcher=fetcher,
        )
    ready = editor.preview("submit", checked, library_template, context_error)
    ready = ready and (schema is None or schema.error is None)
    if checked.fetched:
        with st.expander("Context from the fetcher", icon=":material/download:"):
            st.json(checked.fetched)
    if user.monthly_budget is not None:
        spent, budget = deps.month_spend(pool, user), user.monthly_budget
        st.progress(
            min(float(spent / budget), 1.0) if budget else 1.0,
            text=f"Spent this month: {ui.dollars(spent)} of your ${budget:,.2f} budget",
        )
    clicked = st.button(
        "Submit",
        type="primary",
        icon=":material/send:",
        key="submit_button",
        on_click=editor.touch,  # before the preview is drawn, so it shows what is missing
        args=("submit",),
    )
    if clicked and ready:
        try:
            submission = jobs.submit(
                pool,
                user=user,
                **library_template.submit_args(),
                model=model,
                context=context,
                format=fmt,
                queue=queue,
                agent=agent_id or None,
                fetcher=fetcher,
                cache=use_cache,
                json_schema=schema.schema if schema else None,
            )
        except BudgetExceeded as exc:
            st.error(f"Not queued: {exc}.", icon=":material/account_balance_wallet:")
        except InvalidInput as exc:
            if exc.field == "json_schema" and schema is not None:
                with schema.notes:  # said next to the schema it is about
                    editor.show_schema_problem(exc)
            else:
                editor.show_problem(exc, template)
        else:
            st.session_state["submit_following"] = submission.output_id
            st.toast(f"Output #{submission.output_id} queued", icon=":material/check:")

following = st.session_state.get("submit_following")
if following:
    st.divider()

    def follow() -> bool:
        output = jobs.get_output(pool, following, user)
        title, badge = st.columns([3, 1])
        title.markdown(f"**Output #{output.id}** · {output.model} · {output.format}")
        with badge:
            ui.status_badge(output.status)
        if output.status == "pending" and deps.live_workers():
            st.caption(":material/schedule: Queued: waiting for a worker.")
        elif output.status == "pending":
            st.caption(
                ":material/schedule: Queued. No worker is running: the job waits until one "
                "starts (`make run` starts one, or `procrastinate --app=tasks.app worker`)."
            )
        elif output.status == "processing":
            st.caption(
                f":material/progress_activity: The model is answering (attempt {output.attempts})."
            )
        elif output.status == "failed":
            st.error(output.error_message or "failed", icon=":material/error:")
        else:
            st.success(f"Completed in {ui.duration(output.latency_ms)}.", icon=":material/check:")
        ui.output_link(output.id, "Open the output")
        return output.status in ui.ACTIVE

    ui.live(f"submit:{following}", follow, every=1.0)
