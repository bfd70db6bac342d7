"""What was run, from the runs' metadata, and the generated LaTeX that says it."""

from __future__ import annotations

import pytest

from minima.report import runinfo, sections


def final(run: str, seed: int, *, status="completed", device="cpu", name="AMD EPYC", seconds=2.0):
    return {
        "run": {
            "experiment": "e2",
            "model_label": "resnet18",
            "model": {"name": "resnet18"},
            "run": run,
            "seed": seed,
            "dataset": "mnist10k",
            "epochs": 15,
            "batch_size": 100,
        },
        "status": status,
        "parameters": 11175370,
        "data": {"sizes": {"train": 1200, "val": 200, "test": 200}},
        "hardware": {"device": device, "name": name},
        "train_seconds": seconds,
        "job_seconds": seconds + 1.0,
        "code": {"commit": "0123456789abcdef", "dirty": False},
        "versions": {"torch": "2.14.1"},
    }


@pytest.fixture
def finals():
    metas = [final(run, seed) for run in ("sgd", "hybrid_v2") for seed in (0, 1, 2)]
    metas[-1] = final("hybrid_v2", 2, status="diverged", device="cuda:0", name="NVIDIA H100")
    return metas


def test_facts_are_read_from_the_runs(finals):
    info = runinfo.describe_experiment(finals, experiment="e2", title="ResNet18 on 2% of MNIST")
    assert info["runs"] == ["sgd", "hybrid_v2"] and info["seeds"] == [0, 1, 2]
    assert info["n_runs"] == 6 and info["completed"] == 5
    assert info["diverged"] == ["resnet18/hybrid_v2/seed2"]
    assert info["hardware"] == ["AMD EPYC (CPU)", "NVIDIA H100 (GPU)"]
    assert info["train_seconds"] == pytest.approx(12.0)
    assert info["job_seconds"] == pytest.approx(18.0)
    assert info["stand_in"] and info["datasets"] == ["mnist10k"]
    assert info["models"] == [{"label": "resnet18", "name": "resnet18", "parameters": 11175370}]


def test_caption_sentence_says_data_seeds_epochs_hardware(finals):
    text = runinfo.caption_sentence(runinfo.describe_experiment(finals, experiment="e2"))
    assert "not full MNIST" in text and "1,200/200/200 train/val/test" in text
    assert "3 seeds, 15 epochs" in text and "NVIDIA H100 (GPU)" in text
    assert "Diverged: resnet18/hybrid_v2/seed2" in text


def test_section_inputs_every_table_and_figure_by_the_given_paths(finals):
    info = runinfo.describe_experiment(finals, experiment="e2", title="ResNet18 on 2% of MNIST")
    tex = sections.experiment_section(
        info,
        figures=[
            {
                "name": "val_loss",
                "path": "results/figures/e2/val_loss.pdf",
                "caption": "Loss.",
                "bands": True,
            },
            {
                "name": "cka",
                "path": "results/figures/e2/cka.pdf",
                "caption": "CKA.",
                "bands": False,
            },
        ],
        tables=[{"name": "acc", "path": "results/tables/e2/acc.tex", "caption": "Accuracy."}],
        skipped={"sgd_pretrained": "needs pretrained_weights"},
        labels={"hybrid_v2": "Hybrid v2"},
    )
    assert tex.index("\\includegraphics{results/figures/e2/val_loss.pdf}") < tex.index(
        "\\includegraphics{results/figures/e2/cka.pdf}"
    )
    assert "\\input{results/tables/e2/acc.tex}" in tex
    assert tex.count("\\begin{figure}") == 2 and tex.count("\\begin{table}") == 1
    assert "bands: \\ensuremath{\\pm}1 std" in tex.split("cka.pdf")[0]  # training figure only
    assert "bands" not in tex.split("cka.pdf")[1]
    assert "2\\% of MNIST" in tex and "Hybrid v2" in tex
    assert "\\paragraph{Not run: sgd\\_pretrained.} needs pretrained\\_weights" in tex
    assert "Not the paper's data." in tex


def test_overview_has_a_row_per_experiment_and_the_totals(finals):
    e2 = runinfo.describe_experiment(finals, experiment="e2")
    e1 = runinfo.describe_experiment(finals[:3], experiment="e1")
    tex = sections.overview_section([e1, e2])
    rows = tex.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0].strip().splitlines()
    assert [row.split(" & ")[0] for row in rows] == ["E1", "E2"]
    assert rows[1].split(" & ")[3] == "5/6"
    assert "Training time over all runs: 18 s" in tex
    assert "0123456789ab" in tex


def test_durations_read_naturally():
    assert runinfo.format_duration(42) == "42 s"
    assert runinfo.format_duration(750) == "12.5 min"
    assert runinfo.format_duration(3 * 3600) == "3.0 h"


def test_sweep_runs_are_counted_and_their_time_added_to_the_total(finals):
    points = [final("sgd", 0, seconds=10.0) for _ in range(4)]
    for i, meta in enumerate(points):
        meta["run"]["sweep"] = {"name": "lr", "point": i, "values": {"optimizer.lr": 0.1 * i}}
    points[-1]["status"] = "diverged"
    e2 = runinfo.describe_experiment(finals, experiment="e2", sweep_finals=points)
    assert e2["sweeps"] == {
        "names": ["lr"],
        "n_runs": 4,
        "completed": 3,
        "train_seconds": 40.0,
        "job_seconds": 44.0,
    }
    assert e2["train_seconds"] == 12.0  # the main runs alone
    paragraph = sections.what_was_run_paragraph(e2)
    assert (
        "Hyper-parameter sweeps (lr): 4 more runs (3 completed), training time 40 s." in paragraph
    )
    tex = sections.overview_section([e2])
    assert "Training time over all runs (with 4 runs of hyper-parameter sweeps): 52 s" in tex
    assert runinfo.describe_experiment(finals, experiment="e2")["sweeps"] is None


def test_what_was_run_says_where_we_still_differ_from_the_studies():
    import yaml

    from minima.report.differences import study_differences
    from tests.workflow_helpers import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    found = study_differences(config, ["e1", "e2", "e3", "e5"])
    assert set(found) == {"e2", "e3", "e5"}
    assert "285 points x 5 seeds = 1,425 runs" in found["e2"][0]
    assert "not built by default" in found["e2"][0]
    assert "first 2,000 test images" in found["e3"][0] and "only the first 20" in found["e3"][0]
    assert "layer3.0.conv1" in found["e3"][0]
    assert "[0.001, 1000] on both signs" in found["e5"][0]
    e2 = {
        "experiment": "e2", "datasets": ["mnist"], "stand_in": False, "models": [],
        "completed": 0, "n_runs": 0, "seeds": [], "epochs": [], "hardware": [],
        "train_seconds": 0.0, "job_seconds": 0.0, "commits": [], "torch": [],
    }  # fmt: skip
    tex = sections.overview_section([e2], differences=found)
    assert r"\paragraph{Where we still differ from the studies.}" in tex
    assert tex.count(r"\item ") == sum(len(v) for v in found.values())
    assert "Where we still differ" not in sections.overview_section([e2])
