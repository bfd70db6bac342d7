"""The conventions a Snakemake user looks for: licence, catalog usage, changelog version."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.workflow_helpers import REPO

README = (REPO / "README.md").read_text()


def test_licence_is_mit_and_readme_says_so():
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")
    assert "MIT licence (`LICENSE`)" in README


def test_catalog_usage_matches_the_readme():
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    flags = usage["mandatory-flags"]["flags"]
    assert f"snakemake {flags}" in README  # the README's own command line
    profiles = re.findall(r"--profile (profiles/[\w-]+)", usage["mandatory-flags"]["desc"])
    assert profiles
    for profile in profiles:
        assert (REPO / profile / "config.v8+.yaml").is_file(), profile
        assert profile in README, profile
    # conda works (every rule names a pinned env that exists); the report is documented
    deployment = usage["software-stack-deployment"]
    assert deployment["conda"] is True and not deployment["apptainer"]
    rules = "".join(smk.read_text() for smk in (REPO / "rules").glob("*.smk"))
    envs = set(re.findall(r'"\.\./(envs/\w+\.yaml)"', rules))
    assert envs and all((REPO / env).is_file() for env in envs)
    assert usage["report"] is True and "snakemake --report report.html" in README


def test_changelog_names_the_version_of_pyproject():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == version
