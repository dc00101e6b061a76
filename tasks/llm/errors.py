"""How a model call fails: transient (worth a retry later) or permanent."""

from __future__ import annotations


class ModelError(Exception):
    """A model call failed; `status_code` is the provider's HTTP status when there was one."""

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class TransientModelError(ModelError):
    """Worth another try later; retry_after is the provider's Retry-After in seconds, if any."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class PermanentModelError(ModelError):
    """Trying again would fail the same way (bad request, auth, unknown model, policy, bad JSON)."""
