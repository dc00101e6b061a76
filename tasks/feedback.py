"""Feedback on outputs: thumbs up, thumbs down or none, each change kept as an event."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from db import outputs as outputs_db
from db.models import FEEDBACK_VALUES, FeedbackEvent, User
from tasks import outputs
from tasks.errors import Conflict, InvalidInput
from tasks.logs import get_logger

log = get_logger("llmjobs.submit")


def set_feedback(pool: ConnectionPool, output_id: int, user: User, feedback: str) -> FeedbackEvent:
    """Record thumbs_up, thumbs_down or none on a completed output (owner or admin only).

    Raises InvalidInput (value), NotFound (not visible), Conflict (not completed).
    """
    if feedback not in FEEDBACK_VALUES:
        raise InvalidInput("feedback", f"must be one of {', '.join(FEEDBACK_VALUES)}")
    with pool.connection() as conn:
        output = outputs.find_output(conn, output_id, user)  # owner or admin, else NotFound
        event = outputs_db.set_feedback(conn, output_id, user_id=user.id, feedback=feedback)
    if event is None:
        raise Conflict(
            f"output {output_id} is {output.status}: only completed outputs take feedback"
        )
    log.info(
        "feedback",
        output_id=output_id,
        job_id=output.job_id,
        user_id=user.id,
        model=output.model,
        old=event.old_value,
        new=event.new_value,
    )
    return event
