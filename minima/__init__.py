"""minima: data, models, optimizers, training and curvature analyses for the paper workflow.

The library never imports Snakemake and never reads paths it was not given: the rule
scripts in ``scripts/`` do the I/O glue and call in here.
"""

__version__ = "0.1.0"
