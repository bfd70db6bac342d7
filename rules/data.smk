# Data stage: raw files (downloaded, found under data_root, embedded or generated), checked by
# checksum, then one fixed split of train/val/test indices per experiment and dataset seed.


rule download:
    """Make a dataset's raw files available and verified: torchvision's download with its
    checksums, or only the checksums where config `data_root` already holds the files.
    """
    input:
        download_inputs,
    output:
        manifest="results/data/{dataset}/manifest.json",
    log:
        "logs/data/download_{dataset}.log",
    wildcard_constraints:
        dataset="mnist|mnist10k|cifar10",
    conda:
        "../envs/data.yaml"
    threads: resource("data", "threads")
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        data_root=config["data_root"],
        download=config["download"],
        mirrors=dataset_mirrors,
        raw_dir="results/data/{dataset}/raw",
        embedded_dir=embedded_dir,
    script:
        "../scripts/download.py"


rule synthetic_cifar10:
    """Generated images in CIFAR-10's on-disk format: exercises the CIFAR code path where the
    real dataset cannot be had. Its name says it is synthetic everywhere it is used."""
    output:
        manifest="results/data/cifar10_synthetic/manifest.json",
    log:
        "logs/data/synthetic_cifar10.log",
    conda:
        "../envs/data.yaml"
    threads: resource("data", "threads")
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        synthetic=config["synthetic_cifar10"],
        raw_dir="results/data/cifar10_synthetic/raw",
    script:
        "../scripts/synthetic_cifar10.py"


rule split:
    """Fixed train/val/test indices (and the train split's channel mean/std) for one
    experiment, drawn once from its dataset seed; every run of the experiment reads them.
    """
    input:
        unpack(split_inputs),
    output:
        split="results/data/{dataset}/splits/{exp}_seed{seed}.npz",
    log:
        "logs/data/split_{dataset}_{exp}_seed{seed}.log",
    group:
        PREP_GROUP
    conda:
        "../envs/data.yaml"
    threads: resource("data", "threads")
    resources:
        mem_mb=resource("data", "mem_mb"),
        runtime=resource("data", "runtime"),
        gpu=0,
    params:
        data=experiment_data,
    script:
        "../scripts/split.py"
