"""Sharpness in the rho-ball (E4): SAM's first-order estimate and projected gradient ascent."""

from minima.sharpness.ascent import SharpnessResult, ascent_sharpness, sharpness

__all__ = ["SharpnessResult", "ascent_sharpness", "sharpness"]
