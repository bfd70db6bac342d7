"""Test-wide settings: one intra-op thread (tiny tensors run faster without thread hand-offs,
and the suite shares two cores with the workflow runs it starts)."""

import torch

torch.set_num_threads(1)
