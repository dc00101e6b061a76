"""`llmjobs feedback` with reasons, a comment and a corrected answer, and `llmjobs reasons`,
run in-process against the test database: what they print, what they keep, and every bad input
refused with exit 2 and one line naming the field, nothing written."""

from __future__ import annotations

import json

import pytest

from tasks.feedback import MAX_COMMENT_CHARS, MAX_CORRECTED_CHARS
from tasks.testing import create_test_llm_output
from tests.integration.test_cli import llmjobs


def _events(pool, output_id: int) -> int:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM feedback_events WHERE output_id = %s", (output_id,)
        ).fetchone()["n"]


def _shown(output_id: int, user: str = "ana") -> dict:
    return json.loads(llmjobs("show", str(output_id), "--user", user).stdout)


def test_cli_feedback_parts_kept_and_cleared(database_url, pool, analyst, tmp_path):
    output = create_test_llm_output(pool, analyst)
    oid = str(output.id)
    first = llmjobs(
        "feedback", oid, "thumbs_down", "--reason", "wrong", "--reason", "Too Long",
        "--comment", "Dates are off", "--user", "ana",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    change = json.loads(first.stdout)
    assert change["reasons"] == ["wrong", "too long"] and change["comment"] == "Dates are off"
    assert change["changed"] == ["feedback", "reasons", "comment"]

    corrected = tmp_path / "answer.txt"
    corrected.write_text("Paris, 1889 — the tower opened.\n", encoding="utf-8")
    second = llmjobs("feedback", oid, "--corrected-file", str(corrected), "--user", "ana")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["changed"] == ["corrected_answer"]
    shown = _shown(output.id)
    assert shown["corrected_answer"] == "Paris, 1889 — the tower opened.\n"
    assert (shown["feedback"], shown["feedback_reasons"]) == ("thumbs_down", ["wrong", "too long"])

    third = llmjobs(
        "feedback", oid, "--no-reasons", "--comment", "", "--corrected-answer", "", "--user", "ana"
    )
    assert third.returncode == 0, third.stderr
    shown = _shown(output.id)
    assert (shown["feedback_reasons"], shown["feedback_comment"], shown["corrected_answer"]) == (
        [],
        None,
        None,
    )
    assert shown["feedback"] == "thumbs_down"
    assert _events(pool, output.id) == 3


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ([], "error: feedback: give feedback, reasons, a comment or a corrected answer"),
        (["meh"], "error: feedback: must be one of none, thumbs_up, thumbs_down"),
        (["--reason", "boring"], "error: reasons: unknown reason 'boring'"),
        (["--reason", "wrong"] * 11, "error: reasons: at most 10 reasons on one output"),
        (["--reason", "wrong", "--no-reasons"], "error: reasons: give --reason or --no-reasons"),
        (["--comment", "x" * (MAX_COMMENT_CHARS + 1)], "error: comment: must be at most 2,000"),
        (
            ["--corrected-answer", "y" * (MAX_CORRECTED_CHARS + 1)],
            "error: corrected_answer: must be at most 50,000",
        ),
        (
            ["--corrected-answer", "a", "--corrected-file", "f.txt"],
            "error: corrected_answer: give --corrected-answer or --corrected-file, not both",
        ),
        (["--corrected-file", "/nonexistent/f.txt"], "error: corrected_file: cannot read"),
    ],
)
def test_cli_feedback_refusals_exit_2_with_one_line(database_url, pool, analyst, extra, line):
    output = create_test_llm_output(pool, analyst)
    result = llmjobs("feedback", str(output.id), *extra, "--user", "ana")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(line), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert _events(pool, output.id) == 0


def test_cli_corrected_file_must_be_utf8_and_bounded(database_url, pool, analyst, tmp_path):
    output = create_test_llm_output(pool, analyst)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café".encode("latin-1"))
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (MAX_CORRECTED_CHARS * 4 + 1))
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"a\x00b")
    for path, line in [
        (latin, "error: corrected_file: "),
        (big, "error: corrected_file: "),
        (nul, "error: corrected_answer: must not contain NUL characters"),
        (tmp_path, "error: corrected_file: cannot read"),
    ]:
        result = llmjobs("feedback", str(output.id), "--corrected-file", str(path), "--user", "ana")
        assert result.returncode == 2 and result.stderr.startswith(line), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (
        "not UTF-8 text"
        in llmjobs(
            "feedback", str(output.id), "--corrected-file", str(latin), "--user", "ana"
        ).stderr
    )
    assert _events(pool, output.id) == 0


def test_cli_feedback_on_another_users_output_is_not_found(
    database_url, pool, analyst, other_analyst, admin
):
    output = create_test_llm_output(pool, analyst)
    result = llmjobs("feedback", str(output.id), "--comment", "hi", "--user", "otto")
    assert result.returncode == 1 and f"output {output.id} not found" in result.stderr
    assert _events(pool, output.id) == 0
    by_admin = llmjobs("feedback", str(output.id), "--comment", "hi", "--user", "root-admin")
    assert by_admin.returncode == 0 and json.loads(by_admin.stdout)["comment"] == "hi"


def test_cli_reasons_list_set_remove(database_url, pool, analyst, admin):
    listed = json.loads(llmjobs("reasons", "list").stdout)
    assert [r["name"] for r in listed] == [
        "wrong", "incomplete", "off-format", "too long", "unsafe", "great",
    ]  # fmt: skip

    refused = llmjobs("reasons", "set", "vague", "--user", "ana")
    assert refused.returncode == 1 and "only admins" in refused.stderr

    added = llmjobs(
        "reasons", "set", "Vague", "--description", "says little", "--user", "root-admin"
    )
    assert added.returncode == 0, added.stderr
    vague = {"name": "vague", "description": "says little", "position": 7}
    assert json.loads(added.stdout) == vague
    moved = json.loads(
        llmjobs("reasons", "set", "vague", "--position", "0", "--user", "root-admin").stdout
    )
    assert moved == {"name": "vague", "description": "says little", "position": 0}
    assert json.loads(llmjobs("reasons", "list").stdout)[0]["name"] == "vague"

    for extra, line in [
        (["bad;name"], "error: name: a reason is"),
        (["ok", "--position", "x"], "error: position: must be a whole number from 0 to 1000"),
        (["ok", "--position", "1001"], "error: position: must be a whole number from 0 to 1000"),
        (["ok", "--position", "9" * 40], "error: position: must be a whole number"),
        (["ok", "--description", "d" * 201], "error: description: must be at most 200"),
    ]:
        result = llmjobs("reasons", "set", *extra, "--user", "root-admin")
        assert result.returncode == 2 and result.stderr.startswith(line), (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert len(json.loads(llmjobs("reasons", "list").stdout)) == 7

    output = create_test_llm_output(pool, analyst)
    llmjobs("feedback", str(output.id), "--reason", "vague", "--user", "ana")
    removed = llmjobs("reasons", "remove", "vague", "--user", "root-admin")
    assert removed.returncode == 0 and json.loads(removed.stdout) == {
        "reason": "vague",
        "removed": True,
    }
    assert _shown(output.id)["feedback_reasons"] == ["vague"]  # stays on the output
    gone = llmjobs("reasons", "remove", "vague", "--user", "root-admin")
    assert gone.returncode == 1 and "not found" in gone.stderr


def test_cli_list_finds_outputs_by_their_comment(database_url, pool, analyst, other_analyst):
    mine = create_test_llm_output(pool, analyst, comment="Off by 100%")
    create_test_llm_output(pool, analyst, comment="off by 1000")
    create_test_llm_output(pool, other_analyst, comment="off by 100% too")
    found = llmjobs("list", "--as-user", "ana", "--comment-contains", "100%")
    assert found.returncode == 0, found.stderr
    assert [o["id"] for o in json.loads(found.stdout)] == [mine.id]
    refused = llmjobs("list", "--as-user", "ana", "--comment-contains", "x" * 201)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: comment_contains: must be at most 200 characters")
