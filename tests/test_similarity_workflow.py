"""E3 end to end on generated CIFAR-format images: cross-initialization, pretrained start,
normalization study, similarity tables, heatmaps and filter images, and their paper figures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from tests.workflow_helpers import planned_jobs, snakemake

TINY_E3 = ("tests/configs/tiny_e3.yaml",)
MEASURES = ("cka", "opd")
PAPER_FIGURES = ("similarity_cka", "similarity_opd", "filters")
NO_TEX = shutil.which("latexmk") is None or shutil.which("pdflatex") is None
PDF = "results/paper/paper.pdf"
# E3's claims on the similarity tables (minima.findings.table_quantities)
SIMILARITY_CLAIMS = (
    *("E3-C3", "E3-C4", "E3-C4-self", "E3-C5", "E3-C6", "E3-C6-adahessian", "E3-C7"),
    *("E3-C8", "E3-C8-adahessian", "E3-C8-cross"),
)


def test_pretrained_runs_are_skipped_with_a_message_without_weights(tmp_path):
    result = snakemake(tmp_path, "-n", configfiles=TINY_E3)
    output = result.stdout + result.stderr
    assert "skipping run e3/sgd_pretrained" in output
    assert "pretrained_weights is null" in output
    assert "pretrained_init" not in planned_jobs(result.stdout)
    assert "run=sgd_pretrained" not in output


@pytest.mark.slow
def test_tiny_e3_end_to_end(tmp_path):
    # A file in the shape of torchvision's ImageNet ResNet18 state dict (1000-class head).
    weights = tmp_path / "resnet18_imagenet.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    # Ask for what the checks need, not all of E3: Snakemake plans only their ancestors.
    compared = ["sgd", "adahessian", "sgd_from_adahessian", "sgd_pretrained"]
    pairs = [f"{a}__{b}" for i, a in enumerate(compared) for b in compared[i:]]  # self too
    figures = "results/figures/e3"
    targets = [
        *(f"{figures}/similarity/resnet18/seed0/{p}_{m}.png" for p in pairs for m in MEASURES),
        *(f"{figures}/filters/resnet18/{run}_seed0.png" for run in compared),
        "results/runs/e3/resnet18/adahessian_std_rgb/seed0/final.json",
        # the paper's figures (minima.report.kinds.similarity), from the same tables/weights
        *(f"{figures}/{name}.pdf" for name in PAPER_FIGURES),
        # E3's findings: the claims read only runs asked for above (no adahessian_std1e3)
        "results/findings/e3/verdicts.json",
        # and through the paper rule, where TeX is installed
        *([] if NO_TEX else [PDF]),
    ]
    snakemake(
        tmp_path,
        *targets,
        "--config",
        f"pretrained_weights={weights}",
        configfiles=TINY_E3,
        timeout=1200,
    )

    runs = tmp_path / "results" / "runs" / "e3" / "resnet18"
    cross = json.loads((runs / "sgd_from_adahessian" / "seed0" / "final.json").read_text())
    source = json.loads((runs / "adahessian" / "seed0" / "final.json").read_text())
    assert cross["init_weights"]["sha256"] == source["sha256"]  # started from AdaHessian's end
    pretrained = json.loads((runs / "init" / "pretrained_seed0.json").read_text())
    assert pretrained["fresh_keys"] == ["fc.weight", "fc.bias"]
    scaled = json.loads((runs / "adahessian_std_rgb" / "seed0" / "final.json").read_text())
    assert scaled["data"]["std_scale"] == pytest.approx([1e-4, 1.0, 1e3])  # R, G, B
    assert not (runs / "adahessian_std1e3").exists()  # optional, not in config.yaml

    analysis = tmp_path / "results" / "analysis" / "similarity" / "e3" / "resnet18" / "seed0"
    assert sorted(p.name for p in analysis.iterdir()) == sorted(pairs)
    cka = pd.read_parquet(analysis / "sgd__adahessian" / "cka.parquet")
    n_layers = 21  # 20 conv + 1 linear in ResNet18
    assert len(cka) == n_layers * n_layers
    assert cka["value"].between(-1e-9, 1 + 1e-9).all()
    opd = pd.read_parquet(analysis / "sgd__sgd_from_adahessian" / "opd.parquet")
    assert np.isfinite(opd["value"]).all() and (opd["value"] >= -1e-9).all()
    # a network with itself: every layer identical to itself
    same = pd.read_parquet(analysis / "sgd__sgd" / "cka.parquet")
    diagonal = same[same["index_a"] == same["index_b"]]
    assert len(diagonal) == n_layers and np.allclose(diagonal["value"], 1.0, atol=1e-9)
    same = pd.read_parquet(analysis / "adahessian__adahessian" / "opd.parquet")
    assert np.allclose(same.loc[same["index_a"] == same["index_b"], "value"], 0.0, atol=1e-6)

    heatmaps = list((tmp_path / figures / "similarity").rglob("*.png"))
    assert len(heatmaps) == len(pairs) * len(MEASURES)
    filters = sorted(p.name for p in (tmp_path / figures / "filters" / "resnet18").glob("*.png"))
    assert filters == sorted(f"{run}_seed0.png" for run in compared)
    for name in PAPER_FIGURES:  # drawn by the analysis_figure rule: PDF and PNG
        for ext in ("pdf", "png"):
            assert (tmp_path / figures / f"{name}.{ext}").stat().st_size > 1000, (name, ext)
    log = (tmp_path / "logs" / "paper" / "figures" / "e3" / "similarity_cka.log").read_text()
    assert "'tables': 10" in log  # the four compared runs, with themselves and in pairs
    log = (tmp_path / "logs" / "paper" / "figures" / "e3" / "filters.log").read_text()
    assert "'weights': 2" in log  # SGD and AdaHessian
    # E3's claims judged on stand-in data: one seed, so comparisons are inconclusive with n = 1
    facts = json.loads((tmp_path / "results/findings/e3/verdicts.json").read_text())
    verdicts = {c["claim"]: c for c in facts["claims"]}
    assert facts["stand_in"]
    assert set(verdicts) == {"E3-C1", "E3-C2", "E3-C9", "E3-C9-acc", *SIMILARITY_CLAIMS}
    assert verdicts["E3-C2"]["verdict"] == "inconclusive" and verdicts["E3-C2"]["n"] == 1
    parts = {d["claim"]: d["parts"] for d in facts["parts"]}
    # every cross pair of the 4 compared runs (6) in each of the 3 measures is judged
    assert len(parts["E3-C4"]) == 6 * 3
    assert {p["verdict"] for p in parts["E3-C4"]} <= {"supported", "contradicted"}
    # the self pairs: 4 runs x 3 measures; E3-C6 reads SGD's layer3.0.conv1 in CKA only
    assert len(parts["E3-C4-self"]) == 4 * 3
    (c6,) = parts["E3-C6"]
    assert c6["part"].startswith("sgd: layer3.0.conv1 vs every other layer (cka)")
    assert c6["n"] == 1 and c6["verdict"] in ("supported", "contradicted")
    # the CKA of layer3.0.conv1 with every other layer of SGD's network, from the table
    table = pd.read_parquet(analysis / "sgd__sgd" / "cka.parquet")
    others = table[(table["layer_a"] == "layer3.0.conv1") & (table["layer_b"] != "layer3.0.conv1")]
    assert c6["effect"] == pytest.approx(others["value"].max())
    # E3-C5 on the pretrained SGD run: the gain over the first third of the 21 layers (7)
    assert all(p["n"] == 7 for p in parts["E3-C5"]) and len(parts["E3-C5"]) == 3
    # E3-C7 and E3-C8: per layer after that first third (14), in each measure; E3-C3 and
    # E3-C8-cross: one pair in each measure
    for claim in ("E3-C7", "E3-C8", "E3-C8-adahessian"):
        assert [p["n"] for p in parts[claim]] == [14] * 3, claim
    assert len(parts["E3-C3"]) == len(parts["E3-C8-cross"]) == 3
    assert "n = 1" in verdicts["E3-C2"]["reason"]
    reproduced = pd.read_parquet(tmp_path / "results/findings/e3/reproduced.parquet")
    assert set(reproduced["status"]) == {"not judged: stand-in data"}
    if NO_TEX or not shutil.which("pdftotext"):
        return  # the PDF needs TeX (make tex); its text, pdftotext (poppler-utils)
    pdf = tmp_path / PDF
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    text = re.sub(r"-\s+", "-", " ".join(text.split()))  # ids broken at a line's hyphen
    assert "Findings at a glance" in text and "stand-in" in text
    for claim in verdicts:
        # in E3's findings paragraph (a page's number may fall between the id and its text)
        assert re.search(rf"{re.escape(claim)} (\d+ )?\(", text), claim
