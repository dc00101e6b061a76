"""Errors the job system raises to its callers (CLI, dashboard, API)."""

from __future__ import annotations


class LLMJobsError(Exception):
    """Base of every error meant for a person to read."""


class InvalidInput(LLMJobsError):
    """Input refused at the door; `field` names what to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidRows(InvalidInput):
    """Some rows of a bulk submission were refused; `rows` lists (row number from 1, field,
    message) for the first MAX_REPORTED_ROWS of them, `count` how many there were."""

    MAX_REPORTED_ROWS = 20

    def __init__(self, rows: list[tuple[int, str, str]], field: str = "rows"):
        first = rows[0]
        more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
        super().__init__(field, f"row {first[0]}: {first[1]}: {first[2]}{more}")
        self.count = len(rows)
        self.rows = rows[: self.MAX_REPORTED_ROWS]

    @property
    def unreported(self) -> int:
        """How many bad rows `rows` leaves out."""
        return self.count - len(self.rows)


class NotFound(LLMJobsError):
    """The thing does not exist, or the caller may not see it (the two are not told apart)."""


class Forbidden(LLMJobsError):
    """The caller may see the thing but not do this to it."""


class Conflict(LLMJobsError):
    """The thing is not in a state that allows this (e.g. feedback on a pending output)."""


class BudgetExceeded(Conflict):
    """The submission would take its user past their monthly budget."""
