# Config validation, wildcard constraints, and every input/target function of the workflow.
import re
import sys

from snakemake.logging import logger
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)

from minima import plan  # noqa: E402  (importable only after the path insert above)
from minima import runs  # noqa: E402
from minima import sweeps  # noqa: E402
from minima.findings.claims import check_claims  # noqa: E402

validate(config, "../schemas/config.schema.yaml")


def _visible_gpus():
    """GPUs torch sees here, for a `device: cuda:N` (None for a dry run, which may plan for
    another machine)."""
    if workflow.output_settings.dryrun or ":" not in str(config["device"]):
        return None
    import torch

    return torch.cuda.device_count()


try:
    plan.check_device(config["device"], _visible_gpus())
    plan.check_plan(config)
    # minima.findings.claims: every claim names what its experiment makes
    check_claims(config)
except plan.ConfigError as error:
    raise ValueError(f"config: {error}") from None
for _run, _reason in plan.skipped_runs(config).items():
    logger.warning(f"skipping run {_run}: {_reason}")


def _alternatives(names):
    return "|".join(re.escape(str(name)) for name in sorted(set(names), key=str))


_ALL_KEYS = plan.run_keys(config, config["experiments"], include_skipped=True)


wildcard_constraints:
    exp=_alternatives(config["experiments"]),
    model=_alternatives(key.model for key in _ALL_KEYS),
    run=_alternatives(key.run for key in _ALL_KEYS),
    run_a=_alternatives(key.run for key in _ALL_KEYS),
    run_b=_alternatives(key.run for key in _ALL_KEYS),
    measure="cka|cka_unbiased|svcca|pwcca|opd",
    sweep=_alternatives(
        [s for exp in config["experiments"] for s in sweeps.sweeps(config, exp)]
    )
    or "(?!)",
    point=r"\d+",
    seed=r"\d+",
    dataset=r"mnist|mnist10k|cifar10|cifar10_synthetic",


RUN_DIR = "results/runs/{exp}/{model}/{run}/seed{seed}"


def run_key(wildcards):
    """The RunKey named by a job's wildcards."""
    return plan.RunKey(
        wildcards.exp, wildcards.model, wildcards.run, int(wildcards.seed)
    )


def run_path(key, name):
    """A file of one run's folder."""
    return f"results/runs/{key.path}/{name}"


def manifest_path(dataset):
    return f"results/data/{dataset}/manifest.json"


def split_path(exp):
    entry = config["experiments"][exp]
    return f"results/data/{entry['dataset']}/splits/{exp}_seed{entry['data']['split_seed']}.npz"


EMBEDDED_MNIST10K = f"{workflow.basedir}/resources/mnist10k"


def download_inputs(wildcards):
    """The embedded sample's files for mnist10k (so edits to them rerun); nothing otherwise."""
    if wildcards.dataset != "mnist10k":
        return []
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "MD5SUMS")
    return [f"{EMBEDDED_MNIST10K}/{name}" for name in names]


def embedded_dir(wildcards):
    return EMBEDDED_MNIST10K if wildcards.dataset == "mnist10k" else None


def dataset_mirrors(wildcards):
    """Extra download locations of a dataset (config `mirrors`)."""
    return config["mirrors"].get(wildcards.dataset, [])


def experiment_data(wildcards):
    """The experiment's data section (sizes and seed of its split), keys sorted."""
    return runs.canonical(config["experiments"][wildcards.exp]["data"])


def experiment_dataset(wildcards):
    return config["experiments"][wildcards.exp]["dataset"]


def split_inputs(wildcards):
    return {"manifest": manifest_path(wildcards.dataset)}


def init_inputs(wildcards):
    exp = wildcards.exp
    return {"manifest": manifest_path(config["experiments"][exp]["dataset"])}


def model_spec(wildcards):
    return runs.canonical(plan.model_spec(config, wildcards.exp, wildcards.model))


def train_inputs(wildcards):
    """Data, split and starting weights of a run (another run's final weights if init_from)."""
    key = run_key(wildcards)
    source = plan.init_source(config, key)
    if plan.run_settings(config, key.experiment, key.run)["pretrained"]:
        init = f"results/runs/{key.experiment}/{key.model}/init/pretrained_seed{key.seed}.safetensors"
    elif source is None:
        init = (
            f"results/runs/{key.experiment}/{key.model}/init/seed{key.seed}.safetensors"
        )
    else:
        init = run_path(source, "final.safetensors")
    dataset = config["experiments"][key.experiment]["dataset"]
    inputs = {
        "manifest": manifest_path(dataset),
        "split": split_path(key.experiment),
        "init": init,
    }
    fed = sweeps.fed_sweep(config, key.experiment, key.run)
    if fed is not None:  # `feed: true`: the run trains with its sweep's winning values
        inputs["sweep_best"] = f"results/sweeps/{key.experiment}/{fed}/best.json"
    return inputs


def sweep_key(wildcards):
    return sweeps.SweepKey(
        wildcards.exp,
        wildcards.sweep,
        wildcards.model,
        wildcards.run,
        int(wildcards.point),
        int(wildcards.seed),
    )


def sweep_point_inputs(wildcards):
    """Data, split and the seed's shared initial weights of one sweep point."""
    key = sweep_key(wildcards)
    return {
        "manifest": manifest_path(config["experiments"][key.experiment]["dataset"]),
        "split": split_path(key.experiment),
        "init": f"results/runs/{key.experiment}/{key.model}/init/seed{key.seed}.safetensors",
    }


def resolved_point(wildcards):
    """A sweep point's result-changing settings (see resolved_run)."""
    return runs.result_settings(sweeps.resolve_point(config, sweep_key(wildcards)))


def sweep_group(wildcards):
    """Job group `sweep_<exp>`: on a cluster many short points share one SLURM job."""
    return f"sweep_{wildcards.exp}"


def sweep_summary_inputs(wildcards):
    keys = sweeps.sweep_keys(config, wildcards.exp, wildcards.sweep)
    return {
        "finals": [f"results/sweeps/{key.path}/final.json" for key in keys],
        "metrics": [f"results/sweeps/{key.path}/metrics.parquet" for key in keys],
    }


def sweep_select(wildcards):
    return sweeps.section(config, wildcards.exp, wildcards.sweep)["select"]


def sweep_targets(experiments):
    """Summary and winners of every sweep marked `build: true` (or fed into a run)."""
    return [
        f"results/sweeps/{exp}/{name}/{file}"
        for exp in experiments
        for name, sec in sweeps.sweeps(config, exp).items()
        if sec["build"] or sec["feed"]
        for file in ("summary.parquet", "best.json")
    ]


def pretrained_inputs(wildcards):
    """torchvision's ImageNet state dict named by config `pretrained_weights`."""
    return {"source": config["pretrained_weights"]}


def similarity_settings(wildcards):
    return runs.canonical(
        config["experiments"][wildcards.exp]["analyses"]["similarity"]
    )


def filter_layer(wildcards):
    return similarity_settings(wildcards)["filter_layer"]


def similarity_inputs(wildcards):
    """The two compared runs' final weights, and the experiment's data and split."""
    exp = wildcards.exp
    dataset = config["experiments"][exp]["dataset"]
    run_dir = f"results/runs/{exp}/{wildcards.model}"
    return {
        "weights_a": f"{run_dir}/{wildcards.run_a}/seed{wildcards.seed}/final.safetensors",
        "weights_b": f"{run_dir}/{wildcards.run_b}/seed{wildcards.seed}/final.safetensors",
        "manifest": manifest_path(dataset),
        "split": split_path(exp),
    }


def similarity_targets(experiments):
    """Tables and heatmaps of every compared pair and measure, filter images of every run."""
    targets = []
    for exp in experiments:
        entry = config["experiments"][exp]
        section = entry.get("analyses", {}).get("similarity")
        if not section:
            continue
        for spec in entry["models"]:
            model = plan.model_label(spec)
            for seed in entry["seeds"]:
                for run_a, run_b in plan.similarity_pairs(config, exp):
                    pair = f"{run_a}__{run_b}"
                    for measure in section["measures"]:
                        targets.append(
                            f"results/analysis/similarity/{exp}/{model}/seed{seed}/{pair}/{measure}.parquet"
                        )
                        stem = f"results/figures/{exp}/similarity/{model}/seed{seed}/{pair}_{measure}"
                        targets += [f"{stem}.pdf", f"{stem}.png"]
                for run in plan.similarity_runs(config, exp):
                    stem = f"results/figures/{exp}/filters/{model}/{run}_seed{seed}"
                    targets += [f"{stem}.pdf", f"{stem}.png"]
    return targets


def resolved_run(wildcards):
    """The run's result-changing settings, keys sorted: as a param, a change to them reruns
    exactly this run; key order and minima.runs.NON_RESULT_SETTINGS rerun nothing."""
    return runs.result_settings(plan.resolve_run(config, run_key(wildcards)))


def run_outputs(keys):
    names = ("final.safetensors", "final.json", "metrics.parquet")
    return [run_path(key, name) for key in keys for name in names]


def all_targets():
    """Default target: every run and analysis of the selected experiments, the paper's
    figures and tables (and its PDF if paper.build)."""
    experiments = plan.selected_experiments(config)
    return (
        run_outputs(plan.run_keys(config))
        + sweep_targets(experiments)
        + similarity_targets(experiments)
        + curvature_targets(experiments)
        + paper_targets()
    )


def train_group(wildcards):
    """Job group of a training run: one per experiment (`train_<exp>`); none if cross-initialized.

    Only cluster execution uses it: `--group-components train_e2=10` packs ten E2 runs into one
    SLURM job that trains them one after another (profiles/slurm, docs/cluster.md), so short runs
    do not become hundreds of tiny jobs. A run started from another run's weights stays out:
    grouped, it would always share a job with its source, their time limits added up.
    """
    if plan.init_source(config, run_key(wildcards)) is not None:
        return None
    return f"train_{wildcards.exp}"


# ---- Paper: figures, tables, generated LaTeX sections and the PDF (rules/paper.smk) ----
from minima.report import kinds as paper_kinds  # noqa: E402
from minima.report import spec as paper_spec  # noqa: E402

try:
    paper_spec.check_paper(config)
except plan.ConfigError as error:
    raise ValueError(f"config: {error}") from None

PAPER = paper_spec.paper_section(config)
# One color per run label across every figure (fixed map, fallbacks, paper.colors).
PAPER_COLORS = paper_spec.run_colors(config)
PAPER_TEMPLATE = f"{workflow.basedir}/paper/paper.tex"


def _one_of(names):
    """Wildcard regex matching exactly these names (none: a regex that never matches)."""
    return _alternatives(names) if names else "(?!)"


def paper_experiments():
    """Experiments in the paper, in order (config paper.experiments, else the built ones)."""
    return paper_spec.paper_experiments(config)


def _paper_run_files(exp, name, runs=None, models=None):
    """A file of each (not skipped) run of `exp`, optionally only the named runs/models."""
    return [
        run_path(key, name)
        for key in plan.run_keys(config, [exp])
        if (runs is None or key.run in runs) and (models is None or key.model in models)
    ]


def figure_spec(wildcards):
    """A figure's config entry (experiments.<exp>.figures.<figure>), runs in config order."""
    return paper_spec.entry(config, wildcards.exp, "figures", wildcards.figure)


def figure_inputs(wildcards):
    """The metrics tables of exactly the runs a training figure draws."""
    spec = figure_spec(wildcards)
    files = _paper_run_files(
        wildcards.exp, "metrics.parquet", spec["runs"], spec["models"]
    )
    return {"metrics": files}


def figure_caption(wildcards):
    return paper_spec.default_caption(figure_spec(wildcards))


def table_spec(wildcards):
    """A table's config entry (experiments.<exp>.tables.<table>), runs in config order."""
    return paper_spec.entry(config, wildcards.exp, "tables", wildcards.table)


def table_inputs(wildcards):
    """Metrics and final.json of exactly the runs a table shows."""
    spec = table_spec(wildcards)
    runs, models = spec["runs"], spec["models"]
    return {
        "metrics": _paper_run_files(wildcards.exp, "metrics.parquet", runs, models),
        "finals": _paper_run_files(wildcards.exp, "final.json", runs, models),
    }


def table_caption(wildcards):
    return paper_spec.default_caption(table_spec(wildcards))


def analysis_figure_spec(wildcards):
    """An analysis figure's entry, completed by its kind from the rest of the config."""
    spec = figure_spec(wildcards)
    return paper_kinds.figure_kind(spec["kind"]).job_spec(config, wildcards.exp, spec)


def analysis_table_spec(wildcards):
    spec = table_spec(wildcards)
    return paper_kinds.table_kind(spec["kind"]).job_spec(config, wildcards.exp, spec)


def analysis_figure_inputs(wildcards):
    """The result files an analysis figure is drawn from (its kind's `inputs`)."""
    spec = figure_spec(wildcards)
    return paper_kinds.figure_kind(spec["kind"]).inputs(config, wildcards.exp, spec)


def analysis_table_inputs(wildcards):
    """The result files an analysis table is built from (its kind's `inputs`)."""
    spec = table_spec(wildcards)
    return paper_kinds.table_kind(spec["kind"]).inputs(config, wildcards.exp, spec)


def figure_files(exp):
    """PDF and PNG of every figure listed for `exp` (any kind)."""
    return [
        f"results/figures/{exp}/{name}.{ext}"
        for name in paper_spec.figures(config, exp)
        for ext in ("pdf", "png")
    ]


def table_files(exp):
    return [
        f"results/tables/{exp}/{name}.tex" for name in paper_spec.tables(config, exp)
    ]


def paper_figures(exp):
    """Figures of an experiment's paper section, in config order (every kind)."""
    return [
        {
            "name": name,
            "path": f"results/figures/{exp}/{name}.pdf",
            "caption": paper_spec.default_caption(spec),
            "bands": spec["kind"] in paper_spec.TRAINING_FIGURE_KINDS,
        }
        for name, spec in paper_spec.figures(config, exp).items()
    ]


def paper_tables(exp):
    """Tables of an experiment's paper section, in config order (every kind)."""
    return [
        {
            "name": name,
            "path": f"results/tables/{exp}/{name}.tex",
            "caption": paper_spec.default_caption(spec),
        }
        for name, spec in paper_spec.tables(config, exp).items()
    ]


def section_figures(wildcards):
    return paper_figures(wildcards.exp)


def section_tables(wildcards):
    return paper_tables(wildcards.exp)


def section_inputs(wildcards):
    """The final.json of every run of the experiment, and of every point of its sweeps that
    rule all or the paper builds (what-was-run facts)."""
    exp = wildcards.exp
    shown = {
        entry["sweep"]
        for section in (paper_spec.figures, paper_spec.tables)
        for entry in section(config, exp).values()
        if "sweep" in entry
    }
    names = [
        name
        for name, sec in sweeps.sweeps(config, exp).items()
        if sec["build"] or sec["feed"] or name in shown
    ]
    return {
        "finals": _paper_run_files(exp, "final.json"),
        "sweep_finals": [
            f"results/sweeps/{key.path}/final.json"
            for name in names
            for key in sweeps.sweep_keys(config, exp, name)
        ],
    }


def section_skipped(wildcards):
    """Runs of the experiment that are not made here, and why (said in the paper)."""
    entry = config["experiments"][wildcards.exp]
    reasons = {
        run: plan.skip_reason(config, wildcards.exp, run) for run in entry["runs"]
    }
    return {run: reason for run, reason in reasons.items() if reason}


def experiment_title(wildcards):
    return config["experiments"][wildcards.exp].get("title", wildcards.exp)


def paper_inputs(wildcards):
    """Everything the PDF shows: the generated sections, every figure and table."""
    exps = paper_experiments()
    return {
        "template": PAPER_TEMPLATE,
        "overview": "results/paper/sections/what_was_run.tex",
        "sections": [f"results/paper/sections/{exp}.tex" for exp in exps],
        "figures": [entry["path"] for exp in exps for entry in paper_figures(exp)],
        "tables": [entry["path"] for exp in exps for entry in paper_tables(exp)],
    }


def paper_targets():
    """Figures and tables of the paper's experiments; the PDF too if paper.build is true."""
    targets = [
        f for exp in paper_experiments() for f in figure_files(exp) + table_files(exp)
    ]
    if PAPER["build"]:
        targets.append("results/paper/paper.pdf")
    return targets


# ---- Curvature analyses: spectrum, landscape, sharpness, eigenpairs (rules/hessian.smk) ----


def curvature_settings(kind, keys=None, drop=()):
    """Params function: one run's analyses.<kind> settings (minima.plan.analysis_settings),
    only `keys` (or all but `drop`), so editing another key does not rerun the job."""

    def settings(wildcards):
        full = plan.analysis_settings(config, wildcards.exp, kind, wildcards.run)
        names = keys if keys is not None else [k for k in full if k not in drop]
        return runs.canonical({name: full[name] for name in names})

    return settings


def hessian_engine(*keys):
    """Params value: the named keys of config `hessian` (only those the rule uses), without
    the memory/speed ones (runs.NON_RESULT_SETTINGS): the script adds them back."""
    return runs.result_hessian(config, keys)


def run_std_scale(wildcards):
    """The run's normalisation std_scale: an analysis sees the inputs the run trained on."""
    return plan.run_settings(config, wildcards.exp, wildcards.run)["data"]["std_scale"]


def final_model_inputs(wildcards):
    """A run's final weights and final.json (its status), and the experiment's data."""
    key = run_key(wildcards)
    return {
        "weights": run_path(key, "final.safetensors"),
        "final": run_path(key, "final.json"),
        "manifest": manifest_path(config["experiments"][key.experiment]["dataset"]),
        "split": split_path(key.experiment),
    }


def eigenpairs_split(wildcards):
    return split_path(wildcards.exp)


def _eigenpairs_dir(key):
    return f"results/analysis/eigenpairs/{key.path}"


def eigenpairs_inputs(wildcards):
    """A run's checkpoints folder, final.json, the fixed subset and the experiment's data."""
    key = run_key(wildcards)
    inputs = final_model_inputs(wildcards)
    del inputs["weights"]
    return {
        **inputs,
        "checkpoints": run_path(key, "checkpoints"),
        "subset": f"{_eigenpairs_dir(key)}/subset.parquet",
    }


def subset_check_inputs(wildcards):
    key = run_key(wildcards)
    return {
        **final_model_inputs(wildcards),
        "subset": f"{_eigenpairs_dir(key)}/subset.parquet",
    }


def eigenpairs_collect_inputs(wildcards):
    """The per-checkpoint tables of every analysed step of a run."""
    key = run_key(wildcards)
    steps = plan.eigenpair_steps(config, key.experiment, key.run)
    return {
        name: [f"{_eigenpairs_dir(key)}/step{step}/{name}.parquet" for step in steps]
        for name in ("eigenvalues", "line_search", "line_search_summary")
    }


CURVATURE_FILES = {
    "spectrum": ("eigenvalues.parquet", "spectrum.json"),
    "landscape": ("landscape.parquet", "landscape.json"),
    "sharpness": ("sharpness.parquet", "sharpness.json"),
    "eigenpairs": (
        "eigenvalues.parquet",
        "line_search.parquet",
        "line_search_summary.parquet",
        "subset_check.parquet",
    ),
}


def curvature_targets(experiments):
    """The curvature analyses of every analysed (not skipped) run of `experiments`."""
    targets = []
    for exp in experiments:
        for kind, names in CURVATURE_FILES.items():
            runs = set(plan.analysis_runs(config, exp, kind))
            for key in plan.run_keys(config, [exp]):
                if key.run in runs:
                    targets += [
                        f"results/analysis/{kind}/{key.path}/{n}" for n in names
                    ]
    return targets


# ---- Findings (rules/findings.smk): which claims, runs and tables each experiment's findings read ----
from minima.findings import claims as findings_claims  # noqa: E402
from minima.findings import quantities as findings_quantities  # noqa: E402
from minima.report.runinfo import STAND_INS as _STAND_INS  # noqa: E402

FINDINGS_DIR = "results/findings/{exp}"
# Analysis tables the findings may read: (analysis, file stem).
FINDINGS_TABLES = (
    ("spectrum", "eigenvalues"),
    ("spectrum", "trace"),
    ("landscape", "landscape"),
    ("sharpness", "sharpness"),
    ("eigenpairs", "eigenvalues"),
    ("eigenpairs", "line_search"),
    ("eigenpairs", "line_search_summary"),
    ("eigenpairs", "subset_check"),
)


def findings_experiments():
    """Experiments of the paper (or the build) that state claims."""
    return [
        exp for exp in paper_experiments() if findings_claims.claim_entries(config, exp)
    ]


def findings_runs(exp):
    """Runs the findings read: those the claims name and those a curvature analysis covers
    (the correlation's points), in config order."""
    named = {
        run
        for claim in findings_claims.parse_claims(config, exp)
        for run in claim.named_runs()
    }
    for analysis in ("spectrum", "landscape", "sharpness"):
        if plan.analysis_section(config, exp, analysis) is not None:
            named |= set(plan.analysis_runs(config, exp, analysis))
    return [run for run in config["experiments"][exp]["runs"] if run in named]


def findings_inputs(wildcards):
    """Metrics and final.json of each read run (not skipped), and each analysis table of
    the experiment that a claim or the correlation may read."""
    exp = wildcards.exp
    runs = set(findings_runs(exp))
    keys = [k for k in plan.run_keys(config, [exp]) if k.run in runs]
    inputs = {
        "metrics": [run_path(k, "metrics.parquet") for k in keys],
        "finals": [run_path(k, "final.json") for k in keys],
    }
    for analysis, stem in FINDINGS_TABLES:
        if plan.analysis_section(config, exp, analysis) is None:
            continue
        covered = set(plan.analysis_runs(config, exp, analysis))
        inputs[f"{analysis}__{stem}"] = [
            f"results/analysis/{analysis}/{k.path}/{stem}.parquet"
            for k in keys
            if k.run in covered
        ]
    inputs["tables"] = findings_table_paths(exp)
    return inputs


def findings_table_paths(exp):
    """The experiment's shared tables (lr sweep summary, similarity) its claims read."""
    paths = []
    for claim in findings_claims.parse_claims(config, exp):
        if findings_quantities.is_table_quantity(claim.quantity):
            quantity = findings_quantities.TABLE_QUANTITIES[claim.quantity]
            paths += quantity.paths(config, exp, claim.quantity_spec)
    return [f"results/{p}.parquet" for p in dict.fromkeys(paths)]


def findings_init(wildcards):
    """Run -> where its initial weights come from (paired comparisons share them)."""
    out = {}
    for run in config["experiments"][wildcards.exp]["runs"]:
        settings = plan.run_settings(config, wildcards.exp, run)
        source = config["experiments"][wildcards.exp]["runs"][run].get("init_from")
        out[run] = (
            f"from:{source}"
            if source
            else ("pretrained" if settings["pretrained"] else "seed")
        )
    return out


def findings_stand_in(wildcards):
    dataset = config["experiments"][wildcards.exp]["dataset"]
    return _STAND_INS.get(dataset)


def findings_not_testable(wildcards):
    entry = config["experiments"][wildcards.exp].get("not_testable") or {}
    return [{"id": cid, "needs": needs} for cid, needs in entry.items()]


def findings_targets():
    out = []
    for exp in findings_experiments():
        out += [
            f"results/findings/{exp}/verdicts.json",
            f"results/paper/sections/findings_{exp}.tex",
        ]
    if out:
        out.append("results/paper/sections/findings_glance.tex")
    return out
