"""The prompt editor Submit and Compare share: start from a library template (its name and
version fill the editor), edit the Jinja2 template, save it as a new library version, type its
variables as fields or as a JSON context, and see the prompt it renders to or what is missing;
for a json answer, a JSON Schema checked as it is typed. Widget keys start with the page's
prefix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st

from dashboard import auth, deps, forms
from dashboard.joblines import plain
from tasks import templates
from tasks.errors import InvalidInput, LLMJobsError
from tasks.llm.formats import FORMATS

if TYPE_CHECKING:
    from tasks.templates import TemplateVersion

NO_TEMPLATE = ""  # a selectbox shows None as "nothing chosen", so "no library template" is ""


@dataclass
class Template:
    """What the editor holds: the text, its variables (or its error), and the library version
    it is, while unchanged since it was picked."""

    text: str
    variables: list[str]
    error: InvalidInput | None
    version: TemplateVersion | None

    def submit_args(self) -> dict[str, Any]:
        """submit's template arguments: the library version while the text is unchanged (its
        outputs record the version), the typed text otherwise."""
        if self.version is not None:
            return {
                "template": None,
                "template_name": self.version.name,
                "template_version": self.version.version,
            }
        return {"template": self.text}


def format_choice(prefix: str, template: Template) -> str:
    """The Format picker; a library version with a JSON Schema makes json outputs, so then it is
    json, said instead of asked."""
    if template.version is not None and template.version.json_schema is not None:
        st.caption(
            f":material/data_object: {template.version.name} v{template.version.version} carries "
            "a JSON Schema: the answers are json and validate against it, unless you give "
            "another schema below."
        )
        return "json"
    return st.selectbox("Format", FORMATS, key=f"{prefix}_format")


def touched(prefix: str) -> bool:
    """Whether the person has typed into the editor or tried to submit: until then a variable
    not filled in yet is not a mistake worth showing."""
    return bool(st.session_state.get(f"{prefix}_touched"))


def touch(prefix: str) -> None:
    st.session_state[f"{prefix}_touched"] = True


def show_problem(exc: InvalidInput, template: str = "") -> None:
    """An error of the editor's request, in an analyst's words (forms.problem)."""
    st.error(forms.problem(exc, template), icon=":material/error:")


def preview(
    prefix: str, checked: forms.Check, template: Template, context_error: InvalidInput | None
) -> bool:
    """The prompt the request renders to, or what is wrong with it, each problem said once (the
    editor says the template's and the JSON's own) and a variable not filled in yet only once the
    person has typed or tried to send. Returns whether the request may be sent."""
    shown_elsewhere = template.error is not None or context_error is not None
    if checked.prompt is not None:
        st.code(checked.prompt, language=None, wrap_lines=True)
    elif checked.error and not shown_elsewhere and touched(prefix):
        show_problem(checked.error, template.text)
    elif checked.error and not shown_elsewhere:
        st.caption("The prompt appears here once the variables are filled in.")
    return not (checked.error or shown_elsewhere)


@dataclass
class Schema:
    """The JSON Schema field: the schema typed (None: none), or why it cannot be used, and the
    place under the field for what is said about it."""

    schema: dict[str, Any] | None
    error: InvalidInput | None
    notes: Any  # a container drawn right under the field


def show_schema_problem(exc: InvalidInput) -> None:
    """Why a JSON Schema cannot be used, as typed (its paths start with `$`, which markdown would
    read as mathematics)."""
    st.error(plain(forms.problem(exc)), icon=":material/error:")


def schema_area(prefix: str) -> Schema:
    """An optional JSON Schema for a json answer, checked once the person has typed into it (or
    tried to send): "Valid JSON Schema" and what it asks for, or what is wrong with it."""
    text = st.text_area(
        "JSON Schema (optional)",
        key=f"{prefix}_json_schema",
        height=200,
        placeholder=forms.SCHEMA_EXAMPLE,
        help="The answer must be a JSON value this schema allows (JSON Schema, Draft 2020-12). "
        "When it is not, the model is asked again with what is wrong.",
        on_change=touch,
        args=(f"{prefix}_schema",),
    )
    schema, error = forms.schema_check(text)
    notes = st.container()
    if text.strip() and (touched(f"{prefix}_schema") or touched(prefix)):
        with notes:
            if error is not None:
                show_schema_problem(error)
            else:
                summary = forms.schema_summary(schema or {})
                st.success(f"Valid JSON Schema: {plain(summary)}", icon=":material/check:")
    return Schema(schema=schema, error=error, notes=notes)


def open_version(prefix: str, name: str, version: int | None = None) -> bool:
    """Fill the editor with a library version (the latest when version is None or unknown);
    False when there is no such template. Call it before the editor is drawn, or in a callback."""
    versions = deps.template_versions(deps.pool(), name)
    if not versions:
        return False
    found = next((v for v in versions if v.version == version), versions[0])
    st.session_state[f"{prefix}_library"] = name
    st.session_state[f"{prefix}_library_version"] = found.version
    st.session_state[f"{prefix}_template"] = found.body
    st.session_state[f"{prefix}_save_name"] = name
    return True


def _picked(prefix: str, keep_version: bool) -> None:
    name = st.session_state.get(f"{prefix}_library")
    if name:
        version = st.session_state.get(f"{prefix}_library_version") if keep_version else None
        open_version(prefix, name, version)


def _chosen(prefix: str) -> TemplateVersion | None:
    name = st.session_state.get(f"{prefix}_library")
    if not name:
        return None
    versions = deps.template_versions(deps.pool(), name)
    wanted = st.session_state.get(f"{prefix}_library_version")
    return next((v for v in versions if v.version == wanted), None)


def _save(prefix: str) -> None:
    """Save the editor's text as the next version of the named template, then select it."""
    user = auth.current_user()
    if user is None:
        return
    state = st.session_state
    name = state.get(f"{prefix}_save_name", "")
    # the editor edits the text: a new version keeps the JSON Schema of the latest one
    latest = deps.template_versions(deps.pool(), name.strip()) if name.strip() else []
    try:
        saved = templates.save_template(
            deps.pool(),
            user,
            name,
            state.get(f"{prefix}_template", ""),
            state.get(f"{prefix}_save_note", ""),
            latest[0].json_schema if latest else None,
        )
    except LLMJobsError as exc:
        state[f"{prefix}_save_result"] = ("error", str(exc))
        return
    deps.forget_templates()
    state[f"{prefix}_library"] = saved.name
    state[f"{prefix}_library_version"] = saved.version
    state[f"{prefix}_save_note"] = ""
    state[f"{prefix}_save_result"] = ("success", f"Saved as {saved.name} v{saved.version}.")


def template_area(prefix: str, example: str = "") -> Template:
    """The library picker, the template, its "Save as template" button and its errors."""
    pool = deps.pool()
    st.session_state.setdefault(f"{prefix}_template", example)
    library = [t.name for t in deps.library(pool)]
    if library:
        name_column, version_column = st.columns([3, 1])
        name = name_column.selectbox(
            "Library template (optional)",
            [NO_TEMPLATE, *library],
            format_func=lambda n: n or "None: write your own",
            key=f"{prefix}_library",
            on_change=_picked,
            args=(prefix, False),
        )
        if name:
            numbers = [v.version for v in deps.template_versions(pool, name)]
            version_column.selectbox(
                "Version",
                numbers,
                format_func=lambda n: f"v{n} (latest)" if n == numbers[0] else f"v{n}",
                key=f"{prefix}_library_version",
                on_change=_picked,
                args=(prefix, True),
            )
    text = st.text_area(
        "Template",
        key=f"{prefix}_template",
        height=150,
        help="Jinja2: each {{ variable }} becomes a field below.",
        on_change=touch,
        args=(prefix,),
    )
    chosen = _chosen(prefix)
    unchanged = chosen is not None and text == chosen.body
    if chosen is not None and unchanged:
        note = f": {chosen.note}" if chosen.note else ""
        st.caption(f":material/description: {chosen.name} v{chosen.version}{note}")
    elif chosen is not None:
        st.caption(
            f":material/edit: Edited since {chosen.name} v{chosen.version}: sent as typed, "
            "without a library version. Save it as a template to keep it."
        )
    with st.popover("Save as template", icon=":material/bookmark_add:"):
        st.text_input("Name", key=f"{prefix}_save_name", max_chars=100)
        st.text_input("Note (what changed)", key=f"{prefix}_save_note", max_chars=1000)
        st.button(
            "Save a new version",
            icon=":material/save:",
            key=f"{prefix}_save",
            on_click=_save,
            args=(prefix,),
        )
    result = st.session_state.pop(f"{prefix}_save_result", None)
    if result and result[0] == "success":
        st.success(result[1], icon=":material/check:")
    elif result:
        st.error(result[1], icon=":material/error:")
    names, error = forms.variables(text)
    if error:
        show_problem(error, text)
    return Template(text=text, variables=names, error=error, version=chosen if unchanged else None)


def _context_to_json(prefix: str) -> None:
    """Carry the typed variables over when switching to the JSON editor."""
    touch(prefix)
    if st.session_state.get(f"{prefix}_json"):
        names, _ = forms.variables(st.session_state.get(f"{prefix}_template", ""))
        typed = {n: st.session_state.get(f"{prefix}_var_{n}", "") for n in names}
        st.session_state[f"{prefix}_context_json"] = json.dumps(typed, indent=2, ensure_ascii=False)


def context_fields(prefix: str, template: Template) -> tuple[dict[str, Any], InvalidInput | None]:
    """A field per variable, or a JSON object for nested values; the context and its error."""
    json_mode = st.toggle(
        "Edit the context as JSON (for nested values)",
        key=f"{prefix}_json",
        on_change=_context_to_json,
        args=(prefix,),
    )
    if json_mode:
        context, error = forms.parse_context(
            st.text_area(
                "Context (a JSON object)",
                key=f"{prefix}_context_json",
                height=150,
                on_change=touch,
                args=(prefix,),
            )
        )
        if error:
            show_problem(error)
        return forms.given(context), error
    typed = {
        n: st.text_area(n, key=f"{prefix}_var_{n}", height=80, on_change=touch, args=(prefix,))
        for n in template.variables
    }
    context = forms.given(typed)
    if not template.variables and not template.error and template.text.strip():
        st.caption("This template has no variables.")
    return context, None
