"""Filter grids (known pixel values) and the similarity figures (written to files)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from minima.similarity import conv_weight, filter_grid
from minima.similarity.plots import filter_figure, similarity_heatmap


def test_filter_grid_rgb_layout_and_per_filter_normalization():
    torch.manual_seed(0)
    weight = torch.randn(5, 3, 2, 2)
    weight[1] = torch.arange(12.0).reshape(3, 2, 2) * 10 - 7  # known values, arbitrary scale
    grid = filter_grid(weight)  # auto: rgb for 3 input channels, 3 columns
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1, 3)  # 2 rows x 3 cols of 2x2 tiles, padding 1
    tile = grid[0:2, 3:5]  # filter 1: row 0, column 1
    expected = (np.arange(12.0).reshape(3, 2, 2) / 11).transpose(1, 2, 0)
    np.testing.assert_allclose(tile, expected)
    for k in range(5):
        r, c = divmod(k, 3)
        t = grid[3 * r : 3 * r + 2, 3 * c : 3 * c + 2]
        assert t.min() == 0.0 and t.max() == 1.0  # each filter stretched on its own
    np.testing.assert_array_equal(grid[2, :], 1.0)  # padding row
    np.testing.assert_array_equal(grid[3:5, 6:8], 1.0)  # empty sixth slot


def test_filter_grid_channels_and_mean_modes():
    weight = np.zeros((4, 6, 3, 3))
    weight[2, 5] = np.arange(9.0).reshape(3, 3)  # one non-zero channel in filter 2
    grid = filter_grid(weight)  # auto: a row per filter, a column per input channel
    assert grid.shape == (4 * 4 - 1, 6 * 4 - 1)
    np.testing.assert_allclose(grid[8:11, 20:23], np.arange(9.0).reshape(3, 3) / 8)
    np.testing.assert_array_equal(grid[0:3, 0:3], 0.5)  # a constant filter is mid-grey
    capped = filter_grid(weight, max_filters=3, max_channels=2)
    assert capped.shape == (3 * 4 - 1, 2 * 4 - 1)
    mean = filter_grid(weight, mode="mean", ncols=4)
    assert mean.shape == (3, 4 * 4 - 1)
    np.testing.assert_allclose(mean[:, 8:11], np.arange(9.0).reshape(3, 3) / 8)


def test_filter_grid_errors():
    with pytest.raises(ValueError, match="3 input channels"):
        filter_grid(torch.zeros(2, 4, 3, 3), mode="rgb")
    with pytest.raises(ValueError, match=r"shape \(10, 5\)"):
        filter_grid(torch.zeros(10, 5))


def test_conv_weight_finds_layer_by_name():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 4, 1))
    assert conv_weight(net, "2") is net[2].weight
    with pytest.raises(ValueError, match="conv layers: \\['0', '2'\\]"):
        conv_weight(net, "1")


def table_3x2():
    rows = [(f"a{i}", f"b{j}", i, j, 0.1 * i + 0.2 * j) for i in range(3) for j in range(2)]
    return pd.DataFrame(rows, columns=["layer_a", "layer_b", "index_a", "index_b", "cka"])


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_similarity_heatmap_writes_file(tmp_path, suffix):
    fig = similarity_heatmap(table_3x2(), title="SGD vs AdaHessian")
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, [[0.0, 0.2], [0.1, 0.3], [0.2, 0.4]])  # rows = layers of A
    path = tmp_path / f"heatmap.{suffix}"
    fig.savefig(path)
    assert path.stat().st_size > 1000


def test_similarity_heatmap_needs_value_column_when_ambiguous():
    table = table_3x2().assign(opd=1.0)
    with pytest.raises(ValueError, match="candidate value columns"):
        similarity_heatmap(table)
    assert similarity_heatmap(table, value="opd").axes[0].images[0].get_array().max() == 1.0


def test_filter_figure_writes_file(tmp_path):
    grids = {
        "SGD": filter_grid(torch.randn(8, 3, 3, 3)),
        "AdaHessian": filter_grid(torch.randn(4, 5, 3, 3)),
    }
    fig = filter_figure(grids, title="conv filters")
    path = tmp_path / "filters.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    assert len(fig.axes) == 2
