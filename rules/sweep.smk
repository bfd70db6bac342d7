# Sweep stage: hyper-parameter searches (E1's learning-rate sweep, E2's grid search). Each point
# of a run's grid is trained, per seed of the sweep, from the experiment's shared initial
# weights; `sweep_summary` reduces the points to a table and the winner of each run. What is
# swept is config: experiments.<exp>.sweeps.<name> (minima.sweeps). Targets of their own:
#   snakemake results/sweeps/e2/grid/best.json
# and, with `feed: true`, the winner's values train the main run.

SWEEP_DIR = "results/sweeps/{exp}/{sweep}/{model}/{run}/p{point}/seed{seed}"


rule sweep_train:
    """Train one point of a sweep at one seed (weights and checkpoints are not kept)."""
    input:
        unpack(sweep_point_inputs),
    output:
        weights=temp(f"{SWEEP_DIR}/final.safetensors"),
        sidecar=f"{SWEEP_DIR}/final.json",
        metrics=f"{SWEEP_DIR}/metrics.parquet",
        checkpoints=temp(directory(f"{SWEEP_DIR}/checkpoints")),
    log:
        f"logs/sweeps/{SWEEP_DIR.removeprefix('results/sweeps/')}.log",
    benchmark:
        f"results/benchmarks/sweep_train/{SWEEP_DIR.removeprefix('results/sweeps/')}.tsv"
    group:
        sweep_group
    conda:
        "../envs/train.yaml"
    threads: resource("train", "threads")
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        gpu_slots=resource("train", "gpu_slots"),
    params:
        run=resolved_point,
        work_dir=f"{SWEEP_DIR}/.partial",
    script:
        "../scripts/train.py"


rule sweep_summary:
    """A sweep's points (mean +- std over seeds of the final numbers) and each run's winner."""
    input:
        unpack(sweep_summary_inputs),
    output:
        summary="results/sweeps/{exp}/{sweep}/summary.parquet",
        best="results/sweeps/{exp}/{sweep}/best.json",
    log:
        "logs/sweeps/{exp}/{sweep}/summary.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=resource("paper", "mem_mb"),
        runtime=resource("paper", "runtime"),
        gpu=0,
    params:
        select=sweep_select,
    script:
        "../scripts/sweep_summary.py"
