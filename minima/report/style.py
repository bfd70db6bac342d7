"""One look for every figure: fonts, sizes, and one color per optimizer (run label).

A reader compares optimizers across a dozen figures, so each run label keeps its color
everywhere: a fixed map for the optimizers of the paper (Okabe-Ito's color-blind-safe palette,
then Paul Tol's), a deterministic fallback for any other label (CRC-32 of the label picks a
fallback color, so the choice never depends on the process or on which figure is drawn), and
overrides from config (``paper.colors``) that win over both. Lines of different quantities in
one panel differ by line style, never by color.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator, Mapping

import matplotlib

# Run label -> color. Labels are the run names of config.yaml (the optimizer's name, or a
# readable variant of it).
OPTIMIZER_COLORS: dict[str, str] = {
    "sgd": "#0072B2",  # blue
    "sgd_momentum": "#56B4E9",  # sky blue
    "adagrad": "#009E73",  # bluish green
    "rmsprop": "#CC79A7",  # reddish purple
    "adam": "#E69F00",  # orange
    "adahessian": "#D55E00",  # vermillion
    "hybrid": "#000000",  # black
    "sgd_sam": "#332288",  # indigo
    "adam_sam": "#882255",  # wine
}

# Colors for labels outside the fixed map, none close to a fixed one.
FALLBACK_COLORS: tuple[str, ...] = (
    "#44AA99",  # teal
    "#999933",  # olive
    "#AA4499",  # purple
    "#661100",  # brown
    "#CC6677",  # rose
    "#6699CC",  # steel blue
    "#117733",  # dark green
    "#888888",  # grey
)

# Run/optimizer label -> name printed in legends and tables.
DISPLAY_NAMES: dict[str, str] = {
    "sgd": "SGD",
    "sgd_momentum": "SGD+momentum",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "adahessian": "AdaHessian",
    "hybrid": "Hybrid",
    "sam": "SAM",
    "sgd_sam": "SGD+SAM",
    "adam_sam": "Adam+SAM",
}

MODEL_NAMES: dict[str, str] = {
    "lenet5": "LeNet-5",
    "lenet_big": "LeNet (large)",
    "resnet18": "ResNet18",
    "vgg16": "VGG16",
}

# Line styles of the 1st, 2nd, ... quantity drawn in one panel (e.g. training, validation).
LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")

# Physical sizes (inches): figures are included in the PDF at their natural size, so the
# fonts below are the printed sizes next to 10 pt text.
TEXT_WIDTH = 6.3
PANEL_HEIGHT = 2.2
MAX_HEIGHT = 8.4

RC: dict[str, object] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # embed TrueType, so text in the PDF stays text
    "ps.fonttype": 42,
    "savefig.dpi": 200,
}


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """Apply the paper's matplotlib settings inside the block (build and save figures in it)."""
    with matplotlib.rc_context(RC):
        yield


def color_for(label: str, overrides: Mapping[str, str] | None = None) -> str:
    """The color of a run label: config override, else the fixed map, else a hashed fallback."""
    if overrides and label in overrides:
        return overrides[label]
    if label in OPTIMIZER_COLORS:
        return OPTIMIZER_COLORS[label]
    return FALLBACK_COLORS[zlib.crc32(label.encode()) % len(FALLBACK_COLORS)]


def colors_for(labels: Iterable[str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Colors of the labels drawn together in one figure, distinct where it can be.

    Fixed and overridden colors are kept as they are. A hashed fallback that is already taken
    in this figure moves to the next free fallback color, visiting labels in sorted order, so
    the result depends on the set of labels only, never on their order.
    """
    labels = list(dict.fromkeys(labels))
    colors: dict[str, str] = {}
    for label in labels:
        if (overrides and label in overrides) or label in OPTIMIZER_COLORS:
            colors[label] = color_for(label, overrides)
    taken = set(colors.values())
    for label in sorted(set(labels) - set(colors)):
        start = FALLBACK_COLORS.index(color_for(label))
        for offset in range(len(FALLBACK_COLORS)):
            candidate = FALLBACK_COLORS[(start + offset) % len(FALLBACK_COLORS)]
            if candidate not in taken:
                break
        else:  # more labels than colors: reuse the hashed one
            candidate = FALLBACK_COLORS[start]
        colors[label] = candidate
        taken.add(candidate)
    return {label: colors[label] for label in labels}


def display_name(label: str, overrides: Mapping[str, str] | None = None) -> str:
    """Name printed for a run label: config override, else the known name, else the label."""
    if overrides and label in overrides:
        return overrides[label]
    return DISPLAY_NAMES.get(label, label)


def model_name(label: str, overrides: Mapping[str, str] | None = None) -> str:
    """Name printed for a model label (e.g. resnet18 -> ResNet18)."""
    if overrides and label in overrides:
        return overrides[label]
    return MODEL_NAMES.get(label, label)


def linestyle(index: int) -> str:
    """Line style of the ``index``-th quantity of a panel."""
    return LINESTYLES[index % len(LINESTYLES)]
