"""Reported vs reproduced: is our mean within the combined spread of the study's?

The rule: with d = ours - theirs,

    within  <=>  |d| <= 2 * sqrt(s_ours^2 / n_ours + s_theirs^2 / n_theirs + k * p (1 - p) / n_test)

(two standard errors of the difference of two means). Where the study gives no spread, its
term is 0 and the row says so. Where a side's test set is its own random draw of ``n_test``
images (E2 draws 200 test images, and so did the study), the spread over seeds says nothing
about which images were drawn: each such side adds the binomial sampling variance of an
accuracy, p (1 - p) / n_test, with p the mean of the two accuracies (k = 2 when both drew
their own). When the combined error is 0 (one run against a number without spread) nothing is
judged. Times are compared as ratios to one reference run (SGD), never in seconds: the study's
ratio of means with its spread by the delta method. Stand-in data is never judged.
"""

from __future__ import annotations

import math

WITHIN, OUTSIDE, NO_SPREAD, STAND_IN = (
    "within spread",
    "outside spread",
    "not judged: no spread on either side",
    "not judged: stand-in data",
)
RULE = (
    "ours is within the study's spread when |ours - theirs| <= 2 sqrt(s1^2/n1 + s2^2/n2 "
    "+ k p(1-p)/n_test): std over seeds s, n runs, a missing study spread counted as 0, and, "
    "where a test set is its own random draw of n_test images, the binomial sampling "
    "variance p(1-p)/n_test of each such side (k sides); times as ratios to SGD."
)


def _var_of_mean(std: float | None, n: int | None) -> float:
    if std is None or n is None or n < 1 or not math.isfinite(std):
        return 0.0
    return std**2 / n


def combined_error(
    ours_std: float | None,
    ours_n: int,
    theirs_std: float | None,
    theirs_n: int | None,
    *,
    p: float | None = None,
    n_test: int | None = None,
    drawn_sides: int = 2,
) -> float:
    """Standard error of ours - theirs (see the module docstring)."""
    var = _var_of_mean(ours_std, ours_n) + _var_of_mean(theirs_std, theirs_n)
    if n_test:
        if p is None:
            raise ValueError("the binomial term needs the accuracy p")
        var += drawn_sides * p * (1 - p) / n_test
    return math.sqrt(var)


def compare_reported(
    ours_mean: float,
    ours_std: float | None,
    ours_n: int,
    theirs_mean: float,
    theirs_std: float | None,
    theirs_n: int | None,
    *,
    n_test: int | None = None,
    stand_in: bool = False,
) -> dict:
    """One reported-vs-reproduced row: difference, combined error, and the status word."""
    p = (ours_mean + theirs_mean) / 2 if n_test else None
    error = combined_error(ours_std, ours_n, theirs_std, theirs_n, p=p, n_test=n_test)
    diff = ours_mean - theirs_mean
    if stand_in:
        status = STAND_IN
    elif error == 0 or not math.isfinite(error):
        status = NO_SPREAD
    else:
        status = WITHIN if abs(diff) <= 2 * error else OUTSIDE
    notes = []
    if theirs_std is None:
        notes.append("the study gives no spread")
    if n_test:
        notes.append(f"binomial error of {n_test} drawn test images included")
    return {
        "difference": diff,
        "error": error,
        "status": status,
        "note": "; ".join(notes),
    }


def ratio_of_reported(
    mean: float, std: float | None, ref_mean: float, ref_std: float | None
) -> tuple[float, float | None]:
    """A reported mean as a ratio to a reference run's, its std by the delta method.

    std(a/b) ~ (a/b) sqrt((s_a/a)^2 + (s_b/b)^2); None when neither has a spread.
    """
    ratio = mean / ref_mean
    if std is None and ref_std is None:
        return ratio, None
    rel = ((std or 0.0) / mean) ** 2 + ((ref_std or 0.0) / ref_mean) ** 2
    return ratio, ratio * math.sqrt(rel)
