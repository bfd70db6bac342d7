"""E3's normalization study as the study ran it: one AdaHessian run with the R, G, B std
multiplied by 0.0001, 1 and 1000, compared with the normally normalized run. From config.yaml
to the tensors the network sees: the run's std_scale reaches the normalize transform per
channel, on CIFAR-format images (generated ones: a pipeline check)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from minima import plan
from minima.data import channel_stats, load_pools, load_split, prepare_dataset, write_manifest
from minima.data import device as data_device
from minima.data.split_job import write_split
from minima.report import spec as paper_spec
from minima.train.job import load_splits
from tests.workflow_helpers import REPO

STUDY = [1e-4, 1.0, 1e3]  # R, G, B


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_default_normalization_runs_are_the_studys(config):
    e3 = config["experiments"]["e3"]
    assert plan.run_settings(config, "e3", "adahessian_std_rgb")["data"]["std_scale"] == STUDY
    scaled = [r for r in e3["runs"] if plan.run_settings(config, "e3", r)["data"]["std_scale"] != 1]
    assert scaled == ["adahessian_std_rgb"]  # uniform scalings are not default runs
    for section in ("figures", "tables"):
        assert e3[section]["normalization"]["runs"] == ["adahessian", "adahessian_std_rgb"]
    # the two runs differ only in the normalization
    plain, rgb = (plan.run_settings(config, "e3", r) for r in ("adahessian", "adahessian_std_rgb"))
    plain["data"].pop("std_scale"), rgb["data"].pop("std_scale")
    assert plain == rgb


def test_uniform_scalings_are_an_optional_overlay(config):
    extra = yaml.safe_load((REPO / "config/e3_uniform_std.yaml").read_text())
    merged = plan.deep_merge(config, extra)
    plan.check_plan(merged)
    paper_spec.check_paper(merged)
    scales = {
        r: plan.run_settings(merged, "e3", r)["data"]["std_scale"]
        for r in merged["experiments"]["e3"]["figures"]["normalization"]["runs"]
    }
    assert scales == {
        "adahessian": 1.0,
        "adahessian_std_rgb": STUDY,
        "adahessian_std1e-4": 1e-4,
        "adahessian_std1e3": 1e3,
    }


def test_per_channel_std_scale_reaches_the_normalize_transform(config, tmp_path, monkeypatch):
    manifest = prepare_dataset(
        "cifar10_synthetic", tmp_path / "raw", synthetic={"n_train": 60, "n_test": 20, "seed": 0}
    )
    write_manifest(tmp_path / "manifest.json", manifest)
    split = tmp_path / "split.npz"
    write_split("cifar10_synthetic", tmp_path / "raw", split, seed=0, val_size=10)
    std_scale = plan.run_settings(config, "e3", "adahessian_std_rgb")["data"]["std_scale"]
    seen = []
    real = data_device.normalize

    def spy(images, mean, std, scale, **kwargs):
        seen.append(scale)
        return real(images, mean, std, scale, **kwargs)

    monkeypatch.setattr(data_device, "normalize", spy)
    parts, info = load_splits(
        "cifar10_synthetic", tmp_path / "manifest.json", split, torch.device("cpu"), std_scale
    )
    assert seen == [STUDY] * 3 and info["std_scale"] == STUDY  # train, val, test; recorded
    # what the network sees: (x/255 - mean_c) / (std_c * scale_c), channel by channel
    images, _ = load_pools("cifar10_synthetic", tmp_path / "raw")["train"]
    train = load_split(split)["train"]
    mean, std = channel_stats(images, train)
    raw = images[torch.as_tensor(train)].double() / 255
    for c, scale in enumerate(STUDY):
        expected = (raw[:, c] - mean[c]) / (std[c] * scale)
        x = parts["train"].x[:, c].double()  # float32: rounding of values ~1/scale_c
        np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6 / scale)
        # so on the train split channel c has std 1 / scale_c: 1e4, 1 and 1e-3
        np.testing.assert_allclose(
            parts["train"].x[:, c].double().std(unbiased=False), 1 / scale, rtol=1e-5
        )
