"""A study's claims as config entries, and the check that an experiment can test them.

``experiments.<exp>.claims.<id>`` (ids as in the claims list: E1-C3, G1...) holds:

* ``statement``: the claim in one sentence; ``source``: the study's figure or table;
* ``quantity``: ``{name, at, ...}``: a ``metrics.parquet`` column (``at``: final | all |
  change, default final), a derived / analysis quantity of ``minima.findings.quantities``
  (its options, e.g. ``target``, beside the name), or a quantity of an experiment's shared
  tables (``minima.findings.table_quantities``: lr sweep, similarity; kind ``every`` only);
* ``comparison``: ``kind`` and its keys:
    - ``difference``: ``pairs: [[A, B], ...]``, ``direction`` (A greater | less than B);
    - ``order``: ``runs: [A, B, C]`` (A > B > C for ``direction: greater``), judged pairwise;
    - ``ratio``: ``pairs``, ``direction``, ``threshold`` (mean A / mean B vs it, default 1);
    - ``every``: ``runs`` (null: all), ``direction``, ``threshold``: every value beyond it;
    - ``gain``: ``pairs: [[A1, B1], [A2, B2]]``: the gain A1 - B1 against A2 - B2;
      ``direction``: equal (within ``margin``, an equivalence claim) | greater | less;
    - ``correlation``: ``against`` (another quantity), ``direction``: positive | negative |
      none: Kendall's tau across every completed run;
    - ``reported``: no verdict, only the reported-vs-reproduced rows;
* ``models``: the model labels it is about (null: every model, judged per model);
* ``reported``: the study's numbers ``[{run, model, mean, std, n}]`` (std/n null: not given),
  in the quantity's stored unit (accuracy as a fraction, time in seconds);
  ``test_images``: the size of a test set each side drew on its own (binomial error, see
  ``minima.findings.reproduced``); ``ratio_to``: compare as ratios to this run (times).

``check_claims`` runs at start-up: a claim naming a run, metric, quantity or analysis the
experiment does not produce stops the workflow, naming the claim and the missing piece.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minima import plan
from minima.findings import quantities
from minima.findings.table_quantities import TABLE_QUANTITIES, check_table_quantity
from minima.plan import ConfigError

KINDS = ("difference", "order", "ratio", "gain", "every", "correlation", "reported")
DIRECTIONS = {
    "difference": ("greater", "less"),
    "gain": ("equal", "greater", "less"),
    "order": ("greater", "less"),
    "ratio": ("greater", "less"),
    "every": ("greater", "less"),
    "correlation": ("positive", "negative", "none"),
    "reported": (),
}


@dataclass(frozen=True)
class Claim:
    """One claim entry, normalised (pairs filled in for orders and every-claims' runs)."""

    id: str
    experiment: str
    statement: str
    source: str
    quantity: str
    quantity_spec: Mapping[str, Any]
    kind: str
    direction: str | None
    threshold: float | None
    pairs: tuple[tuple[str, str], ...]
    runs: tuple[str, ...]
    against: str | None
    models: tuple[str, ...]
    reported: tuple[Mapping[str, Any], ...]
    test_images: int | None
    ratio_to: str | None
    margin: float = 0.0

    def named_runs(self) -> list[str]:
        """Every run the claim reads, in first-mention order."""
        names = [r for pair in self.pairs for r in pair] + list(self.runs)
        names += [entry["run"] for entry in self.reported]
        if self.ratio_to:
            names.append(self.ratio_to)
        return list(dict.fromkeys(names))


def claim_entries(config: Mapping[str, Any], experiment: str) -> dict[str, Mapping[str, Any]]:
    return dict(config["experiments"][experiment].get("claims") or {})


def parse_claim(config: Mapping[str, Any], experiment: str, cid: str) -> Claim:
    """The normalised claim ``cid`` of ``experiment`` (no checks: see :func:`check_claim`)."""
    entry = claim_entries(config, experiment)[cid]
    exp = config["experiments"][experiment]
    comparison = entry["comparison"]
    kind = comparison["kind"]
    all_runs = tuple(exp["runs"])
    pairs: tuple[tuple[str, str], ...] = tuple(tuple(p) for p in comparison.get("pairs") or ())
    runs: tuple[str, ...] = tuple(comparison.get("runs") or ())
    if kind == "order":
        pairs = tuple(zip(runs[:-1], runs[1:], strict=True))
    if kind in ("every", "correlation") and not runs:
        runs = all_runs
    labels = [plan.model_label(m) for m in exp["models"]]
    models = tuple(entry.get("models") or labels)
    quantity = entry["quantity"]
    return Claim(
        id=cid,
        experiment=experiment,
        statement=entry["statement"],
        source=entry.get("source", ""),
        quantity=quantity["name"],
        quantity_spec=dict(quantity),
        kind=kind,
        direction=comparison.get("direction"),
        threshold=comparison.get("threshold", 1.0 if kind == "ratio" else 0.0),
        pairs=pairs,
        runs=runs,
        against=comparison.get("against"),
        models=models,
        # a model the experiment does not train (a shrunk test config): its numbers left out
        reported=tuple(e for e in entry.get("reported") or () if e.get("model") in (None, *labels)),
        test_images=entry.get("test_images"),
        ratio_to=entry.get("ratio_to"),
        margin=float(comparison.get("margin", 0.0)),
    )


def parse_claims(config: Mapping[str, Any], experiment: str) -> list[Claim]:
    return [parse_claim(config, experiment, cid) for cid in claim_entries(config, experiment)]


def _check_quantity(claim: Claim, name: str, config: Mapping[str, Any], where: str) -> None:
    if not quantities.is_known(name):
        raise ConfigError(
            f"{where}: quantity {name!r} is not produced by any stage; known: metrics columns "
            f"{sorted(quantities.metric_columns())}, {sorted(quantities.QUANTITIES)} and "
            f"{sorted(TABLE_QUANTITIES)}"
        )
    if quantities.is_table_quantity(name):
        if claim.kind != "every":
            raise ConfigError(
                f"{where}: {name!r} is read from the experiment's shared tables, so only "
                f"comparison kind 'every' can judge it, not {claim.kind!r}"
            )
        try:
            check_table_quantity(config, claim.experiment, name, claim.quantity_spec, claim.runs)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        return
    spec = claim.quantity_spec if name == claim.quantity else {}
    unknown = [k for k in spec if k not in ("name", "at", *quantities.options_of(name))]
    if unknown:
        raise ConfigError(
            f"{where}: options {unknown} unknown; {name} takes "
            f"{['at', *quantities.options_of(name)]}"
        )
    try:
        quantities.check_options(name, spec)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    analysis = quantities.analysis_of(name)
    if analysis is None:
        return
    if plan.analysis_section(config, claim.experiment, analysis) is None:
        raise ConfigError(
            f"{where}: quantity {name!r} needs experiments.{claim.experiment}.analyses."
            f"{analysis}, which the experiment does not run"
        )
    covered = set(plan.analysis_runs(config, claim.experiment, analysis))
    missing = [r for r in claim.named_runs() if r not in covered and r != claim.ratio_to]
    if missing:
        raise ConfigError(
            f"{where}: analyses.{analysis} does not cover run(s) {missing} (it covers "
            f"{sorted(covered)})"
        )


def check_claim(config: Mapping[str, Any], claim: Claim) -> None:
    """Raise ConfigError naming the claim and what its experiment does not produce."""
    where = f"experiments.{claim.experiment}.claims.{claim.id}"
    exp = config["experiments"][claim.experiment]
    if claim.kind not in KINDS:
        raise ConfigError(f"{where}.comparison.kind is {claim.kind!r}; allowed: {list(KINDS)}")
    allowed = DIRECTIONS[claim.kind]
    if allowed and claim.direction not in allowed:
        raise ConfigError(
            f"{where}.comparison.direction is {claim.direction!r}; allowed for kind "
            f"{claim.kind}: {list(allowed)}"
        )
    if claim.kind == "gain" and len(claim.pairs) != 2:
        raise ConfigError(f"{where}.comparison.pairs: a gain claim needs [[A1, B1], [A2, B2]]")
    if claim.kind == "gain" and claim.direction == "equal" and claim.margin <= 0:
        raise ConfigError(f"{where}.comparison.margin: an 'equal' gain claim needs a margin > 0")
    if claim.kind in ("difference", "ratio") and not claim.pairs:
        raise ConfigError(f"{where}.comparison.pairs: a {claim.kind} claim needs [[A, B], ...]")
    if claim.kind == "order" and len(claim.runs) < 2:
        raise ConfigError(f"{where}.comparison.runs: an order needs at least two runs")
    if claim.kind == "correlation" and not claim.against:
        raise ConfigError(f"{where}.comparison.against: a correlation needs a second quantity")
    for run in claim.named_runs():
        if run not in exp["runs"]:
            raise ConfigError(
                f"{where}: run {run!r} is not a run of experiments.{claim.experiment}; "
                f"allowed: {list(exp['runs'])}"
            )
    labels = [plan.model_label(m) for m in exp["models"]]
    for model in claim.models:
        if model not in labels:
            raise ConfigError(
                f"{where}: model {model!r} is not a model of the experiment; allowed: {labels}"
            )
    at = claim.quantity_spec.get("at", "final")
    if at not in quantities.METRIC_AT:
        raise ConfigError(f"{where}.quantity.at is {at!r}; allowed: {list(quantities.METRIC_AT)}")
    _check_quantity(claim, claim.quantity, config, f"{where}.quantity")
    if claim.against:
        _check_quantity(claim, claim.against, config, f"{where}.comparison.against")


def check_claims(config: Mapping[str, Any]) -> None:
    """Check every claim of every experiment (start-up validation)."""
    for experiment in config["experiments"]:
        for claim in parse_claims(config, experiment):
            check_claim(config, claim)
