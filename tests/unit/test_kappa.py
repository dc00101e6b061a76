"""Cohen's kappa of people's thumbs against a judge, checked against hand-computed examples."""

from __future__ import annotations

import pytest

from tasks.judges import Calibration, cohens_kappa, cut


def test_kappa_matches_a_hand_computed_example():
    # 50 outputs: 20 up/pass, 5 up/fail, 10 down/pass, 15 down/fail.
    # observed agreement (20 + 15) / 50 = 0.7; people pass 25/50, the judge 30/50;
    # expected 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa (0.7 - 0.5) / (1 - 0.5) = 0.4
    assert cohens_kappa(20, 5, 10, 15) == pytest.approx(0.4)


def test_kappa_of_a_second_example_and_of_opposites():
    # 10 outputs: 4 up/pass, 1 up/fail, 2 down/pass, 3 down/fail. observed 0.7;
    # people pass 0.5, judge 0.6; expected 0.5; kappa 0.4 again: the proportions are the same
    assert cohens_kappa(4, 1, 2, 3) == pytest.approx(0.4)
    # 6/10 observed, people 0.8 pass, judge 0.6 pass: expected 0.48 + 0.08 = 0.56
    assert cohens_kappa(5, 3, 1, 1) == pytest.approx((0.6 - 0.56) / 0.44)
    assert cohens_kappa(5, 0, 0, 5) == pytest.approx(1.0)
    assert cohens_kappa(0, 5, 5, 0) == pytest.approx(-1.0)


def test_kappa_is_undefined_when_the_expected_agreement_is_one_or_nothing_is_paired():
    assert cohens_kappa(7, 0, 0, 0) is None
    assert cohens_kappa(0, 0, 0, 4) is None
    assert cohens_kappa(0, 0, 0, 0) is None
    calibrated = Calibration.of("m", 7, 0, 0, 0)
    assert calibrated.agreement == 1.0 and calibrated.kappa is None
    assert "expected agreement is 1" in calibrated.kappa_note
    assert Calibration.of(None, 0, 0, 0, 0).kappa_note.startswith("undefined: no output")


def test_the_matrix_keeps_the_thumb_in_rows_and_the_verdict_in_columns():
    calibrated = Calibration.of("m", 20, 5, 10, 15)
    assert calibrated.count == 50 and calibrated.agreement == pytest.approx(0.7)
    assert calibrated.matrix == {
        "thumbs_up": {"pass": 20, "fail": 5},
        "thumbs_down": {"pass": 10, "fail": 15},
    }


def test_a_long_text_is_cut_to_its_budget_and_says_so():
    assert cut("short", 100) == "short"
    text = "é\n" * 50_000
    shown = cut(text, 10_000)
    import json

    assert len(json.dumps(shown, ensure_ascii=False).encode()) <= 10_000
    assert shown.endswith("of 100,000 characters]") and "cut to fit" in shown
    assert text.startswith(shown.split("\n[cut to fit")[0])
