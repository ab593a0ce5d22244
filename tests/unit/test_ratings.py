"""Arena leaderboard: Bradley–Terry strengths from pairwise votes, checked against arithmetic done by hand."""

from __future__ import annotations

import math
import random
import time

import pytest

from backend.services.ratings import PairVote, Rating, bradley_terry, leaderboard

ELO_3 = 400 * math.log10(3)  # ≈ 190.85: the rating gap of 3:1 odds


def votes(a: str, b: str, outcome: str, times: int) -> list[PairVote]:
    return [PairVote(a, b, outcome)] * times  # type: ignore[arg-type]


def by_model(board: list[Rating]) -> dict[str, Rating]:
    return {r.model: r for r in board}


def test_three_to_one_is_a_strength_ratio_of_three() -> None:
    data = votes("A", "B", "a", 3) + votes("A", "B", "b", 1)
    strengths = bradley_terry(data, prior=0)
    assert strengths["A"] / strengths["B"] == pytest.approx(3, rel=1e-12)
    assert strengths["A"] * strengths["B"] == pytest.approx(1, rel=1e-12)  # geometric mean 1
    board = by_model(leaderboard(data, prior=0, bootstrap=0))
    assert board["A"].rating - board["B"].rating == pytest.approx(ELO_3)
    assert round(ELO_3, 2) == 190.85
    assert board["A"].rating == pytest.approx(1000 + ELO_3 / 2)
    assert board["B"].rating == pytest.approx(1000 - ELO_3 / 2)


def test_votes_count_the_same_from_either_side() -> None:
    data = votes("A", "B", "a", 3) + votes("B", "A", "a", 1)  # B's one win, recorded with B as model_a
    strengths = bradley_terry(data, prior=0)
    assert strengths["A"] / strengths["B"] == pytest.approx(3, rel=1e-12)


def test_a_tie_is_half_a_win_for_each_side() -> None:
    data = votes("A", "B", "a", 2) + votes("A", "B", "tie", 2)
    strengths = bradley_terry(data, prior=0)
    assert strengths["A"] / strengths["B"] == pytest.approx((2 + 1) / (0 + 1), rel=1e-12)


def test_both_bad_counts_as_a_tie() -> None:
    tie = bradley_terry(votes("A", "B", "a", 2) + votes("A", "B", "tie", 2), prior=0)
    both_bad = bradley_terry(votes("A", "B", "a", 2) + votes("B", "A", "both_bad", 2), prior=0)
    assert both_bad == pytest.approx(tie)
    board = by_model(leaderboard(votes("A", "B", "a", 2) + votes("A", "B", "both_bad", 2), bootstrap=0))
    assert (board["A"].wins, board["A"].losses, board["A"].ties, board["A"].votes) == (2, 0, 2, 4)
    assert (board["B"].wins, board["B"].losses, board["B"].ties, board["B"].votes) == (0, 2, 2, 4)


def test_a_transitive_set_is_ordered() -> None:
    data = (votes("A", "B", "a", 3) + votes("A", "B", "b", 1)
            + votes("B", "C", "a", 3) + votes("B", "C", "b", 1)
            + votes("A", "C", "a", 9) + votes("A", "C", "b", 1))
    for prior in (0.0, 1.0):
        board = leaderboard(data, prior=prior, bootstrap=0)
        assert [r.model for r in board] == ["A", "B", "C"]
        assert math.fsum(r.rating for r in board) / 3 == pytest.approx(1000)


def test_a_consistent_three_model_set_has_the_exact_strengths() -> None:
    # Odds A:B 2:1, B:C 2:1, A:C 4:1 fit strengths 4:2:1 exactly, so those are the maximum-likelihood ones.
    data = (votes("A", "B", "a", 2) + votes("A", "B", "b", 1)
            + votes("B", "C", "a", 2) + votes("B", "C", "b", 1)
            + votes("A", "C", "a", 4) + votes("A", "C", "b", 1))
    strengths = bradley_terry(data, prior=0)
    assert strengths == pytest.approx({"A": 2.0, "B": 1.0, "C": 0.5}, rel=1e-8)


def test_the_prior_solves_its_equations() -> None:
    # A beat B once, prior 1: by symmetry p_B = 1/p_A = 1/x with the reference at 1, and A's score (1 win plus half
    # of one virtual tie) equals its expected score: 1.5 = x/(x + 1/x) + x/(x + 1).
    x = bradley_terry([PairVote("A", "B", "a")], prior=1.0)["A"]
    assert x * x / (x * x + 1) + x / (x + 1) == pytest.approx(1.5, rel=1e-9)


def test_the_prior_shrinks_toward_1000() -> None:
    data = votes("A", "B", "a", 3) + votes("A", "B", "b", 1)
    gaps = []
    for prior in (0.0, 1.0, 10.0):
        board = by_model(leaderboard(data, prior=prior, bootstrap=0))
        gaps.append(board["A"].rating - board["B"].rating)
    assert gaps[0] == pytest.approx(ELO_3)
    assert gaps[0] > gaps[1] > gaps[2] > 0


def test_the_prior_makes_an_unbeaten_model_finite() -> None:
    data = votes("A", "B", "a", 5)
    with pytest.raises(ValueError, match="never"):
        bradley_terry(data, prior=0)
    with pytest.raises(ValueError, match="prior > 0"):
        leaderboard(data, prior=0)
    board = leaderboard(data)
    assert [r.model for r in board] == ["A", "B"]
    assert all(math.isfinite(r.rating) and math.isfinite(r.ci_low) and math.isfinite(r.ci_high) for r in board)
    assert board[0].rating > 1000 > board[1].rating


def test_the_plain_fit_names_a_model_that_never_won() -> None:
    data = votes("A", "B", "a", 1) + votes("B", "A", "a", 1) + votes("C", "A", "b", 2)
    with pytest.raises(ValueError, match="'C' never won"):
        bradley_terry(data, prior=0)


def test_the_plain_fit_refuses_a_group_that_never_beat_the_rest() -> None:
    # Every model won and lost, but C and D never beat A or B: their relative strength is unbounded.
    data = (votes("A", "B", "a", 1) + votes("A", "B", "b", 1) + votes("C", "D", "a", 1) + votes("C", "D", "b", 1)
            + votes("A", "C", "a", 1))
    with pytest.raises(ValueError, match="not finite"):
        bradley_terry(data, prior=0)
    assert len(bradley_terry(data)) == 4


def test_ties_alone_are_enough_for_the_plain_fit() -> None:
    assert bradley_terry(votes("A", "B", "tie", 3), prior=0) == pytest.approx({"A": 1.0, "B": 1.0})


def test_counts() -> None:
    data = [PairVote("A", "B", "a"), PairVote("B", "A", "a"), PairVote("A", "C", "tie"), PairVote("C", "A", "b"),
            PairVote("B", "C", "both_bad"), PairVote("A", "A", "a")]
    board = by_model(leaderboard(data, bootstrap=10))
    assert (board["A"].votes, board["A"].wins, board["A"].losses, board["A"].ties) == (4, 2, 1, 1)
    assert (board["B"].votes, board["B"].wins, board["B"].losses, board["B"].ties) == (3, 1, 1, 1)
    assert (board["C"].votes, board["C"].wins, board["C"].losses, board["C"].ties) == (3, 0, 1, 2)


def test_self_votes_are_ignored() -> None:
    data = votes("A", "B", "a", 3) + votes("A", "B", "b", 1)
    with_self = [*data, PairVote("A", "A", "a"), PairVote("B", "B", "tie"), PairVote("Z", "Z", "b")]
    assert leaderboard(with_self) == leaderboard(data)
    assert bradley_terry(with_self) == bradley_terry(data)
    assert leaderboard([PairVote("A", "A", "a")]) == []


def test_no_votes() -> None:
    assert leaderboard([]) == []
    assert bradley_terry([]) == {}


def test_the_interval_contains_the_rating_and_narrows_with_more_votes() -> None:
    few = votes("A", "B", "a", 6) + votes("A", "B", "b", 2) + votes("B", "C", "a", 6) + votes("B", "C", "b", 2)
    many = few * 10
    widths = []
    for data in (few, many):
        board = leaderboard(data, seed=1)
        for r in board:
            assert r.ci_low <= r.rating <= r.ci_high
            assert r.ci_low < r.ci_high
        widths.append(by_model(board)["A"].ci_high - by_model(board)["A"].ci_low)
    assert widths[0] > 2 * widths[1]


def test_without_bootstrap_the_interval_is_the_rating() -> None:
    for r in leaderboard(votes("A", "B", "a", 3) + votes("A", "B", "b", 1), bootstrap=0):
        assert r.ci_low == r.rating == r.ci_high


def test_the_same_seed_gives_the_same_board() -> None:
    data = arena(120, seed=3)
    assert leaderboard(data, bootstrap=50, seed=7) == leaderboard(data, bootstrap=50, seed=7)
    assert leaderboard(data, bootstrap=50, seed=7) != leaderboard(data, bootstrap=50, seed=8)


def test_equal_ratings_are_ordered_by_name() -> None:
    data = votes("Zed", "Amy", "a", 2) + votes("Zed", "Amy", "b", 2) + votes("Bob", "Zed", "tie", 1)
    board = leaderboard(data, bootstrap=0)
    assert [r.model for r in board] == ["Amy", "Bob", "Zed"]


def test_the_order_of_the_votes_does_not_change_the_fit() -> None:
    data = arena(200, seed=5)
    shuffled = list(data)
    random.Random(0).shuffle(shuffled)
    assert bradley_terry(shuffled) == pytest.approx(bradley_terry(data), rel=1e-8)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="outcome"):
        bradley_terry([PairVote("A", "B", "draw")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prior"):
        leaderboard(votes("A", "B", "a", 1), prior=-1)
    with pytest.raises(ValueError, match="bootstrap"):
        leaderboard(votes("A", "B", "a", 1), bootstrap=-1)


def test_the_fit_recovers_the_true_order_and_the_bootstrap_is_fast() -> None:
    data = arena(400, seed=11)
    start = time.perf_counter()
    board = leaderboard(data, prior=1.0, bootstrap=200)
    elapsed = time.perf_counter() - start
    assert [r.model for r in board][:2] == ["m5", "m4"] and board[-1].model == "m0"
    for r in board:
        assert r.ci_low <= r.rating <= r.ci_high
    assert elapsed < 0.5


def arena(n: int, *, seed: int) -> list[PairVote]:
    """Votes among six models whose true ratings are 100 points apart."""
    rng = random.Random(seed)
    models = [f"m{i}" for i in range(6)]
    result = []
    for _ in range(n):
        a, b = rng.sample(models, 2)
        p_a = 1 / (1 + 10 ** ((int(b[1]) - int(a[1])) * 100 / 400))
        roll = rng.random()
        outcome = "tie" if roll < 0.1 else "both_bad" if roll < 0.15 else "a" if rng.random() < p_a else "b"
        result.append(PairVote(a, b, outcome))  # type: ignore[arg-type]
    return result
