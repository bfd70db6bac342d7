# Cluster execution: which jobs stay on the machine that runs Snakemake (the login node under
# SLURM), which share one SLURM job, and what every job asks for (docs/cluster.md).
import functools
import os

from minima import cluster_resources


# Seconds-long jobs never become SLURM jobs of their own: downloads (the login node has the
# network), generated data, subsets, every figure, table and LaTeX step, and the PDF.
localrules:
    download,
    synthetic_cifar10,
    eigenpairs_subset,
    eigenpairs_collect,
    sweep_summary,
    similarity_heatmap,
    filters,
    figure,
    table,
    analysis_figure,
    analysis_table,
    paper_section,
    paper_overview,
    paper,
    findings,
    findings_glance,


# Job group of the per-experiment CPU jobs (split, initial weights): the profile's
# group-components packs them into one SLURM job.
PREP_GROUP = "prep"


def partition_file():
    """The SLURM plugin's partition file (config resources.partition_file, else the
    SNAKEMAKE_SLURM_PARTITIONS variable the plugin reads too); None without one."""
    return config["resources"].get("partition_file") or os.environ.get(
        "SNAKEMAKE_SLURM_PARTITIONS"
    )


@functools.lru_cache(maxsize=None)
def _max_runtime(path, gpu):
    return cluster_resources.partition_max_runtime(path, gpu)


def resource(family, name):
    """A job resource of a rule family (config `resources`), with the job's experiment's
    overrides (resources.experiments.<exp>.<family>); runtime grows with the attempt, up to
    the longest time limit of the partitions that can run the job."""

    def value(wildcards, attempt):
        exp = getattr(wildcards, "exp", None)
        values = cluster_resources.family_resources(config["resources"], family, exp)
        if name == "gpu_slots":
            slots = config["resources"].get("slots_per_gpu", 1)
            return cluster_resources.gpu_slots(values, slots)
        if name != "runtime":
            return values[name]
        cap = _max_runtime(partition_file(), values["gpu"])
        return cluster_resources.runtime_for_attempt(values["runtime"], attempt, cap)

    return value


def analysis_group(wildcards):
    """Job group `analysis_<exp>` of a curvature or similarity job: the profile packs the
    short ones (E1's LeNet, E5's checkpoints) into shared SLURM jobs; unlisted experiments
    submit one job each."""
    return f"analysis_{wildcards.exp}"


def _check_resource_overrides():
    """Overrides of an experiment the config does not have are a typo: fail at start-up."""
    overrides = config["resources"].get("experiments") or {}
    unknown = sorted(set(overrides) - set(config["experiments"]))
    if unknown:
        raise ValueError(
            f"config: resources.experiments: {', '.join(unknown)} not in experiments "
            f"(allowed: {', '.join(config['experiments'])})"
        )


_check_resource_overrides()
