"""Findings: the studies' claims judged from the runs (claims, verdicts, reproduced, tau)."""
