"""Loss landscapes along chosen directions (Li et al. 2018): 1D lines and 2D planes."""

from minima.landscape.directions import (
    eigen_directions,
    filter_normalize,
    gradient_eigen_directions,
    random_direction,
)
from minima.landscape.surface import landscape_1d, landscape_2d

__all__ = [
    "eigen_directions",
    "filter_normalize",
    "gradient_eigen_directions",
    "landscape_1d",
    "landscape_2d",
    "random_direction",
]
