# Similarity stage (E3): trained networks compared layer by layer on the same test images, one
# job per pair of runs and measure; heatmaps of each table; filter images of each run.

SIMILARITY_DIR = "results/analysis/similarity/{exp}/{model}/seed{seed}/{run_a}__{run_b}"
SIMILARITY_FIG = (
    "results/figures/{exp}/similarity/{model}/seed{seed}/{run_a}__{run_b}_{measure}"
)


rule similarity:
    """Layer x layer similarity (linear CKA streamed over all test images; SVCCA, PWCCA and
    Procrustes on a pooled subset) of two runs' final networks."""
    input:
        unpack(similarity_inputs),
    output:
        table=f"{SIMILARITY_DIR}/{{measure}}.parquet",
        meta=f"{SIMILARITY_DIR}/{{measure}}.json",
    log:
        "logs/similarity/{exp}/{model}/seed{seed}/{run_a}__{run_b}_{measure}.log",
    benchmark:
        "results/benchmarks/similarity/{exp}/{model}/seed{seed}/{run_a}__{run_b}_{measure}.tsv"
    group:
        analysis_group
    conda:
        "../envs/similarity.yaml"
    threads: resource("analysis", "threads")
    resources:
        mem_mb=resource("analysis", "mem_mb"),
        runtime=resource("analysis", "runtime"),
        gpu=resource("analysis", "gpu"),
        gpu_slots=resource("analysis", "gpu_slots"),
    params:
        settings=similarity_settings,
        model=model_spec,
        dataset=experiment_dataset,
        device=config["device"],
    script:
        "../scripts/similarity.py"


rule similarity_heatmap:
    """Heatmap of one similarity table."""
    input:
        table=f"{SIMILARITY_DIR}/{{measure}}.parquet",
    output:
        pdf=report(
            f"{SIMILARITY_FIG}.pdf",
            caption="../report/similarity_heatmap.rst",
            category="{exp}",
            subcategory="similarity",
        ),
        png=f"{SIMILARITY_FIG}.png",
    log:
        "logs/similarity/{exp}/{model}/seed{seed}/{run_a}__{run_b}_{measure}_heatmap.log",
    conda:
        "../envs/similarity.yaml"
    threads: 1
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    script:
        "../scripts/similarity_heatmap.py"


rule filters:
    """Filters of the configured mid-network conv layer of one run's final network."""
    input:
        weights="results/runs/{exp}/{model}/{run}/seed{seed}/final.safetensors",
    output:
        pdf=report(
            "results/figures/{exp}/filters/{model}/{run}_seed{seed}.pdf",
            caption="../report/filters.rst",
            category="{exp}",
            subcategory="filters",
        ),
        png="results/figures/{exp}/filters/{model}/{run}_seed{seed}.png",
    log:
        "logs/similarity/{exp}/{model}/filters_{run}_seed{seed}.log",
    conda:
        "../envs/similarity.yaml"
    threads: 1
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        layer=filter_layer,
        model=model_spec,
        dataset=experiment_dataset,
    script:
        "../scripts/filters.py"
