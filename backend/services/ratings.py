"""Arena leaderboard: Bradley–Terry strengths from pairwise human votes, with bootstrap confidence intervals.

Votes are compiled once into integer keys (pair, outcome) so that a fit, and each bootstrap refit, works on at most
three counts per pair of models instead of on every vote.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["a", "b", "tie", "both_bad"]
OUTCOMES: tuple[Outcome, ...] = ("a", "b", "tie", "both_bad")

BASE_RATING = 1000.0
SCALE = 400.0  # Elo's: a 400-point gap is 10:1 odds

# Outcome codes of a compiled vote, seen from the pair's lower model index.
_LOW_WON, _HIGH_WON, _TIE = 0, 1, 2


@dataclass(frozen=True)
class PairVote:
    model_a: str
    model_b: str
    outcome: Outcome  # a won, b won, tie, both bad (counts as a tie for rating)


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float  # 1000 + 400 * log10(strength / geometric mean strength)
    ci_low: float  # 95 % bootstrap percentile interval of `rating`
    ci_high: float
    votes: int  # votes this model took part in
    wins: int
    losses: int
    ties: int  # ties and both-bad together


@dataclass(frozen=True)
class _Compiled:
    models: list[str]  # sorted, so that indices do not depend on the order of the votes
    pairs: list[tuple[int, int]]  # (low, high) model indices
    keys: list[int]  # one per vote: pair index * 3 + outcome code


def _compile(votes: Sequence[PairVote]) -> _Compiled:
    for vote in votes:
        if vote.outcome not in OUTCOMES:
            raise ValueError(f"unknown vote outcome {vote.outcome!r}; expected one of {', '.join(OUTCOMES)}")
    # A model voted only against itself has no comparison at all, so it is not on the board.
    real = [v for v in votes if v.model_a != v.model_b]
    models = sorted({v.model_a for v in real} | {v.model_b for v in real})
    index = {name: i for i, name in enumerate(models)}
    pair_index: dict[tuple[int, int], int] = {}
    pairs: list[tuple[int, int]] = []
    keys: list[int] = []
    for vote in real:
        a, b = index[vote.model_a], index[vote.model_b]
        low, high = min(a, b), max(a, b)
        p = pair_index.get((low, high))
        if p is None:
            p = pair_index[(low, high)] = len(pairs)
            pairs.append((low, high))
        if vote.outcome in ("tie", "both_bad"):
            code = _TIE
        else:
            a_won = vote.outcome == "a"
            code = _LOW_WON if a_won == (a == low) else _HIGH_WON
        keys.append(p * 3 + code)
    return _Compiled(models, pairs, keys)


@dataclass(frozen=True)
class _Totals:
    comparisons: list[tuple[int, int, int]]  # (low, high, number of votes) for pairs with votes
    scores: list[float]  # per model: wins + half the ties
    beat: list[set[int]]  # beat[i]: the models i won against or tied with at least once


def _totals(counts: Iterable[tuple[int, int]], pairs: list[tuple[int, int]], n_models: int) -> _Totals:
    per_pair = [0] * len(pairs)
    scores = [0.0] * n_models
    beat: list[set[int]] = [set() for _ in range(n_models)]
    for key, count in counts:
        p, code = divmod(key, 3)
        low, high = pairs[p]
        per_pair[p] += count
        if code == _LOW_WON:
            scores[low] += count
            beat[low].add(high)
        elif code == _HIGH_WON:
            scores[high] += count
            beat[high].add(low)
        else:
            scores[low] += count / 2
            scores[high] += count / 2
            beat[low].add(high)
            beat[high].add(low)
    comparisons = [(low, high, n) for (low, high), n in zip(pairs, per_pair, strict=True) if n]
    return _Totals(comparisons, scores, beat)


def _ml_problem(totals: _Totals, models: list[str]) -> str | None:
    """Why the plain maximum-likelihood fit has no finite answer, or None when it has one.

    Zermelo/Ford: it exists exactly when, however the models are split in two groups, each group won (or tied) at
    least once against the other, i.e. when the graph "i beat j" is strongly connected.
    """
    n = len(models)
    for i in range(n):
        if not totals.beat[i]:
            return f"model {models[i]!r} never won nor tied, so its maximum-likelihood strength is 0"
    lost_to: list[set[int]] = [set() for _ in range(n)]
    for i, beaten in enumerate(totals.beat):
        for j in beaten:
            lost_to[j].add(i)
    for i in range(n):
        if not lost_to[i]:
            return f"model {models[i]!r} never lost nor tied, so its maximum-likelihood strength is infinite"
    for edges in (totals.beat, lost_to):
        if len(_reachable(0, edges)) < n:
            return ("some models never won (nor tied) against the others, so their maximum-likelihood strengths "
                    "are not finite")
    return None


def _reachable(start: int, edges: list[set[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for j in edges[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def _fit(totals: _Totals, prior: float, iterations: int, tolerance: float, start: list[float] | None) -> list[float]:
    """Hunter's MM update p_i ← W_i / Σ_j n_ij / (p_i + p_j), all models at once (the minorizer is separable).

    The prior adds `prior` ties against a reference fixed at strength 1: W_i gains prior/2 and the sum gains
    prior / (p_i + 1). That reference pins the scale, so the result is not normalized here.
    """
    n = len(totals.scores)
    wins = [w + prior / 2 for w in totals.scores]
    p = list(start) if start is not None else [1.0] * n
    comparisons = totals.comparisons
    for _ in range(iterations):
        den = [prior / (x + 1.0) for x in p] if prior else [0.0] * n
        for i, j, count in comparisons:
            d = count / (p[i] + p[j])
            den[i] += d
            den[j] += d
        new = [w / d for w, d in zip(wins, den, strict=True)]
        # Without a reference the likelihood is scale-free; pinning the scale keeps the stopping test meaningful.
        # With one, only the few virtual ties tie down the overall scale, and plain MM creeps along that direction
        # for hundreds of iterations: moving to the best scale outright keeps each step an ascent, and converges.
        new = _best_scale(new) if prior else _normalized(new)
        change = max(abs(a - b) / b for a, b in zip(new, p, strict=True))
        p = new
        if change < tolerance:
            break
    return p


def _best_scale(strengths: list[float]) -> list[float]:
    """Rescale to the c·p that maximizes the prior's likelihood (the votes' does not depend on the scale).

    That is Σ c·p_i / (c·p_i + 1) = n/2: a few Newton steps on log c are enough, the problem being concave in log c
    and solved again at every iteration.
    """
    half = len(strengths) / 2
    log_c = 0.0
    for _ in range(3):
        c = math.exp(log_c)
        shares = [c * x / (c * x + 1.0) for x in strengths]
        slope = math.fsum(s * (1.0 - s) for s in shares)
        if slope <= 0.0:
            break
        log_c -= max(-1.0, min(1.0, (math.fsum(shares) - half) / slope))
    c = math.exp(log_c)
    return [c * x for x in strengths]


def _normalized(strengths: list[float]) -> list[float]:
    mean_log = math.fsum(math.log(x) for x in strengths) / len(strengths)
    scale = math.exp(mean_log)
    return [x / scale for x in strengths]


def _ratings(strengths: list[float]) -> list[float]:
    logs = [math.log10(x) for x in strengths]
    mean = math.fsum(logs) / len(logs)
    return [BASE_RATING + SCALE * (x - mean) for x in logs]


def _check(prior: float, iterations: int, tolerance: float) -> None:
    if not prior >= 0:
        raise ValueError(f"prior must be 0 or more, not {prior}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be 0 or more, not {tolerance}")


def bradley_terry(votes: Sequence[PairVote], *, prior: float = 1.0, iterations: int = 200,
                  tolerance: float = 1e-9) -> dict[str, float]:
    """Strengths (geometric mean 1) by the MM algorithm (Hunter 2004). A tie counts half a win for each side.

    `prior`: every model gets `prior` virtual ties against a reference of strength 1, so that a model that never won
    (or never lost) still has a finite strength; prior=0 gives the plain maximum-likelihood fit, which raises
    ValueError when it has no finite answer (a model without a win or without a loss, or more generally a group of
    models that never won against the rest). Self-votes are ignored. Stops when no strength moves by more than
    `tolerance` (relative) in an iteration, or after `iterations`.
    """
    _check(prior, iterations, tolerance)
    data = _compile(votes)
    if not data.models:
        return {}
    totals = _totals(Counter(data.keys).items(), data.pairs, len(data.models))
    if not prior and (problem := _ml_problem(totals, data.models)):
        raise ValueError(f"{problem}; use a prior > 0")
    strengths = _normalized(_fit(totals, prior, iterations, tolerance, None))
    return dict(zip(data.models, strengths, strict=True))


def leaderboard(votes: Sequence[PairVote], *, prior: float = 1.0, bootstrap: int = 200,
                seed: int = 0) -> list[Rating]:
    """Ratings, best first (ties in rating broken by name), with 95 % bootstrap percentile intervals.

    The votes are resampled with replacement `bootstrap` times (random.Random(seed): deterministic) and refitted.
    With prior=0 a resample without a finite fit is left out of the intervals, and the full data without one
    raises ValueError as in `bradley_terry`. No votes: an empty list. A vote of a model against itself is ignored.
    """
    _check(prior, 1, 0.0)
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 or more, not {bootstrap}")
    data = _compile(votes)
    if not data.models:
        return []
    n = len(data.models)
    counts = Counter(data.keys)
    totals = _totals(counts.items(), data.pairs, n)
    if not prior and (problem := _ml_problem(totals, data.models)):
        raise ValueError(f"{problem}; use a prior > 0")
    fitted = _fit(totals, prior, 200, 1e-9, None)
    point = _ratings(fitted)

    rng = random.Random(seed)
    samples: list[list[float]] = [[] for _ in range(n)]
    for _ in range(bootstrap):
        drawn = _totals(Counter(rng.choices(data.keys, k=len(data.keys))).items(), data.pairs, n)
        if not prior and _ml_problem(drawn, data.models):
            continue
        # Started from the full fit; a tolerance of 1e-6 in strength is ~0.001 rating points, plenty for an interval.
        for model, rating in enumerate(_ratings(_fit(drawn, prior, 200, 1e-6, fitted))):
            samples[model].append(rating)

    board = []
    for i, name in enumerate(data.models):
        low, high = point[i], point[i]
        if samples[i]:
            ordered = sorted(samples[i])
            # The percentile interval of a skewed, shrunk estimate can miss the point by a hair on tiny data; an
            # interval that excludes its own rating reads as a bug, so it is widened to include it.
            low = min(point[i], _percentile(ordered, 0.025))
            high = max(point[i], _percentile(ordered, 0.975))
        wins = losses = ties = 0
        for key, count in counts.items():
            p, code = divmod(key, 3)
            pair = data.pairs[p]
            if i not in pair:
                continue
            if code == _TIE:
                ties += count
            elif (code == _LOW_WON) == (pair[0] == i):
                wins += count
            else:
                losses += count
        board.append(Rating(name, point[i], low, high, wins + losses + ties, wins, losses, ties))
    # Rounded so that models with equal data (equal ratings up to float noise) are ordered by name.
    board.sort(key=lambda r: (-round(r.rating, 9), r.model))
    return board


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
