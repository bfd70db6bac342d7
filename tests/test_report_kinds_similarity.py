"""E3's similarity figure kinds on synthetic results in the exact layout the rules write:
which tables/weights an entry reads, that every heatmap shows its pair's table on one colour
scale, that the filter panels are the weights' filter grids, and the entries' checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from safetensors.torch import save_file

from minima import plan
from minima.io import sha256_file
from minima.plan import ConfigError
from minima.report import spec as paper_spec
from minima.report import style
from minima.report.figures import Look
from minima.report.kinds import figure_kind
from minima.report.kinds.similarity import MEASURE_NAMES, color_limits
from minima.similarity.filters import filter_grid
from tests.workflow_helpers import REPO

LAYERS = ("conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "fc")


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(Path(REPO, "config.yaml").read_text())


def entry(config: dict, name: str, **changes) -> dict:
    """A figure entry of E3 as the jobs see it (runs/models filled in, resolved by its kind),
    with changes."""
    changed = copy.deepcopy(config)
    changed["experiments"]["e3"]["figures"][name].update(changes)
    spec = paper_spec.entry(changed, "e3", "figures", name)
    return figure_kind(spec["kind"]).job_spec(changed, "e3", spec)


def similarity_table(
    measure: str, rng: np.random.Generator, scale: float, layers: tuple[str, ...]
) -> pd.DataFrame:
    """A table as `minima.similarity.job.compare_runs` returns it (rows shuffled)."""
    values = rng.uniform(0.0, scale, size=(len(layers), len(layers)))
    rows = [
        (measure, a, b, s, t, values[s, t])
        for s, a in enumerate(layers)
        for t, b in enumerate(layers)
    ]
    table = pd.DataFrame(
        rows, columns=["measure", "layer_a", "layer_b", "index_a", "index_b", "value"]
    )
    if measure == "cka":
        table["form"] = "feature"
    return table.sample(frac=1.0, random_state=0).reset_index(drop=True)


def write_tables(
    root: Path, paths: list[str], measure: str, scale: float = 1.0, layers=LAYERS
) -> list[str]:
    rng = np.random.default_rng(0)
    written = []
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        similarity_table(measure, rng, scale, layers).to_parquet(target, index=False)
        written.append(str(target))
    return written


def expected_matrix(path: str) -> np.ndarray:
    """The table's values at [index_a, index_b], rebuilt without the plotting code."""
    table = pd.read_parquet(path)
    matrix = np.full((table["index_a"].max() + 1, table["index_b"].max() + 1), np.nan)
    matrix[table["index_a"], table["index_b"]] = table["value"]
    return matrix


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images]


# ---- inputs: pairs and their order ----


def pair_of(path: str) -> tuple[str, str]:
    a, b = Path(path).parent.name.split("__")
    return a, b


def test_inputs_are_the_compared_pairs_in_plan_order_without_skipped_runs(config):
    kind = figure_kind("similarity")
    spec = entry(config, "similarity_cka")
    paths = kind.inputs(config, "e3", spec)["tables"]
    expected = plan.similarity_pairs(config, "e3")
    assert [pair_of(p) for p in paths] == expected
    # each run with itself first (self_pairs), then with the later runs; pretrained skipped
    assert expected[:2] == [("sgd", "sgd"), ("sgd", "adahessian")] and len(expected) == 4 + 6
    assert all(p.endswith("/cka.parquet") and "/resnet18/seed0/" in p for p in paths)

    with_weights = {**config, "pretrained_weights": "imagenet.pth"}
    paths = kind.inputs(with_weights, "e3", spec)["tables"]
    assert len(paths) == 6 + 15  # 6 runs, each with itself and in pairs
    assert pair_of(paths[-2]) == ("sgd_pretrained", "adahessian_pretrained")
    assert pair_of(paths[-1]) == ("adahessian_pretrained", "adahessian_pretrained")

    subset = entry(config, "similarity_opd", runs=["adahessian_from_sgd", "sgd", "sgd_pretrained"])
    paths = kind.inputs(config, "e3", subset)["tables"]
    assert [pair_of(p) for p in paths] == [
        ("sgd", "sgd"),
        ("sgd", "adahessian_from_sgd"),
        ("adahessian_from_sgd", "adahessian_from_sgd"),
    ]
    assert paths[0].endswith("/opd.parquet")
    distinct = copy.deepcopy(config)  # self_pairs false: distinct pairs only
    distinct["experiments"]["e3"]["analyses"]["similarity"]["self_pairs"] = False
    assert plan.similarity_pairs(distinct, "e3")[0] == ("sgd", "adahessian")
    assert len(plan.similarity_pairs(distinct, "e3")) == 6


def test_seed_null_reads_the_lowest_seed(config):
    seeded = copy.deepcopy(config)
    seeded["experiments"]["e3"]["seeds"] = [3, 1, 2]
    kind = figure_kind("similarity")
    spec = paper_spec.entry(seeded, "e3", "figures", "similarity_cka")
    assert all("/seed1/" in p for p in kind.inputs(seeded, "e3", spec)["tables"])
    spec["seed"] = 2
    assert all("/seed2/" in p for p in kind.inputs(seeded, "e3", spec)["tables"])
    filters = paper_spec.entry(seeded, "e3", "figures", "filters")
    assert figure_kind("filters").inputs(seeded, "e3", filters)["weights"] == [
        "results/runs/e3/resnet18/sgd/seed1/final.safetensors",
        "results/runs/e3/resnet18/adahessian/seed1/final.safetensors",
    ]


# ---- the similarity figure ----


@pytest.mark.parametrize("measure", ["cka", "opd"])
def test_each_heatmap_shows_its_pair_on_one_colour_scale(config, tmp_path, measure):
    kind = figure_kind("similarity")
    spec = entry(config, f"similarity_{measure}")
    # opd is unbounded above: values up to 3 test that the shared maximum is the data's
    scale = 1.0 if measure == "cka" else 3.0
    paths = write_tables(tmp_path, kind.inputs(config, "e3", spec)["tables"], measure, scale)
    look = Look(labels=config["paper"]["labels"], colors=paper_spec.run_colors(config))
    fig = kind.draw(spec, {"tables": paths}, look)

    axes = heatmap_axes(fig)
    assert len(axes) == len(paths) == 10
    # the upper triangle of a matrix of panels, the diagonal included (each network with
    # itself): a row per first run, a column per second run
    runs = plan.similarity_runs(config, "e3")
    rows, cols = {}, {}
    for ax, path in zip(axes, paths, strict=True):
        a, b = pair_of(path)
        np.testing.assert_array_equal(ax.images[0].get_array(), expected_matrix(path))
        r, c = ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start
        assert (runs[r], runs[c]) == (a, b)
        if ax.get_ylabel():
            rows[r] = ax.get_ylabel().replace("\n", " ")
        if ax.get_title():
            cols[c] = ax.get_title().replace("\n", " ")
    assert rows == {r: look.name(run) for r, run in enumerate(runs)}  # each named once
    assert cols == {c: look.name(run) for c, run in enumerate(runs)}
    top = max(np.nanmax(expected_matrix(p)) for p in paths)
    limits = (0.0, 1.0) if measure == "cka" else (0.0, top)
    assert all(ax.images[0].get_clim() == pytest.approx(limits) for ax in axes)
    colorbars = [ax for ax in fig.axes if ax not in axes]  # one, under the lower triangle
    assert [ax.get_xlabel() for ax in colorbars] == [MEASURE_NAMES[measure]]
    assert fig.get_figwidth() == pytest.approx(6.3)
    fig.savefig(tmp_path / "similarity.pdf")


def visible_texts(fig, renderer) -> list:
    """Bounding boxes of every tick label, axis label and title of the figure."""
    boxes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts = [*ax.get_xticklabels(), *ax.get_yticklabels()]
        texts += [ax.xaxis.label, ax.yaxis.label, ax.title]
        boxes += [
            (t.get_text(), t.get_window_extent(renderer))
            for t in texts
            if t.get_visible() and t.get_text()
        ]
    return boxes


@pytest.mark.parametrize("runs", [6, 4, 3, 2])
def test_no_label_overlaps_another_and_layer_ticks_are_thinned(config, tmp_path, runs):
    """21 layers (ResNet18), 3 to 21 panels: no text of the figure runs into another."""
    with_weights = {**config, "pretrained_weights": "imagenet.pth"}
    kind = figure_kind("similarity")
    compared = with_weights["experiments"]["e3"]["analyses"]["similarity"]["runs"][:runs]
    spec = entry(with_weights, "similarity_cka", runs=compared)
    layers = tuple(f"layer{i}" for i in range(21))
    tables = kind.inputs(with_weights, "e3", spec)["tables"]
    assert len(tables) == runs * (runs + 1) // 2  # each run with itself, and in pairs
    paths = write_tables(tmp_path, tables, "cka", layers=layers)
    fig = kind.draw(spec, {"tables": paths}, Look(labels=config["paper"]["labels"]))
    assert len(heatmap_axes(fig)) == len(tables)
    canvas = FigureCanvasAgg(fig)
    with style.styled():  # as save_figure draws it
        canvas.draw()
    renderer = canvas.get_renderer()
    for ax in heatmap_axes(fig):
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            shown = [t.get_text() for t in labels if t.get_visible() and t.get_text()]
            assert not shown or (2 <= len(shown) < 21 and shown[0] == "1")  # numbered from 1
    boxes = visible_texts(fig, renderer)
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1 :]:
            assert not box.overlaps(other_box), (text, other)
    figure_box = fig.bbox
    assert all(
        figure_box.contains(b.x0, b.y0) and figure_box.contains(b.x1, b.y1) for _, b in boxes
    )
    assert fig.get_figwidth() == pytest.approx(6.3) and fig.get_figheight() <= 8.4


def test_color_limits_follow_the_data_where_the_measure_has_no_bound():
    matrices = [np.array([[-0.2, 0.5]]), np.array([[0.1, np.nan]])]
    assert color_limits("cka_unbiased", matrices) == (-0.2, 1.0)
    assert color_limits("opd", matrices) == (0.0, 0.5)
    assert color_limits("svcca", matrices) == (0.0, 1.0)


# ---- the filters figure ----


def write_weights(root: Path, path: str, layer_weight: torch.Tensor) -> str:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"conv1.weight": torch.zeros(2, 3, 7, 7), "layer3.0.conv1.weight": layer_weight}
    tensors["fc.weight"] = torch.zeros(10, 4)
    save_file(tensors, str(target))
    target.with_suffix(".json").write_text(json.dumps({"sha256": sha256_file(target)}))
    return str(target)


def test_filters_show_each_runs_filter_grid_side_by_side(config, tmp_path):
    kind = figure_kind("filters")
    spec = entry(config, "filters")
    paths = kind.inputs(config, "e3", spec)["weights"]
    assert paths == [
        "results/runs/e3/resnet18/sgd/seed0/final.safetensors",
        "results/runs/e3/resnet18/adahessian/seed0/final.safetensors",
    ]
    torch.manual_seed(0)
    weights = [torch.randn(6, 4, 3, 3) for _ in paths]
    files = [write_weights(tmp_path, p, w) for p, w in zip(paths, weights, strict=True)]
    look = Look()
    fig = kind.draw(spec, {"weights": files}, look)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["SGD", "AdaHessian"]
    for ax, weight in zip(shown, weights, strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), filter_grid(weight.double()))
    assert "layer3.0.conv1" in fig.get_suptitle()
    fig.savefig(tmp_path / "filters.pdf")


def test_filters_crop_to_the_first_filters_and_channels_and_say_so(config, tmp_path):
    kind = figure_kind("filters")
    spec = entry(config, "filters", max_filters=2, max_channels=3)
    path = kind.inputs(config, "e3", spec)["weights"][0]
    torch.manual_seed(1)
    weight = torch.randn(6, 4, 3, 3)
    fig = kind.draw(spec, {"weights": [write_weights(tmp_path, path, weight)]}, Look())
    image = next(ax for ax in fig.axes if ax.get_visible()).images[0].get_array()
    assert image.shape == (2 * 4 - 1, 3 * 4 - 1)  # 2 rows, 3 columns of 3x3 tiles, 1 px apart
    # each filter keeps its own scale over all 4 channels, not just the 3 shown
    np.testing.assert_allclose(image, filter_grid(weight.double())[:7, :11])
    assert fig.get_suptitle().endswith("filters 1-2 of 6, input channels 1-3 of 4")
    uncropped = entry(config, "filters", max_filters=6, max_channels=None)
    fig = kind.draw(uncropped, {"weights": [write_weights(tmp_path, path, weight)]}, Look())
    assert fig.get_suptitle() == "conv layer layer3.0.conv1"


def test_filters_refuse_altered_weights_and_unknown_layers(config, tmp_path):
    kind = figure_kind("filters")
    spec = entry(config, "filters")
    path = write_weights(
        tmp_path, kind.inputs(config, "e3", spec)["weights"][0], torch.ones(2, 2, 3, 3)
    )
    with pytest.raises(KeyError, match=r"conv layers: \['conv1', 'layer3.0.conv1'\]"):
        kind.draw({**spec, "layer": "layer4.0.conv1"}, {"weights": [path]}, Look())
    Path(path).with_suffix(".json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        kind.draw(spec, {"weights": [path]}, Look())


# ---- checks ----


def test_filters_draw_the_configured_layer(config):
    spec = figure_kind("filters").job_spec(config, "e3", entry(config, "filters"))
    assert spec["layer"] == config["experiments"]["e3"]["analyses"]["similarity"]["filter_layer"]


def test_repository_entries_pass_their_checks(config):
    for name in ("similarity_cka", "similarity_svcca", "similarity_opd", "filters"):
        raw = config["experiments"]["e3"]["figures"][name]
        figure_kind(raw["kind"]).check(config, "e3", raw, f"experiments.e3.figures.{name}")


@pytest.mark.parametrize(
    ("exp", "kind", "changes", "message"),
    [
        ("e1", "similarity", {"measure": "cka"}, r"needs experiments\.e1\.analyses\.similarity"),
        ("e3", "similarity", {}, r"\.measure is None; allowed: .*\['cka', 'svcca', 'opd'\]"),
        (
            "e3",
            "similarity",
            {"measure": "pwcca"},
            r"x\.measure is 'pwcca'; allowed: the measures computed "
            r"\(experiments\.e3\.analyses\.similarity\.measures\) \['cka', 'svcca', 'opd'\]",
        ),
        (
            "e3",
            "similarity",
            {"measure": "cka", "runs": ["sgd", "adahessian_std_rgb"]},
            r"x\.runs names \['adahessian_std_rgb'\]; allowed: the compared runs",
        ),
        ("e3", "similarity", {"measure": "cka", "seed": 4}, r"x\.seed is 4; allowed: .*\[0\]"),
        (
            "e3",
            "similarity",
            {"measure": "cka", "runs": ["sgd_pretrained"]},  # skipped: nothing, not even itself
            r"no pair of runs to compare among \[\]",
        ),
        (
            "e3",
            "similarity",
            {"measure": "cka", "models": ["resnet18", "vgg16"]},
            r"x\.models: a similarity figure shows one model's pairs",
        ),
        ("e3", "filters", {"runs": ["nope"]}, r"x\.runs names"),
        (
            "e3",
            "filters",
            {"runs": ["sgd_pretrained"]},
            r"every run of \['sgd_pretrained'\] is skipped",
        ),
    ],
)
def test_checks_name_the_key_and_the_allowed_values(config, exp, kind, changes, message):
    with pytest.raises(ConfigError, match=message):
        figure_kind(kind).check(config, exp, {"kind": kind, **changes}, "x")
