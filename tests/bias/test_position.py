"""Position bias: a scripted judge with a known first-position odds multiplier."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judgekit.bias.position import combine_orders, position_stats, unswap

C = 3.0  # the scripted judge multiplies the odds of the first-shown answer by C


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=1, keepdims=True)


def _scripted_two_label(q: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(p_ab, p_ba in BA-prompt labels) for true distributions q over (A, B)."""
    p_ab = _normalise(q * [c, 1.0])
    # BA prompt: its "A" is the original B, shown first, so it gets the boost.
    p_ba_prompt = _normalise(np.column_stack([q[:, 1] * c, q[:, 0]]))
    return p_ab, p_ba_prompt


def test_unswap_swaps_a_and_b_and_keeps_tie() -> None:
    p = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(unswap(p, ("A", "B", "tie")), [[0.2, 0.7, 0.1]])
    np.testing.assert_array_equal(unswap(p, ("tie", "A", "B")), [[0.7, 0.1, 0.2]])
    np.testing.assert_array_equal(unswap(p[:, :2], ("A", "B")), [[0.2, 0.7]])
    with pytest.raises(ValueError):
        unswap(p, ("A", "B"))


def test_soft_combination_cancels_first_position_boost_exactly() -> None:
    rng = np.random.default_rng(0)
    q = rng.dirichlet([1.0, 1.0], size=500)
    p_ab, p_ba_prompt = _scripted_two_label(q, C)
    p_ba = unswap(p_ba_prompt, ("A", "B"))

    soft = combine_orders(p_ab, p_ba, method="soft", labels=("A", "B"))
    np.testing.assert_allclose(soft, q, rtol=0, atol=1e-12)

    # The arithmetic mean keeps a q-dependent distortion: it drags every verdict towards 50/50.
    arithmetic = 0.5 * (p_ab + p_ba)
    assert np.max(np.abs(arithmetic - q)) > 0.05
    decisive = np.abs(q[:, 0] - 0.5) > 0.01
    assert np.all(np.abs(arithmetic[decisive, 0] - 0.5) < np.abs(q[decisive, 0] - 0.5))


def test_soft_combination_with_tie_label() -> None:
    rng = np.random.default_rng(1)
    q = rng.dirichlet([1.0, 1.0, 1.0], size=500)
    labels = ("A", "B", "tie")
    s = math.sqrt(C)
    # Symmetric boost (first * sqrt(C), second / sqrt(C), tie untouched): everything exact.
    p_ab = _normalise(q * [s, 1 / s, 1.0])
    p_ba_prompt = _normalise(np.column_stack([q[:, 1] * s, q[:, 0] / s, q[:, 2]]))
    soft = combine_orders(p_ab, unswap(p_ba_prompt, labels), method="soft", labels=labels)
    np.testing.assert_allclose(soft, q, rtol=0, atol=1e-12)

    # Boost on the first answer only: the A:B ratio is still exact.
    p_ab = _normalise(q * [C, 1.0, 1.0])
    p_ba_prompt = _normalise(np.column_stack([q[:, 1] * C, q[:, 0], q[:, 2]]))
    soft = combine_orders(p_ab, unswap(p_ba_prompt, labels), method="soft", labels=labels)
    np.testing.assert_allclose(soft[:, 0] / soft[:, 1], q[:, 0] / q[:, 1], rtol=1e-12)


def test_soft_contradictory_orders_and_nan_rows() -> None:
    p_ab = np.array([[1.0, 0.0], [np.nan, np.nan], [0.6, 0.4]])
    p_ba = np.array([[0.0, 1.0], [0.5, 0.5], [0.6, np.nan]])
    out = combine_orders(p_ab, p_ba, labels=("A", "B"))
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    assert np.isnan(out[1:]).all()


def test_hard_rule_is_fastchat() -> None:
    p_ab = np.array([[0.8, 0.2], [0.8, 0.2], [np.nan, np.nan]])
    p_ba = np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    out = combine_orders(p_ab, p_ba, method="hard", labels=("A", "B"))
    np.testing.assert_allclose(out[0], [0.7, 0.3])  # agree -> average
    np.testing.assert_allclose(out[1], [0.5, 0.5])  # disagree, no tie label
    assert np.isnan(out[2]).all()

    p_ab3 = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    p_ba3 = np.array([[0.5, 0.4, 0.1], [0.5, 0.2, 0.3]])
    out3 = combine_orders(p_ab3, p_ba3, method="hard", labels=("A", "B", "tie"))
    np.testing.assert_allclose(out3[0], [0.0, 0.0, 1.0])  # disagree -> tie label
    np.testing.assert_allclose(out3[1], [0.55, 0.25, 0.2])
    # A rubric that lists the tie first.
    out_t = combine_orders(
        p_ab3[:, [2, 0, 1]], p_ba3[:, [2, 0, 1]], method="hard", labels=("tie", "A", "B")
    )
    np.testing.assert_allclose(out_t[0], [1.0, 0.0, 0.0])


def test_hard_disagreement_is_a_tie_whatever_the_label_order() -> None:
    """Roles come from the names: with A, tie, B a disagreement is one-hot on "tie", not on B."""
    labels = ("A", "tie", "B")
    p_ab = np.array([[0.7, 0.1, 0.2]])  # picks A
    p_ba = np.array([[0.2, 0.1, 0.7]])  # (unswapped) picks B
    out = combine_orders(p_ab, p_ba, method="hard", labels=labels)
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.0])
    with pytest.raises(TypeError):
        combine_orders(p_ab, p_ba, method="hard")  # type: ignore[call-arg]


def _wilson_reference(k: int, n: int) -> tuple[float, float]:
    """Wilson bounds as the roots of (p - phat)^2 = z^2 p (1 - p) / n."""
    z = 1.959963984540054
    phat = k / n
    a = 1 + z**2 / n
    b = -(2 * phat + z**2 / n)
    c = phat**2
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_position_stats_known_by_construction() -> None:
    # 30 items where the judge always picks the first-shown answer (flips), 35 where it
    # consistently prefers A, 35 where it consistently prefers B, 5 invalid.
    flips_ab, flips_ba = [[0.8, 0.2]] * 30, [[0.2, 0.8]] * 30  # BA unswapped: picks B = first
    a_ab, a_ba = [[0.9, 0.1]] * 35, [[0.7, 0.3]] * 35
    b_ab, b_ba = [[0.3, 0.7]] * 35, [[0.1, 0.9]] * 35
    bad = [[np.nan, np.nan]] * 5
    p_ab = np.array(flips_ab + a_ab + b_ab + bad)
    p_ba = np.array(flips_ba + a_ba + b_ba + [[0.5, 0.5]] * 5)

    st = position_stats(p_ab, p_ba, labels=("A", "B"))
    assert (st.n_valid, st.n_invalid) == (100, 5)
    assert st.flip[:30].all() and not st.flip[30:].any()
    assert st.flip_rate.estimate == pytest.approx(0.30)
    assert (st.flip_rate.low, st.flip_rate.high) == pytest.approx(
        _wilson_reference(30, 100), abs=1e-12
    )
    # First-shown picks: AB 30 + 35 (A) ; BA 30 + 35 (B is first in BA) -> 130 / 200.
    assert st.first_pick_before.estimate == pytest.approx(0.65)
    assert (st.first_pick_before.low, st.first_pick_before.high) == pytest.approx(
        _wilson_reference(130, 200), abs=1e-12
    )
    # Combined: flip items become exact 50/50 (undecided); 35 A vs 35 B -> 0.5 after.
    assert st.first_pick_after.estimate == pytest.approx(0.5)
    assert (st.first_pick_after.low, st.first_pick_after.high) == pytest.approx(
        _wilson_reference(35, 70), abs=1e-12
    )
    np.testing.assert_allclose(st.p_a_ab[:30], 0.8)
    np.testing.assert_allclose(st.p_a_ba[:30], 0.2)
    assert np.isnan(st.p_a_ab[100:]).all() and not st.valid[100:].any()


def test_position_stats_on_scripted_biased_judge() -> None:
    # Balanced design: true preference for A symmetric around 0.5; boost C in both orders.
    rng = np.random.default_rng(2)
    q_a = rng.uniform(0.05, 0.95, size=4000)
    q = np.column_stack([q_a, 1 - q_a])
    p_ab, p_ba_prompt = _scripted_two_label(q, C)
    st = position_stats(p_ab, unswap(p_ba_prompt, ("A", "B")), labels=("A", "B"))
    # Judge picks first in AB iff C q_A > q_B; by construction flip iff 1/C < q_A/q_B < C,
    # i.e. q_A in (1/(1+C), C/(1+C)) = (0.25, 0.75): probability 0.5/0.9 for U(0.05, 0.95).
    expected_flip = np.mean((q_a > 1 / (1 + C)) & (q_a < C / (1 + C)))
    assert st.flip_rate.estimate == pytest.approx(expected_flip)
    assert abs(expected_flip - 0.5 / 0.9) < 0.03
    # Each flip item contributes 2 first picks, each consistent item 1: (1 + f) / 2.
    assert st.first_pick_before.estimate == pytest.approx((1 + expected_flip) / 2)
    # After soft combination the verdict is q itself: picks A iff q_A > 0.5.
    assert st.first_pick_after.estimate == pytest.approx(np.mean(q_a > 0.5))
    assert st.first_pick_after.low < 0.5 < st.first_pick_after.high


def test_position_stats_all_invalid_reports_no_rate() -> None:
    nan = np.full((3, 2), np.nan)
    st = position_stats(nan, nan, labels=("A", "B"))
    assert st.n_valid == 0 and st.n_invalid == 3
    assert st.flip_rate is None and st.first_pick_before is None and st.first_pick_after is None
