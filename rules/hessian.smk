# Curvature stage (E1, E4, E5): Hessian spectra, loss landscapes and sharpness of each final
# model, and E5's eigenpairs at every checkpoint. One job per run (per checkpoint for
# eigenpairs); what each computes is config: experiments.<exp>.analyses.<kind> and the shared
# engine settings in `hessian` (backend native | pyhessian). Every job writes tidy Parquet
# tables plus a JSON sidecar (backend, examples and subset, probes, seeds, versions, device,
# seconds). A diverged run gets empty tables (same columns) and "status": "skipped" with the
# reason in its JSON.

ANALYSIS_RUN = "{exp}/{model}/{run}/seed{seed}"
SPECTRUM_DIR = f"results/analysis/spectrum/{ANALYSIS_RUN}"
LANDSCAPE_DIR = f"results/analysis/landscape/{ANALYSIS_RUN}"
SHARPNESS_DIR = f"results/analysis/sharpness/{ANALYSIS_RUN}"
EIGENPAIRS_DIR = f"results/analysis/eigenpairs/{ANALYSIS_RUN}"


rule spectrum:
    """Hessian spectrum of one run's final model (E1; E4's top eigenvalue).

    eigenvalues.parquet: index, eigenvalue, residual (||Hu - lambda u||), which (LA native,
        LM pyhessian), converged.
    trace.parquet: probe, sample (Hutchinson z^T H z; estimate and stderr in spectrum.json).
    density.parquet: x, density (SLQ, smoothed, integrates to 1 over x).
    density_nodes.parquet: probe, node, weight (SLQ quadrature before smoothing).
    spectrum.json: backend, data (examples, subset, seed), trace, density settings, timings.
    """
    input:
        unpack(final_model_inputs),
    output:
        eigenvalues=f"{SPECTRUM_DIR}/eigenvalues.parquet",
        trace=f"{SPECTRUM_DIR}/trace.parquet",
        density=f"{SPECTRUM_DIR}/density.parquet",
        density_nodes=f"{SPECTRUM_DIR}/density_nodes.parquet",
        meta=f"{SPECTRUM_DIR}/spectrum.json",
    log:
        f"logs/analysis/spectrum/{ANALYSIS_RUN}.log",
    benchmark:
        f"results/benchmarks/spectrum/{ANALYSIS_RUN}.tsv"
    group:
        analysis_group
    conda:
        "../envs/hessian.yaml"
    threads: resource("analysis", "threads")
    resources:
        mem_mb=resource("analysis", "mem_mb"),
        runtime=resource("analysis", "runtime"),
        gpu=resource("analysis", "gpu"),
        gpu_slots=resource("analysis", "gpu_slots"),
    params:
        settings=curvature_settings("spectrum"),
        hessian=hessian_engine(
            "backend",
            "dtype",
            "batch_size",
            "hvp_method",
            "probe_batch",
            "eigen_tol",
            "eigen_max_iter",
            "spectrum_engine",
        ),
        model=model_spec,
        dataset=experiment_dataset,
        std_scale=run_std_scale,
        device=config["device"],
    script:
        "../scripts/spectrum.py"


rule landscape:
    """Loss surfaces of one run's final model (E1, Li et al. 2018).

    landscape.parquet: directions (eigen | gradient_eigen | random), slice (d1: the line
        theta + alpha d1, beta = 0; d2: theta + beta d2, alpha = 0; plane: points_2d^2
        points theta + alpha d1 + beta d2), alpha, beta, loss, accuracy.
    landscape.json: per direction pair its eigenvalues / cosine / seeds and span; data.
    """
    input:
        unpack(final_model_inputs),
    output:
        landscape=f"{LANDSCAPE_DIR}/landscape.parquet",
        meta=f"{LANDSCAPE_DIR}/landscape.json",
    log:
        f"logs/analysis/landscape/{ANALYSIS_RUN}.log",
    benchmark:
        f"results/benchmarks/landscape/{ANALYSIS_RUN}.tsv"
    group:
        analysis_group
    conda:
        "../envs/hessian.yaml"
    threads: resource("analysis", "threads")
    resources:
        mem_mb=resource("analysis", "mem_mb"),
        runtime=resource("analysis", "runtime"),
        gpu=resource("analysis", "gpu"),
        gpu_slots=resource("analysis", "gpu_slots"),
    params:
        settings=curvature_settings("landscape"),
        hessian=hessian_engine(
            "backend",
            "dtype",
            "batch_size",
            "hvp_method",
            "eigen_tol",
            "eigen_max_iter",
            "chunk_size",
        ),
        model=model_spec,
        dataset=experiment_dataset,
        std_scale=run_std_scale,
        device=config["device"],
    script:
        "../scripts/landscape.py"


rule sharpness:
    """Sharpness in the rho-ball of one run's final model (E4).

    sharpness.parquet: rho, loss, grad_norm, first_order (rho ||g||), sam_point (exact
        increase at SAM's point), ascent (largest increase by projected gradient ascent),
        steps, step_size.
    ascent.parquet: rho, step, increase (every ascent iterate; step 0 is SAM's point).
    """
    input:
        unpack(final_model_inputs),
    output:
        sharpness=f"{SHARPNESS_DIR}/sharpness.parquet",
        ascent=f"{SHARPNESS_DIR}/ascent.parquet",
        meta=f"{SHARPNESS_DIR}/sharpness.json",
    log:
        f"logs/analysis/sharpness/{ANALYSIS_RUN}.log",
    benchmark:
        f"results/benchmarks/sharpness/{ANALYSIS_RUN}.tsv"
    group:
        analysis_group
    conda:
        "../envs/hessian.yaml"
    threads: resource("analysis", "threads")
    resources:
        mem_mb=resource("analysis", "mem_mb"),
        runtime=resource("analysis", "runtime"),
        gpu=resource("analysis", "gpu"),
        gpu_slots=resource("analysis", "gpu_slots"),
    params:
        settings=curvature_settings("sharpness"),
        hessian=hessian_engine("dtype", "batch_size"),
        model=model_spec,
        dataset=experiment_dataset,
        std_scale=run_std_scale,
        device=config["device"],
    script:
        "../scripts/sharpness.py"


rule eigenpairs_subset:
    """E5's fixed subset of the training split (every checkpoint's Hessian is taken on it).

    subset.parquet: position (index into the training split), pool_index (into the pool).
    subset.json: size, fraction or examples, seed, SHA-256 of the positions and the split.
    """
    input:
        split=eigenpairs_split,
    output:
        table=f"{EIGENPAIRS_DIR}/subset.parquet",
        meta=f"{EIGENPAIRS_DIR}/subset.json",
    log:
        f"logs/analysis/eigenpairs/{ANALYSIS_RUN}/subset.log",
    conda:
        "../envs/hessian.yaml"
    threads: 1
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        settings=curvature_settings(
            "eigenpairs", keys=("examples", "fraction", "subset_seed")
        ),
    script:
        "../scripts/eigenpairs_subset.py"


rule eigenpairs:
    """LA(la) and SA(sa) Hessian eigenpairs of one checkpoint (E5), scipy eigsh over a float64
    HVP operator on the fixed subset, and the loss along theta - alpha (g.v) v for each pair.

    eigenvalues.parquet: step, which (LA | SA), index, eigenvalue, residual, all_converged
        (ARPACK converged all pairs asked for), loss (at the checkpoint, on the subset).
    line_search.parquet: step, which, index, eigenvalue, gv (g.v), grid (linear: a span's
        curve | log: the step search's grid, span = its largest |alpha|), span, alpha, loss
        (exact), loss_quadratic (L0 - alpha (g.v)^2 + alpha^2 (g.v)^2 lambda / 2).
    line_search_summary.parquet: step, which, index, eigenvalue, gv, best_decrease
        (L0 - L(alpha*)), alpha_star (log grid over |alpha| in [search.min, search.max] on
        both signs, refined by scipy's bounded minimiser), loss_star, bounded (alpha* at
        +-search.max: bounded by the search), best_decrease_quadratic, alpha_star_quadratic
        (1 / lambda; NaN if <= 0).
    eigenpairs.json: per which: converged flag, pairs converged, message, max residual.
    """
    input:
        unpack(eigenpairs_inputs),
    output:
        eigenvalues=f"{EIGENPAIRS_DIR}/step{{step}}/eigenvalues.parquet",
        line_search=f"{EIGENPAIRS_DIR}/step{{step}}/line_search.parquet",
        line_search_summary=f"{EIGENPAIRS_DIR}/step{{step}}/line_search_summary.parquet",
        meta=f"{EIGENPAIRS_DIR}/step{{step}}/eigenpairs.json",
    log:
        f"logs/analysis/eigenpairs/{ANALYSIS_RUN}/step{{step}}.log",
    benchmark:
        f"results/benchmarks/eigenpairs/{ANALYSIS_RUN}/step{{step}}.tsv"
    wildcard_constraints:
        step=r"\d+",
    group:
        analysis_group
    conda:
        "../envs/hessian.yaml"
    threads: resource("analysis", "threads")
    resources:
        mem_mb=resource("analysis", "mem_mb"),
        runtime=resource("analysis", "runtime"),
        gpu=resource("analysis", "gpu"),
        gpu_slots=resource("analysis", "gpu_slots"),
    params:
        settings=curvature_settings("eigenpairs", drop=("subset_check",)),
        hessian=hessian_engine("batch_size", "hvp_method", "chunk_size"),
        model=model_spec,
        dataset=experiment_dataset,
        std_scale=run_std_scale,
        device=config["device"],
    script:
        "../scripts/eigenpairs.py"


rule eigenpairs_collect:
    """One run's eigenpairs over all analysed checkpoints: eigenvalues.parquet,
    line_search.parquet (every alpha of every pair) and line_search_summary.parquet, the
    per-step tables concatenated, sorted by step."""
    input:
        unpack(eigenpairs_collect_inputs),
    output:
        eigenvalues=f"{EIGENPAIRS_DIR}/eigenvalues.parquet",
        line_search=f"{EIGENPAIRS_DIR}/line_search.parquet",
        line_search_summary=f"{EIGENPAIRS_DIR}/line_search_summary.parquet",
    log:
        f"logs/analysis/eigenpairs/{ANALYSIS_RUN}/collect.log",
    conda:
        "../envs/hessian.yaml"
    threads: 1
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    script:
        "../scripts/eigenpairs_collect.py"


rule subset_check:
    """E5's check, once at the final model: LA(k)/SA(k) of the fixed subset vs the whole
    training split.

    subset_check.parquet: which, index, eigenvalue_full, eigenvalue_subset, abs_diff,
        rel_diff, angle_deg (between the i-th eigenvectors), principal_angle_deg (i-th
        principal angle between the two k-dim eigenspaces), converged.
    """
    input:
        unpack(subset_check_inputs),
    output:
        table=f"{EIGENPAIRS_DIR}/subset_check.parquet",
        meta=f"{EIGENPAIRS_DIR}/subset_check.json",
    log:
        f"logs/analysis/eigenpairs/{ANALYSIS_RUN}/subset_check.log",
    benchmark:
        f"results/benchmarks/subset_check/{ANALYSIS_RUN}.tsv"
    group:
        analysis_group
    conda:
        "../envs/hessian.yaml"
    threads: resource("analysis", "threads")
    resources:
        mem_mb=resource("analysis", "mem_mb"),
        runtime=resource("analysis", "runtime"),
        gpu=resource("analysis", "gpu"),
        gpu_slots=resource("analysis", "gpu_slots"),
    params:
        settings=curvature_settings("eigenpairs", drop=("line_search", "steps")),
        hessian=hessian_engine("batch_size", "hvp_method"),
        model=model_spec,
        dataset=experiment_dataset,
        std_scale=run_std_scale,
        device=config["device"],
    script:
        "../scripts/subset_check.py"
