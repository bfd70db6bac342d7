"""Test-wide settings: one intra-op thread (tiny tensors run faster without thread hand-offs,
and the suite shares two cores with the workflow runs it starts), and the tiny workflow run
that several slow tests read (built once per session: it takes minutes)."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

TINY = ("tests/configs/tiny.yaml",)


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory) -> Path:
    """A working folder where the whole tiny workflow (tests/configs/tiny.yaml, rule all) ran.

    Tests read it and may run Snakemake in it again only where that plans nothing (a report,
    a dry run): each of them sees the outputs of that one build.
    """
    from tests.workflow_helpers import snakemake

    work = tmp_path_factory.mktemp("tiny")
    snakemake(work, configfiles=TINY, timeout=1800)  # minutes; far more on a loaded machine
    return work
