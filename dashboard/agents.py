"""Agents: named presets of system prompt, model and format (and, for json, a default JSON
Schema); create, edit, and start a submission from one."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import auth, deps, ui
from tasks import agents as agent_cases
from tasks import templates
from tasks.errors import LLMJobsError
from tasks.llm.formats import FORMATS

user = auth.require_user()
pool = deps.pool()
agents = deps.agents(pool)
models = [m.name for m in deps.usable_models()]

st.title(":material/smart_toy: Agents", anchor=False)
flash = st.session_state.pop("agents_flash", None)
if flash:
    st.success(flash, icon=":material/check:")


NEW = "agent_new"


def agent_form(
    key: str,
    *,
    name: str = "",
    description: str = "",
    system_prompt: str = "",
    model: str | None = None,
    fmt: str = "text",
    schema: str = "",
    on_save: Callable[[], None] | None = None,
) -> dict | None:
    """The fields of an agent; the values when the form is sent, else None (on_save, when
    given, runs first, as the button's callback)."""
    choices = list(models)
    if model and model not in choices:
        choices.insert(0, model)
    model = model or deps.default_model()
    with st.form(key):
        values = {
            "name": st.text_input("Name", value=name, max_chars=100, key=f"{key}_name"),
            "description": st.text_input(
                "Description", value=description, key=f"{key}_description"
            ),
            "system_prompt": st.text_area(
                "System prompt", value=system_prompt, height=160, key=f"{key}_system_prompt"
            ),
            "default_model": st.selectbox(
                "Default model",
                choices,
                index=choices.index(model) if model in choices else 0,
                key=f"{key}_model",
            ),
            "default_format": st.selectbox(
                "Default format", FORMATS, index=FORMATS.index(fmt), key=f"{key}_format"
            ),
            "default_json_schema": ui.schema_input(
                f"{key}_schema",
                "its json answers, when a submission gives no schema,",
                value=schema,
                label="Default JSON Schema (optional, default format json)",
            ),
        }
        sent = st.form_submit_button(
            "Save", type="primary", icon=":material/save:", key=f"{key}_save", on_click=on_save
        )
    return values if sent else None


if agents:
    st.dataframe(
        [
            {
                "name": a.name,
                "description": a.description,
                "default model": a.default_model,
                "default format": a.default_format,
                "JSON Schema": "yes" if a.default_json_schema else "",
                "updated": a.updated_at,
            }
            for a in agents
        ],
        hide_index=True,
        key="agents_table",
    )
else:
    st.info("No agents yet: create the first one below.", icon=":material/smart_toy:")


def create_agent() -> None:
    """Save the new agent, then empty its form for the next one. The fields are set, not
    deleted: a browser shows a deleted field's old text until the page is reloaded."""
    state = st.session_state
    try:
        made = agent_cases.create_agent(
            pool,
            user,
            name=state.get(f"{NEW}_name", ""),
            description=state.get(f"{NEW}_description", ""),
            system_prompt=state.get(f"{NEW}_system_prompt", ""),
            default_model=state.get(f"{NEW}_model") or deps.default_model(),
            default_format=state.get(f"{NEW}_format", "text"),
            default_json_schema=state.get(f"{NEW}_schema", ""),
        )
    except LLMJobsError as exc:
        state["agents_new_error"] = exc
        return
    deps.forget_agents()
    for field in ("name", "description", "system_prompt", "schema"):
        state[f"{NEW}_{field}"] = ""
    preselected = deps.default_model()
    state[f"{NEW}_model"] = preselected if preselected in models or not models else models[0]
    state[f"{NEW}_format"] = "text"
    state["agents_flash"] = f"Agent {made.name} created."


create, edit = st.tabs([":material/add: New agent", ":material/edit: Edit an agent"])
with create:
    agent_form(NEW, on_save=create_agent)
    problem = st.session_state.pop("agents_new_error", None)
    if problem is not None:
        ui.show_error(problem)

with edit:
    if not agents:
        st.caption("Nothing to edit yet.")
    else:
        by_id = {a.id: a for a in agents}
        chosen = st.selectbox(
            "Agent", list(by_id), format_func=lambda i: by_id[i].name, key="agents_edit"
        )
        agent = by_id[chosen]
        if st.button("Use in Submit", icon=":material/send:", key="agents_use"):
            st.switch_page(ui.SUBMIT_PAGE, query_params={"agent": str(agent.id)})
        values = agent_form(
            f"agent_edit_{agent.id}",
            name=agent.name,
            description=agent.description,
            system_prompt=agent.system_prompt,
            model=agent.default_model,
            fmt=agent.default_format,
            schema=templates.schema_text(agent.default_json_schema),
        )
        if values:
            try:
                saved = agent_cases.update_agent(pool, agent.id, **values)
            except LLMJobsError as exc:
                ui.show_error(exc)
            else:
                deps.forget_agents()
                st.session_state["agents_flash"] = f"Agent {saved.name} saved."
                st.rerun()
