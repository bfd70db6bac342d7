# Training stage: one shared initialisation per (experiment, model, seed), then one job per
# (experiment, model, run, seed). Cross-initialized runs (init_from) start from another run's
# final weights, which orders them after it in the DAG.


rule init_weights:
    """Initial weights of one seed, shared by every run (optimizer) of that seed."""
    input:
        unpack(init_inputs),
    output:
        weights="results/runs/{exp}/{model}/init/seed{seed}.safetensors",
        sidecar="results/runs/{exp}/{model}/init/seed{seed}.json",
    log:
        "logs/train/{exp}/{model}/init_seed{seed}.log",
    group:
        PREP_GROUP
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        model=model_spec,
        dataset=experiment_dataset,
    script:
        "../scripts/init_weights.py"


rule train:
    """Train one run; resumable (rerun a killed job and it continues from its last save).
    One live job per run: a second one refuses, naming the holder in {RUN_DIR}/.partial.lock.
    """
    input:
        unpack(train_inputs),
    output:
        weights=f"{RUN_DIR}/final.safetensors",
        sidecar=f"{RUN_DIR}/final.json",
        metrics=f"{RUN_DIR}/metrics.parquet",
        steps=f"{RUN_DIR}/steps.parquet",
        checkpoints=directory(f"{RUN_DIR}/checkpoints"),
    log:
        f"logs/train/{RUN_DIR.removeprefix('results/runs/')}.log",
    benchmark:
        f"results/benchmarks/train/{RUN_DIR.removeprefix('results/runs/')}.tsv"
    group:
        train_group
    conda:
        "../envs/train.yaml"
    threads: resource("train", "threads")
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        gpu_slots=resource("train", "gpu_slots"),
    params:
        run=resolved_run,
        work_dir=f"{RUN_DIR}/.partial",
    script:
        "../scripts/train.py"


rule pretrained_init:
    """ImageNet-pretrained ResNet18 weights with a fresh, seeded head (E3's pretrained runs)."""
    input:
        unpack(pretrained_inputs),
    output:
        weights="results/runs/{exp}/{model}/init/pretrained_seed{seed}.safetensors",
        sidecar="results/runs/{exp}/{model}/init/pretrained_seed{seed}.json",
    log:
        "logs/train/{exp}/{model}/pretrained_seed{seed}.log",
    group:
        PREP_GROUP
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        model=model_spec,
        dataset=experiment_dataset,
    script:
        "../scripts/pretrained_init.py"
