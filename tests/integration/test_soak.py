"""The soak, small: 300 jobs through two worker processes, one worker kill, one provider outage,
random provider failures. The books must balance."""

from __future__ import annotations

import pytest

from bench.soak import run


@pytest.mark.slow
def test_small_soak_balances_the_books(server_dir):
    books = run(
        n_jobs=300,
        workers=2,
        kills=1,
        outages=1,
        db_restarts=0,
        timeout=240,
        data_dir=server_dir / "soak",
    )
    assert books.worker_kills == 1 and books.outages == 1
    assert books.completed + books.failed == 300
    assert books.unfinished == 0
    assert books.duplicate_outputs == 0 and books.outputs_without_job == 0
    assert books.failed_without_message == 0
    assert books.retries > 0  # the failures really happened
    assert books.balanced
