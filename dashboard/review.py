"""Review: make a review queue from a scope of completed outputs (model, template, batch, dates,
only unrated or thumbs-down), then go through it one item after another (`?queue=`): the answer
as its format shows it, the prompt and context, thumbs, reasons, a comment and a corrected answer,
"Save and next" or "Skip". Each item is held for you a few minutes so nobody else is given it; a
blind queue hides the model (and the cost); progress reads "12 of 80 reviewed", and a queue with
several reviewers per item shows how they agree."""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from dashboard import auth, deps, empty, ui
from tasks import feedback, reviews
from tasks.errors import LLMJobsError, NotFound

ONLY = {None: "All", "unrated": "Only unrated", "thumbs_down": "Only thumbs-down"}
THUMBS = {
    "none": "No thumbs",
    "thumbs_up": ":material/thumb_up: Thumbs up",
    "thumbs_down": ":material/thumb_down: Thumbs down",
}
BATCHES_LISTED = 50
TEMPLATES_LISTED = 50  # library templates whose versions the scope form offers

user = auth.require_user()
pool = deps.pool()


def share(part: int, whole: int) -> str:
    return "–" if not whole else f"{part / whole:.0%}"


def open_queue(queue_id: int | None) -> None:
    if queue_id is None:
        st.query_params.pop("queue", None)
    else:
        st.query_params["queue"] = str(queue_id)
    st.rerun()


def scope_words(scope: dict[str, Any]) -> str:
    """A queue's scope as a person reads it."""
    words = []
    if scope.get("model"):
        words.append(f"model {scope['model']}")
    if scope.get("template_version_id"):
        words.append(f"template version #{scope['template_version_id']}")
    if scope.get("template"):
        words.append(f"template “{ui.short(scope['template'], 40)}”")
    if scope.get("batch_id"):
        words.append(f"batch #{scope['batch_id']}")
    if scope.get("since"):
        words.append(f"since {scope['since'][:10]}")
    if scope.get("until"):
        words.append(f"before {scope['until'][:10]}")
    if scope.get("only"):
        words.append(ONLY[scope["only"]].lower())
    return ", ".join(words) or "all completed outputs"


def version_choices() -> dict[int, str]:
    """Every version of every library template, newest templates' versions first."""
    found: dict[int, str] = {}
    for latest in deps.library(pool)[:TEMPLATES_LISTED]:
        for version in deps.template_versions(pool, latest.name):
            found[version.id] = f"{version.name} v{version.version}"
    return found


def make_queue() -> None:
    """The scope form; a queue made opens at once."""
    choices = deps.filter_choices(pool, user)
    versions = version_choices()
    batch_rows = {b.id: f"#{b.id} {b.name}" for b in deps.batch_list(pool, user, BATCHES_LISTED)}
    name = st.text_input("Name", max_chars=reviews.MAX_NAME_CHARS, key="review_name")
    first, second = st.columns(2)
    model = first.selectbox(
        "Model", [None, *choices.models], key="review_model", format_func=lambda m: m or "Any"
    )
    version = second.selectbox(
        "Library template version",
        [None, *versions],
        key="review_version",
        format_func=lambda v: "Any" if v is None else versions[v],
    )
    template = first.selectbox(
        "Template text",
        [None, *choices.templates],
        key="review_template",
        format_func=lambda t: "Any" if t is None else ui.short(t, 60),
    )
    batch = second.selectbox(
        "Batch",
        [None, *batch_rows],
        key="review_batch",
        format_func=lambda b: "Any" if b is None else batch_rows[b],
    )
    since: date | None = first.date_input("Created from", value=None, key="review_since")
    until: date | None = second.date_input("Created to (included)", value=None, key="review_until")
    only = st.radio(
        "Which outputs",
        list(ONLY),
        format_func=lambda o: ONLY[o],
        horizontal=True,
        key="review_only",
    )
    blind = first.toggle(
        "Blind: hide the model", key="review_blind", help="Reviewers see neither model nor cost."
    )
    per_item = second.number_input(
        "Reviewers per item",
        min_value=1,
        max_value=reviews.MAX_REVIEWERS,
        value=1,
        step=1,
        key="review_per_item",
        help="With more than one, the queue shows how often reviewers agree.",
    )
    if st.button("Make queue", icon=":material/playlist_add:", type="primary", key="review_make"):
        try:
            scope = reviews.check_scope(
                model=model,
                template_version_id=version,
                template=template,
                batch_id=batch,
                since=since,
                until=until,
                only=only,
            )
            created = reviews.create_queue(
                pool, user, name=name, scope=scope, blind=blind, reviewers_per_item=int(per_item)
            )
        except LLMJobsError as exc:
            ui.show_error(exc)
        else:
            if created.capped:
                st.session_state["review_capped"] = created.queue.id
            open_queue(created.queue.id)


def queue_list() -> None:
    queues = reviews.list_queues(pool, user)
    if not queues:
        st.caption("No review queue yet: make one above.")
        return
    for queue in queues:
        with st.container(border=True):
            head = st.container(horizontal=True, vertical_alignment="center")
            head.markdown(f"**{queue.name}**")
            if queue.blind:
                head.badge("blind", icon=":material/visibility_off:", color="gray")
            if queue.reviewers_per_item > 1:
                head.badge(
                    f"{queue.reviewers_per_item} reviewers per item",
                    icon=":material/group:",
                    color="blue",
                )
            st.progress(
                queue.reviewed / queue.items if queue.items else 0.0,
                text=f"{queue.reviewed:,} of {queue.items:,} reviewed",
            )
            owner = "" if queue.owner_id == user.id else f" · by {queue.owner_name}"
            st.caption(f"{scope_words(queue.scope)} · made {ui.when(queue.created_at)}{owner}")
            if st.button("Review", icon=":material/rate_review:", key=f"review_open_{queue.id}"):
                open_queue(queue.id)


def figures(status: reviews.Status) -> None:
    progress = status.progress
    st.progress(
        progress.reviewed / progress.items if progress.items else 0.0, text=progress.summary
    )
    st.caption(
        f"You reviewed {progress.mine:,} and skipped {progress.skipped:,} · "
        f"{progress.held:,} held now · each item held for "
        f"{reviews.hold_seconds() // 60} min"
    )
    agreement = status.agreement
    if agreement is None:
        return
    all_agree, pairwise = st.columns(2)
    all_agree.metric(
        "All reviewers agree",
        share(agreement.unanimous, agreement.items),
        help="Over the items with at least two thumbs.",
    )
    all_agree.caption(f"{agreement.unanimous:,} of {agreement.items:,} items")
    pairwise.metric("Pairwise agreement", share(agreement.agreeing_pairs, agreement.pairs))
    pairwise.caption(f"{agreement.agreeing_pairs:,} of {agreement.pairs:,} pairs of thumbs")


def work(queue_id: int) -> None:
    try:
        # the hold first, so that the figures count it
        item = reviews.next_item(pool, queue_id, user)
        status = reviews.status(pool, queue_id, user)
    except NotFound:
        st.title(":material/rate_review: Review", anchor=False)
        st.error(f"Review queue {queue_id} not found.", icon=":material/search_off:")
        if st.button("All queues", icon=":material/arrow_back:", key="review_back"):
            open_queue(None)
        return
    queue = status.queue
    st.title(f":material/rate_review: {queue.name}", anchor=False)
    top = st.container(horizontal=True, vertical_alignment="center")
    if top.button("All queues", icon=":material/arrow_back:", key="review_back"):
        open_queue(None)
    if queue.blind:
        top.badge("blind: model hidden", icon=":material/visibility_off:", color="gray")
    top.caption(scope_words(queue.scope))
    if st.session_state.get("review_capped") == queue.id:
        st.warning(
            f"The scope held more than {reviews.MAX_ITEMS:,} outputs: the newest "
            f"{reviews.MAX_ITEMS:,} were taken.",
            icon=":material/content_cut:",
        )
    figures(status)
    if item is None:
        st.success("Nothing is left for you to review in this queue.", icon=":material/done_all:")
        return
    st.subheader(f"Item {item.position:,} of {status.progress.items:,}", anchor=False)
    held = f"held for you until {item.reserved_until:%H:%M:%S} UTC" if item.reserved_until else ""
    shown_model = "model hidden" if item.model is None else item.model
    st.caption(f"Output #{item.output_id} · {shown_model} · {item.format} · {held}")
    answer, asked = st.columns([3, 2], gap="large")
    with answer:
        st.markdown("**Answer**")
        with st.container(border=True):
            ui.formatted(item.answer, item.format)
    with asked:
        st.markdown("**Prompt**")
        if item.system_prompt:
            st.code(item.system_prompt, language=None, wrap_lines=True)
        st.code(item.prompt or "–", language=None, wrap_lines=True)
        st.markdown("**Context**")
        st.json(item.context, expanded=2)
    controls(queue.id, item)


def controls(queue_id: int, item: reviews.Item) -> None:
    """Thumbs, reasons, comment and corrected answer; "Save and next" and "Skip"."""
    key = f"review_{queue_id}_{item.output_id}"
    reasons = [r.name for r in feedback.list_reasons(pool)]
    thumbs = st.radio(
        "Thumbs",
        list(THUMBS),
        index=list(THUMBS).index(item.my_feedback or "none"),
        format_func=lambda v: THUMBS[v],
        horizontal=True,
        key=f"{key}_thumbs",
    )
    chosen = st.multiselect(
        "Reasons",
        reasons,
        default=[r for r in item.my_reasons or [] if r in reasons],
        key=f"{key}_reasons",
        max_selections=feedback.MAX_REASONS,
    )
    comment = st.text_area(
        "Comment",
        max_chars=feedback.MAX_COMMENT_CHARS,
        key=f"{key}_comment",
        placeholder=item.comment or "Why, in a sentence (optional)",
        help="Left empty, the output's comment is kept.",
    )
    corrected = st.text_area(
        "Corrected answer",
        max_chars=feedback.MAX_CORRECTED_CHARS,
        key=f"{key}_corrected",
        placeholder="What the answer should have been (optional)",
        help="Left empty, the output's corrected answer is kept.",
    )
    buttons = st.container(horizontal=True)
    if buttons.button("Save and next", icon=":material/done:", type="primary", key="review_save"):
        try:
            reviews.review(
                pool,
                queue_id,
                item.output_id,
                user,
                feedback=None if thumbs == "none" and item.my_feedback is None else thumbs,
                reasons=chosen or None,
                comment=comment or None,
                corrected_answer=corrected or None,
            )
        except LLMJobsError as exc:
            ui.show_error(exc)
        else:
            deps.forget_analytics()
            st.rerun()
    if buttons.button("Skip", icon=":material/skip_next:", key="review_skip"):
        try:
            reviews.review(pool, queue_id, item.output_id, user, skip=True)
        except LLMJobsError as exc:
            ui.show_error(exc)
        else:
            st.rerun()


requested = st.query_params.get("queue", "").strip()
if requested:
    readable = requested.isascii() and requested.isdigit() and len(requested) < 19
    work(int(requested) if readable else 0)
    st.stop()

st.title(":material/rate_review: Review", anchor=False)
st.caption(
    "Go through outputs one after another: each item is held for you while you review it, so "
    "two reviewers never get the same one."
)
if not deps.filter_choices(pool, user).models:
    empty.next_step(
        pool, user, "There is no output to review yet: submit some jobs first.", key="review"
    )
    st.stop()
with st.expander("Make a review queue", icon=":material/playlist_add:", expanded=True):
    make_queue()
st.subheader("Queues", anchor=False)
queue_list()
