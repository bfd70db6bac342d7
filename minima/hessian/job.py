"""The curvature rules' work (rules/hessian.smk): from a run's files to tidy tables + metadata.

Each job function takes the files its rule gives it (weights, the run's ``final.json``, the
dataset manifest and split) and its config sections, and returns an ``AnalysisOutput``:
named tables and a metadata dict, which ``write_output`` writes atomically together with
the provenance. A run that did not complete (``final.json`` status ``diverged``) gets
empty tables, with their columns, and metadata saying why, so figures can show it as
missing instead of the workflow stopping.

The loss is the training loss, the mean cross-entropy (as in ``minima.train.loop``), over
fixed training examples (the whole training split or a seeded subset whose indices are
recorded), with the model in eval mode: batch norm normalises with its trained running
statistics, and the images are not augmented.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from minima import data as datasets
from minima.hessian.data import make_batches, subset_indices
from minima.hessian.eigsh import eigsh_eigenpairs, subset_agreement
from minima.hessian.hvp import make_operator
from minima.hessian.line_search import (
    SUMMARY_COLUMNS,
    StepSearch,
    eigen_line_search,
    eigen_step_search,
)
from minima.hessian.spectrum import density, joint, top_eigen, trace
from minima.io import atomic_path, read_json, write_json
from minima.provenance import provenance
from minima.train.job import load_splits, load_trained

log = logging.getLogger("minima.hessian")

LOSS = F.cross_entropy  # the training loss (mean over the batch)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
EVAL_MODE = "eval (batch norm: trained running statistics; no augmentation)"

# Columns of every table the rules write (the empty tables of a diverged run have them too).
SPECTRUM_TABLES = {
    "eigenvalues": ("index", "eigenvalue", "residual", "which", "converged"),
    "trace": ("probe", "sample"),
    "density": ("x", "density"),
    "density_nodes": ("probe", "node", "weight"),
}
EIGENPAIRS_TABLES = {
    "eigenvalues": ("step", "which", "index", "eigenvalue", "residual", "all_converged", "loss"),
    "line_search": (
        "step",
        "which",
        "index",
        "eigenvalue",
        "gv",
        "grid",
        "span",
        "alpha",
        "loss",
        "loss_quadratic",
    ),
    "line_search_summary": ("step", "which", "index", *SUMMARY_COLUMNS[1:]),
}
SUBSET_CHECK_TABLES = {
    "table": (
        "which",
        "index",
        "eigenvalue_full",
        "eigenvalue_subset",
        "abs_diff",
        "rel_diff",
        "angle_deg",
        "principal_angle_deg",
        "converged",
    )
}


@dataclass
class AnalysisOutput:
    """What one analysis job produced.

    Attributes:
        tables: name -> tidy table (the rule's output of the same name).
        meta: what was computed and how (the JSON sidecar, without the provenance).
    """

    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any]


def empty_output(
    columns: Mapping[str, Sequence[str]], reason: str, meta: Mapping[str, Any]
) -> AnalysisOutput:
    """Empty tables with the given columns and metadata saying why nothing was computed."""
    tables = {name: pd.DataFrame({c: [] for c in cols}) for name, cols in columns.items()}
    log.warning("nothing computed: %s", reason)
    return AnalysisOutput(tables, {**meta, "status": "skipped", "reason": reason})


def write_output(
    output: AnalysisOutput,
    table_paths: Mapping[str, str | Path],
    meta_path: str | Path,
    *,
    device: torch.device,
    seconds: float,
) -> None:
    """Write each table as Parquet and the metadata (+ time taken and provenance) as JSON."""
    for name, path in table_paths.items():
        table = output.tables[name]
        table.attrs = {}  # attrs do not survive Parquet reliably; the JSON holds them
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
    write_json(meta_path, {**output.meta, "seconds": seconds, **provenance(device)})


def run_status(final_json: str | Path) -> dict[str, Any]:
    """How a run ended, from its ``final.json``: status, divergence step, steps, weights hash."""
    meta = read_json(final_json)
    return {
        "status": meta.get("status"),
        "diverged_at": meta.get("diverged_at"),
        "steps": meta.get("steps"),
        "weights_sha256": meta.get("sha256"),
    }


def incomplete_reason(status: Mapping[str, Any]) -> str | None:
    """Why a run's final model is not analysed (None if it completed)."""
    if status["status"] == "completed":
        return None
    where = f" at step {status['diverged_at']}" if status.get("diverged_at") is not None else ""
    return f"the run did not complete: status {status['status']!r}{where}"


def _sha256_indices(positions: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(positions, dtype=np.int64).tobytes()).hexdigest()


def training_batches(
    dataset: str,
    manifest: str | Path,
    split: str | Path,
    device: torch.device,
    *,
    std_scale: float | list[float],
    batch_size: int,
    examples: int | None = None,
    fraction: float | None = None,
    subset_seed: int = 0,
    positions: np.ndarray | None = None,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict[str, Any]]:
    """The fixed training examples of an analysis, as batches on ``device``, and a record.

    All of the training split by default; ``positions`` (indices into the training split)
    or a seeded subset of ``examples`` (or a ``fraction``) of it otherwise. Normalized with
    the train split's statistics times the run's ``std_scale``, never augmented.

    Raises:
        ValueError: the subset is larger than the training split (both sizes named).
    """
    parts, info = load_splits(dataset, manifest, split, device, std_scale, parts=("train",))
    train = parts["train"]
    n_train = len(train)
    subset = None
    if positions is None and (examples is not None or fraction is not None):
        try:
            positions = subset_indices(n_train, examples, fraction=fraction, seed=subset_seed)
        except ValueError as error:
            raise ValueError(f"{dataset} training split ({n_train} images): {error}") from None
    if positions is not None:
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.max() >= n_train or positions.min() < 0):
            raise ValueError(
                f"subset indices reach {positions.max()}, but the {dataset} training split "
                f"has only {n_train} images"
            )
        subset = {
            "size": int(positions.size),
            "examples": examples,
            "fraction": fraction,
            "seed": subset_seed,
            "sha256": _sha256_indices(positions),
        }
    batches = make_batches(train.x, train.y, batch_size, indices=positions, device=device)
    record = {
        "part": "train",
        "n_train": n_train,
        "n_examples": int(positions.size) if positions is not None else n_train,
        "subset": subset,
        "batch_size": batch_size,
        "mode": EVAL_MODE,
        **{k: info[k] for k in ("description", "std_scale", "split_seed", "split_sha256")},
    }
    return batches, record


def base_meta(analysis: str, weights: str | Path, status: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata every analysis output starts with: what, on which weights, which run."""
    return {"analysis": analysis, "weights": str(weights), "run": dict(status)}


# ---- spectrum (E1, E4): top eigenvalues, trace, density of a final model ----


def final_model_and_data(
    model_spec: Mapping[str, Any],
    dataset: str,
    weights: str | Path,
    *,
    manifest: str | Path,
    split: str | Path,
    std_scale: float | list[float],
    settings: Mapping[str, Any],
    hessian: Mapping[str, Any],
    device: torch.device,
) -> tuple[torch.nn.Module, list, dict[str, Any]]:
    """A trained model in eval mode and the fixed training examples an analysis runs on."""
    model = load_trained(model_spec, dataset, weights, device)
    batches, data = training_batches(
        dataset,
        manifest,
        split,
        device,
        std_scale=std_scale,
        batch_size=hessian["batch_size"],
        examples=settings["examples"],
        subset_seed=settings["subset_seed"],
    )
    return model, batches, data


def spectrum_job(
    model_spec: dict[str, Any],
    dataset: str,
    weights: str | Path,
    final_json: str | Path,
    *,
    manifest: str | Path,
    split: str | Path,
    std_scale: float | list[float],
    settings: Mapping[str, Any],
    hessian: Mapping[str, Any],
    device: torch.device,
) -> AnalysisOutput:
    """Top-k eigenvalues, Hutchinson trace and SLQ density of a trained model's Hessian.

    ``hessian.backend`` chooses the engine (native or PyHessian; ``minima.hessian.spectrum``
    says where they differ). ``trace_probes: 0`` and ``density: null`` skip those parts
    (their tables are then empty).
    """
    status = run_status(final_json)
    meta = {
        **base_meta("spectrum", weights, status),
        "backend": hessian["backend"],
        "engine": dict(hessian),
        "settings": dict(settings),
    }
    reason = incomplete_reason(status)
    if reason:
        return empty_output(SPECTRUM_TABLES, reason, meta)
    model, batches, data = final_model_and_data(
        model_spec,
        dataset,
        weights,
        manifest=manifest,
        split=split,
        std_scale=std_scale,
        settings=settings,
        hessian=hessian,
        device=device,
    )
    engine = {
        "backend": hessian["backend"],
        "dtype": DTYPES[hessian["dtype"]],
        "device": device,
        "method": hessian["hvp_method"],
        "cache_graph": hessian["cache_graph"],
        "mem_mb": hessian.get("mem_mb"),
        "seed": settings["seed"],
    }
    if (
        hessian["backend"] == "native"
        and settings["density"]
        and hessian["spectrum_engine"] == "joint"
    ):
        return _joint_spectrum_output(model, batches, data, meta, settings, hessian, engine)
    seconds = {}
    started = time.perf_counter()
    top = top_eigen(
        model,
        LOSS,
        batches,
        settings["top_k"],
        tol=hessian["eigen_tol"],
        max_iter=hessian["eigen_max_iter"],
        **engine,
    )
    seconds["top_eigen"] = time.perf_counter() - started
    tables = {name: pd.DataFrame({c: [] for c in cols}) for name, cols in SPECTRUM_TABLES.items()}
    tables["eigenvalues"] = pd.DataFrame(
        {
            "index": np.arange(top.eigenvalues.size),
            "eigenvalue": top.eigenvalues,
            "residual": top.residuals,
            "which": top.which,
            "converged": top.converged,
        }
    )
    log.info("top eigenvalues (%s): %s", top.which, top.eigenvalues)
    trace_meta = None
    if settings["trace_probes"] > 0:
        started = time.perf_counter()
        tr = trace(
            model,
            LOSS,
            batches,
            n_probes=settings["trace_probes"],
            probe_batch=hessian["probe_batch"],
            **engine,
        )
        seconds["trace"] = time.perf_counter() - started
        samples = tr.exact_part + np.asarray(tr.samples, dtype=float)
        tables["trace"] = pd.DataFrame({"probe": np.arange(tr.n_probes), "sample": samples})
        trace_meta = {"estimate": tr.estimate, "stderr": tr.stderr, "n_probes": tr.n_probes}
        log.info("trace %.6g +- %.2g (%d probes)", tr.estimate, tr.stderr, tr.n_probes)
    density_meta = None
    if settings["density"]:
        spec = settings["density"]
        started = time.perf_counter()
        dens = density(
            model,
            LOSS,
            batches,
            n_steps=spec["steps"],
            n_probes=spec["probes"],
            probe_batch=hessian["probe_batch"],
            num_bins=spec["grid"],
            sigma_squared=spec["sigma_squared"],
            margin=spec["margin"],
            **engine,
        )
        seconds["density"] = time.perf_counter() - started
        tables["density"] = pd.DataFrame({"x": dens.grid, "density": dens.density})
        tables["density_nodes"] = pd.concat(
            [
                pd.DataFrame({"probe": i, "node": nodes, "weight": w})
                for i, (nodes, w) in enumerate(zip(dens.nodes, dens.weights, strict=True))
            ],
            ignore_index=True,
        )
        density_meta = {
            **dens.settings,
            "sigma_squared_used": dens.sigma_squared,
            "integral": float(np.trapezoid(dens.density, dens.grid)),
            "moment1": dens.moment(1),
        }
    meta.update(
        {
            "status": "computed",
            "data": data,
            "top_eigenvalues": top.eigenvalues.tolist(),
            "which": top.which,
            "eigen_converged": top.converged,
            "eigen_n_hvp": top.n_hvp,
            "trace": trace_meta,
            "density": density_meta,
            "seconds_by_part": seconds,
        }
    )
    return AnalysisOutput(tables, meta)


def _joint_spectrum_output(
    model: torch.nn.Module,
    batches: list,
    data: dict[str, Any],
    meta: dict[str, Any],
    settings: Mapping[str, Any],
    hessian: Mapping[str, Any],
    engine: Mapping[str, Any],
) -> AnalysisOutput:
    """The native spectrum from one set of SLQ runs (``minima.hessian.spectrum.joint``):
    the same tables as the separate calls. Each trace sample is the exact part on the top
    eigenvectors (``trace.exact_part``) plus one probe of the deflated remainder, so the
    table's mean is the estimate, as on the separate path. The metadata adds the products
    each part used (``n_hvp``) and each estimate's error (``errors``)."""
    spec = settings["density"]
    started = time.perf_counter()
    res = joint(
        model,
        LOSS,
        batches,
        settings["top_k"],
        tol=hessian["eigen_tol"],
        max_iter=hessian["eigen_max_iter"],
        n_steps=spec["steps"],
        n_probes=spec["probes"],
        trace_probes=settings["trace_probes"],
        probe_batch=hessian["probe_batch"],
        num_bins=spec["grid"],
        sigma_squared=spec["sigma_squared"],
        margin=spec["margin"],
        dtype=engine["dtype"],
        device=engine["device"],
        method=engine["method"],
        cache_graph=engine["cache_graph"],
        mem_mb=engine["mem_mb"],
        seed=engine["seed"],
    )
    top, tr, dens = res.eigen, res.trace, res.density
    tables = {name: pd.DataFrame({c: [] for c in cols}) for name, cols in SPECTRUM_TABLES.items()}
    tables["eigenvalues"] = pd.DataFrame(
        {
            "index": np.arange(top.eigenvalues.size),
            "eigenvalue": top.eigenvalues,
            "residual": top.residuals,
            "which": top.which,
            "converged": top.converged,
        }
    )
    trace_meta = None
    if tr is not None:
        samples = tr.exact_part + np.asarray(tr.samples, dtype=float)
        tables["trace"] = pd.DataFrame({"probe": np.arange(tr.n_probes), "sample": samples})
        trace_meta = {
            "estimate": tr.estimate,
            "stderr": tr.stderr,
            "n_probes": tr.n_probes,
            "method": tr.method,
            "exact_part": tr.exact_part,
            "deflated_dim": res.details["trace_deflated_dim"],
            "plain_stderr": res.details["trace_plain_stderr"],
            "target_stderr": res.details["trace_target_stderr"],
        }
        log.info("trace %.6g +- %.2g (%d deflated probes)", tr.estimate, tr.stderr, tr.n_probes)
    tables["density"] = pd.DataFrame({"x": dens.grid, "density": dens.density})
    tables["density_nodes"] = pd.concat(
        [
            pd.DataFrame({"probe": i, "node": nodes, "weight": w})
            for i, (nodes, w) in enumerate(zip(dens.nodes, dens.weights, strict=True))
        ],
        ignore_index=True,
    )
    meta.update(
        {
            "status": "computed",
            "engine_path": "joint (one set of SLQ runs: density, Ritz pairs, deflated trace)",
            "data": data,
            "top_eigenvalues": top.eigenvalues.tolist(),
            "which": top.which,
            "eigen_converged": top.converged,
            "eigen_n_hvp": top.n_hvp,
            "eigen_from_slq": res.details["eigen_from_slq"],
            "trace": trace_meta,
            "density": {
                **dens.settings,
                "sigma_squared_used": dens.sigma_squared,
                "integral": float(np.trapezoid(dens.density, dens.grid)),
                "moment1": dens.moment(1),
            },
            "n_hvp": res.n_hvp,
            "errors": res.errors,
            "seconds_by_part": {"joint": time.perf_counter() - started},
        }
    )
    log.info("top eigenvalues (%s): %s; products %s", top.which, top.eigenvalues, res.n_hvp)
    return AnalysisOutput(tables, meta)


# ---- eigenpairs (E5): the fixed subset, LA/SA eigenpairs per checkpoint, line searches ----


def draw_subset(split: str | Path, settings: Mapping[str, Any]) -> tuple[pd.DataFrame, dict]:
    """The fixed subset of the training split E5's Hessians are taken on.

    Returns:
        A table with ``position`` (index into the training split, what the analyses use)
        and ``pool_index`` (index into the dataset's pool), and a record of how it was drawn.
    """
    train = datasets.load_split(split)["train"]
    try:
        positions = subset_indices(
            len(train),
            settings["examples"],
            fraction=settings["fraction"],
            seed=settings["subset_seed"],
        )
    except ValueError as error:
        raise ValueError(f"training split of {split} ({len(train)} images): {error}") from None
    table = pd.DataFrame({"position": positions, "pool_index": np.asarray(train)[positions]})
    record = {
        "n_train": len(train),
        "size": int(positions.size),
        "examples": settings["examples"],
        "fraction": settings["fraction"],
        "seed": settings["subset_seed"],
        "sha256": _sha256_indices(positions),
        "split_sha256": hashlib.sha256(Path(split).read_bytes()).hexdigest(),
    }
    return table, record


def read_subset(path: str | Path) -> np.ndarray:
    """Positions (indices into the training split) of a subset written by ``draw_subset``."""
    return pd.read_parquet(path)["position"].to_numpy(dtype=np.int64, copy=True)


def _eigsh_engine(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"tol": settings["tol"], "maxiter": settings["maxiter"], "ncv": settings["ncv"]}


def eigenpairs_job(
    model_spec: dict[str, Any],
    dataset: str,
    checkpoints: str | Path,
    step: int,
    final_json: str | Path,
    subset: str | Path,
    *,
    manifest: str | Path,
    split: str | Path,
    std_scale: float | list[float],
    settings: Mapping[str, Any],
    hessian: Mapping[str, Any],
    device: torch.device,
) -> AnalysisOutput:
    """LA(la) and SA(sa) Hessian eigenpairs of one checkpoint on the fixed subset, by eigsh,
    and the loss along ``theta - alpha (g.v) v`` for every pair (exact and quadratic model):
    on the linear grids of ``line_search.spans`` (the curves drawn) and on the log grid of
    ``line_search.search``, from which ``alpha*`` is refined (``minima.hessian.line_search``;
    ``bounded`` where it sits at the search's largest ``|alpha|``).

    eigsh runs over a ``settings.dtype`` (float64) HVP operator. Where ARPACK does not
    converge, the pairs it did converge are kept, with their residuals, and the metadata
    says so (``converged``, ``messages``) instead of the job failing.

    Raises:
        FileNotFoundError: a run that completed wrote no checkpoint at ``step``.
        ValueError: the checkpoint does not fit the model (the keys are named).
    """
    status = run_status(final_json)
    ls = settings["line_search"]
    search = step_search(ls["search"])
    path = Path(checkpoints) / f"step{step}.safetensors"
    meta = {
        **base_meta("eigenpairs", path, status),
        "step": step,
        "backend": "native (scipy eigsh over minima.hessian.HessianOperator)",
        "engine": dict(hessian),
        "settings": dict(settings),
    }
    if not path.exists():
        if status["status"] != "completed":
            reason = f"no checkpoint at step {step}: {incomplete_reason(status)}"
            return empty_output(EIGENPAIRS_TABLES, reason, meta)
        written = sorted(p.name for p in Path(checkpoints).glob("step*.safetensors"))
        raise FileNotFoundError(
            f"{path}: the run completed after {status['steps']} steps but wrote no checkpoint "
            f"at step {step} (it wrote {written}); analyses.eigenpairs.steps may name only "
            "steps the run checkpoints"
        )
    model = load_trained(model_spec, dataset, path, device)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        return empty_output(EIGENPAIRS_TABLES, f"step {step}: weights are not finite", meta)
    batches, data = training_batches(
        dataset,
        manifest,
        split,
        device,
        std_scale=std_scale,
        batch_size=hessian["batch_size"],
        positions=read_subset(subset),
    )
    op = make_operator(
        model,
        LOSS,
        batches,
        dtype=DTYPES[settings["dtype"]],
        device=device,
        method=hessian["hvp_method"],
        cache_graph=hessian["cache_graph"],
        mem_mb=hessian.get("mem_mb"),
    )
    loss0, grad = op.gradient()
    loss0 = float(loss0)
    eig_rows, searches, summaries, outcome = [], [], [], {}
    for which, k in (("LA", settings["la"]), ("SA", settings["sa"])):
        if k == 0:
            continue
        started = time.perf_counter()
        res = eigsh_eigenpairs(op, k, which, seed=settings["seed"], **_eigsh_engine(settings))
        outcome[which] = {
            "k": k,
            "n_converged": int(res.eigenvalues.size),
            "converged": res.converged,
            "message": res.message,
            "max_residual": float(res.residuals.max()) if res.residuals.size else None,
            "seconds": time.perf_counter() - started,
        }
        log.info("step %d %s(%d): %s", step, which, k, res.eigenvalues)
        eig_rows.append(
            pd.DataFrame(
                {
                    "step": step,
                    "which": which,
                    "index": np.arange(res.eigenvalues.size),
                    "eigenvalue": res.eigenvalues,
                    "residual": res.residuals,
                    "all_converged": res.converged,
                    "loss": loss0,
                }
            )
        )
        if res.eigenvalues.size == 0:
            continue
        curves = []
        for span in ls["spans"]:
            alphas = np.linspace(-span, span, ls["points"])
            curve = eigen_line_search(
                op, res.eigenvalues, res.eigenvectors, alphas, chunk_size=hessian["chunk_size"]
            )
            curves.append(curve.assign(grid="linear", span=span))
        curve, summary = eigen_step_search(
            op, res.eigenvalues, res.eigenvectors, search, chunk_size=hessian["chunk_size"]
        )
        curves.append(curve.assign(grid="log", span=search.max_alpha))
        curve = pd.concat(curves, ignore_index=True)
        log.info(
            "step %d %s: alpha* %s (%d bounded by the search)",
            step,
            which,
            summary["alpha_star"].to_numpy(),
            int(summary["bounded"].sum()),
        )
        for table, out in ((curve, searches), (summary, summaries)):
            out.append(table.rename(columns={"pair": "index"}).assign(step=step, which=which))
    tables = {
        "eigenvalues": _concat(eig_rows, EIGENPAIRS_TABLES["eigenvalues"]),
        "line_search": _concat(searches, EIGENPAIRS_TABLES["line_search"]),
        "line_search_summary": _concat(summaries, EIGENPAIRS_TABLES["line_search_summary"]),
    }
    meta.update(
        {
            "status": "computed",
            "data": data,
            "n_params": op.n_params,
            "loss": loss0,
            "grad_norm": float(grad.norm()),
            "eigsh": outcome,
            "converged": all(o["converged"] for o in outcome.values()),
            "messages": [o["message"] for o in outcome.values() if o["message"]],
            "n_hvp": op.n_hvp,
            "step_search": {
                "grid": "log10 |alpha| uniform on both signs, and 0; then scipy minimize_scalar "
                "(bounded) inside the best grid point's bracket",
                "min_alpha": search.min_alpha,
                "max_alpha": search.max_alpha,
                "grid_points": int(search.grid().size),
                "rtol": search.rtol,
                "n_bounded": int(tables["line_search_summary"]["bounded"].sum()),
            },
        }
    )
    return AnalysisOutput(tables, meta)


def step_search(section: Mapping[str, Any]) -> StepSearch:
    """The alpha* search of ``analyses.eigenpairs.line_search.search``; ValueError naming the
    key where its bounds are inconsistent."""
    try:
        return StepSearch(
            min_alpha=float(section["min"]),
            max_alpha=float(section["max"]),
            per_decade=int(section["per_decade"]),
            rtol=float(section["rtol"]),
        )
    except ValueError as error:
        raise ValueError(f"analyses.eigenpairs.line_search.search: {error}") from None


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(frames, ignore_index=True)[list(columns)]


def subset_check_job(
    model_spec: dict[str, Any],
    dataset: str,
    weights: str | Path,
    final_json: str | Path,
    subset: str | Path,
    *,
    manifest: str | Path,
    split: str | Path,
    std_scale: float | list[float],
    settings: Mapping[str, Any],
    hessian: Mapping[str, Any],
    device: torch.device,
) -> AnalysisOutput:
    """E5's check, once at the final model: do the subset's LA(k)/SA(k) eigenpairs agree
    with the whole training split's? (eigenvalue differences and eigenvector angles,
    ``minima.hessian.eigsh.subset_agreement``)."""
    status = run_status(final_json)
    meta = {
        **base_meta("subset_check", weights, status),
        "backend": "native (scipy eigsh over minima.hessian.HessianOperator)",
        "engine": dict(hessian),
        "settings": dict(settings),
    }
    reason = incomplete_reason(status)
    if reason:
        return empty_output(SUBSET_CHECK_TABLES, reason, meta)
    model = load_trained(model_spec, dataset, weights, device)
    common = {"std_scale": std_scale, "batch_size": hessian["batch_size"]}
    full, full_data = training_batches(dataset, manifest, split, device, **common)
    part, part_data = training_batches(
        dataset, manifest, split, device, positions=read_subset(subset), **common
    )
    ops = [
        make_operator(
            model,
            LOSS,
            batches,
            dtype=DTYPES[settings["dtype"]],
            device=device,
            method=hessian["hvp_method"],
            cache_graph=hessian["cache_graph"],
            mem_mb=hessian.get("mem_mb"),
        )
        for batches in (full, part)
    ]
    k = settings["subset_check"]["k"]
    table = subset_agreement(*ops, k, tol=settings["tol"], seed=settings["seed"])
    meta.update(
        {
            "status": "computed",
            "k": k,
            "data_full": full_data,
            "data_subset": part_data,
            "converged": bool(table["converged"].all()) if len(table) else False,
            "max_rel_diff": {w: float(g["rel_diff"].max()) for w, g in table.groupby("which")},
            "max_angle_deg": {w: float(g["angle_deg"].max()) for w, g in table.groupby("which")},
            "n_hvp": table.attrs.get("n_hvp", {}),
        }
    )
    return AnalysisOutput({"table": table}, meta)


def collect_steps(paths: Sequence[str | Path]) -> pd.DataFrame:
    """One table from the per-checkpoint tables of a run, sorted by step (then which, index)."""
    frames = [pd.read_parquet(p) for p in paths]
    kept = [f for f in frames if len(f)] or frames[:1]
    table = pd.concat(kept, ignore_index=True)
    keys = [c for c in ("step", "which", "index", "span", "alpha") if c in table.columns]
    return table.sort_values(keys, kind="stable", ignore_index=True)
