"""Templates: the shared library of prompt templates. Every saved edit is a new version: open a
template to read its versions, see what changed between two, save an edit, or start a
submission from one. A version may carry a JSON Schema: its outputs are then json answers
that validate against it."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, deps, ui
from tasks import templates
from tasks.errors import LLMJobsError

user = auth.require_user()
pool = deps.pool()
library = deps.library(pool)
people = {u.id: u.name for u in deps.users(pool)}


def who(user_id: int | None) -> str:
    return people.get(user_id, "–") if user_id is not None else "–"


def save(name: str, body: str, note: str, schema: str, *, latest: int | None = None) -> bool:
    """Save a version and open its template; False (the reason shown) when it is refused."""
    try:
        saved = templates.save_template(pool, user, name, body, note, schema)
    except LLMJobsError as exc:
        ui.show_error(exc)
        return False
    deps.forget_templates()
    st.session_state["templates_open_next"] = saved.name
    st.session_state["templates_flash"] = (
        f"Nothing changed: {saved.name} v{saved.version} stays the latest version."
        if saved.version == latest
        else f"Saved {saved.name} v{saved.version}."
    )
    return True


st.title(":material/description: Templates", anchor=False)
flash = st.session_state.pop("templates_flash", None)
if flash:
    st.success(flash, icon=":material/check:")

if library:
    st.dataframe(
        [
            {
                "name": t.name,
                "latest version": t.version,
                "JSON Schema": "yes" if t.json_schema else "",
                "note": t.note,
                "by": who(t.created_by),
                "saved": t.created_at,
            }
            for t in library
        ],
        hide_index=True,
        key="templates_table",
        column_config={
            "latest version": st.column_config.NumberColumn(format="v%d", width="small"),
            "saved": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
else:
    st.info(
        "No templates yet: save the first one below, or from Submit.",
        icon=":material/description:",
    )

browse, create = st.tabs([":material/folder_open: Open a template", ":material/add: New template"])

with create:
    with st.form("template_new"):
        name = st.text_input("Name", max_chars=100, key="template_new_name")
        body = st.text_area(
            "Template", height=160, key="template_new_body", help="Jinja2, as on Submit."
        )
        note = st.text_input("Note (optional)", max_chars=1000, key="template_new_note")
        schema = ui.schema_input("template_new_schema", "its answers")
        sent = st.form_submit_button(
            "Save", type="primary", icon=":material/save:", key="template_new_save"
        )
    st.caption("Saving under an existing name adds a version to that template.")
    if sent and save(name, body, note, schema):
        for field in [k for k in st.session_state if str(k).startswith("template_new_")]:
            del st.session_state[field]  # an empty form for the next template
        st.rerun()

with browse:
    if not library:
        st.caption("Nothing to open yet.")
        st.stop()
    if "templates_open_next" in st.session_state:
        st.session_state["templates_open"] = st.session_state.pop("templates_open_next")
    chosen = st.selectbox("Template", [t.name for t in library], key="templates_open")
    versions = deps.template_versions(pool, chosen)
    latest = versions[0]
    by_number = {v.version: v for v in versions}
    st.caption(
        f"{len(versions)} version{'s' if len(versions) > 1 else ''} · "
        f"owner {who(latest.owner_id)} (only the owner or an admin saves new versions)"
    )

    st.subheader(":material/history: Versions", anchor=False)
    for version in versions:
        label = f"v{version.version} · {ui.when(version.created_at)} · by {who(version.created_by)}"
        with st.expander(label, expanded=version is latest):
            if version.note:
                st.caption(version.note)
            st.code(version.body, language=None, wrap_lines=True)
            if version.json_schema is not None:
                st.caption(":material/data_object: JSON Schema: its answers are json and match it")
                st.code(templates.schema_text(version.json_schema), language="json")
            if st.button(
                f"Use v{version.version} in Submit",
                icon=":material/send:",
                key=f"templates_use_{version.id}",
            ):
                st.switch_page(
                    ui.SUBMIT_PAGE,
                    query_params={"template": chosen, "version": str(version.version)},
                )

    if len(versions) > 1:
        st.subheader(":material/difference: What changed", anchor=False)
        numbers = list(by_number)
        old_column, new_column = st.columns(2)
        old = old_column.selectbox(
            "From", numbers, index=1, format_func=lambda n: f"v{n}", key=f"templates_from_{chosen}"
        )
        new = new_column.selectbox(
            "To", numbers, index=0, format_func=lambda n: f"v{n}", key=f"templates_to_{chosen}"
        )
        difference = templates.diff_versions(by_number[old], by_number[new])
        if difference:
            st.code(difference, language="diff")
        else:
            st.caption("The two versions are the same.")

    st.subheader(":material/edit: Edit", anchor=False)
    with st.form(f"template_edit_{latest.id}"):
        body = st.text_area(
            "Template", value=latest.body, height=160, key=f"template_edit_{latest.id}_body"
        )
        note = st.text_input(
            "What changed (note)", max_chars=1000, key=f"template_edit_{latest.id}_note"
        )
        schema = ui.schema_input(
            f"template_edit_{latest.id}_schema",
            "its answers",
            value=templates.schema_text(latest.json_schema),
        )
        sent = st.form_submit_button(
            "Save as a new version",
            type="primary",
            icon=":material/save:",
            key="template_edit_save",
        )
    if sent and save(chosen, body, note, schema, latest=latest.version):
        st.rerun()
