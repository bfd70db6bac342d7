"""The per-rule conda environments (envs/*.yaml): each parses, and pins with == every package
that its rules' scripts import, directly or through the library modules they import.

Imports are read from the code (every import statement, followed through ``minima``); module
names map to distribution names through the installed packages' metadata, so nothing here lists
which script needs what.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflow_helpers import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
# Provided by Snakemake itself to a script job (its preamble puts its own sources on the path)
PROVIDED = {"snakemake"}
# Packages a module needs without importing them: pandas' parquet I/O imports pyarrow itself
IMPLICIT = {"parquet": "pyarrow"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_pins(path: Path) -> dict[str, str]:
    """Package -> version of every ``name==version`` in an env file (pip or conda section)."""
    spec = yaml.safe_load(path.read_text())
    pins: dict[str, str] = {}
    entries: list[str] = []
    for dep in spec["dependencies"]:
        entries += dep["pip"] if isinstance(dep, dict) else [dep]
    for entry in entries:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*(\S+)\s*", entry)
        if match:
            pins[_normalize(match.group(1))] = match.group(2)
    return pins


def rule_scripts() -> dict[str, tuple[str | None, Path]]:
    """rule -> (conda env file or None, script) for every rule that runs a script."""
    rules = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        blocks = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.MULTILINE)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            body = re.split(r"^\S", body, maxsplit=1, flags=re.MULTILINE)[0]  # rule's own lines
            script = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", body, re.MULTILINE)
            conda = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", body, re.MULTILINE)
            if script:
                env = (smk.parent / conda.group(1)).resolve() if conda else None
                rules[name] = (env, (smk.parent / script.group(1)).resolve())
    return rules


# Modules of scripts/ that the rule scripts import (Snakemake puts scripts/ on sys.path).
SCRIPT_HELPERS = frozenset(p.stem for p in (REPO / "scripts").glob("_*.py"))
LOCAL = SCRIPT_HELPERS | {"minima"}


def _module_file(module: str) -> Path | None:
    """The repository file of a local module (``minima.x.y`` or a scripts/ helper like ``_job``)."""
    base = REPO / "scripts" if module in SCRIPT_HELPERS else REPO
    path = base.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def third_party_imports(script: Path) -> frozenset[str]:
    """Top-level names of every non-standard, non-local module the script may import."""
    seen: set[Path] = set()
    todo = [script]
    found: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_text()
        found |= {package for word, package in IMPLICIT.items() if word in text}
        package = _module_name(path) if path.is_relative_to(REPO / "minima") else ""
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside the library
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                # `from pkg import sub` may name a submodule: follow it too
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                local = _module_file(name) if name.split(".")[0] in LOCAL else None
                if local is not None:
                    todo.append(local)
                elif name.split(".")[0] not in LOCAL:
                    found.add(name.split(".")[0])
    return frozenset(name for name in found if name not in sys.stdlib_module_names) - PROVIDED


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    """The installed distribution that provides a top-level module (e.g. yaml -> pyyaml)."""
    names = _distributions().get(module)
    if not names:
        return _normalize(module)  # e.g. pyarrow, imported by name only through pandas
    return _normalize(names[0])


def test_every_env_file_parses_and_pins_with_double_equals():
    assert ENVS
    for path in ENVS:
        spec = yaml.safe_load(path.read_text())
        assert isinstance(spec, dict) and spec.get("dependencies"), path.name
        pip = [dep for dep in spec["dependencies"] if isinstance(dep, dict)]
        for entry in [e for dep in pip for e in dep["pip"]]:
            assert "==" in entry, f"{path.name}: {entry!r} is not pinned with =="


def test_env_pins_agree_with_the_tested_requirements():
    """A conda env holds the versions the test suite runs with (requirements.txt)."""
    required = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            required[_normalize(match.group(1))] = match.group(2)
    for path in ENVS:
        for package, version in env_pins(path).items():
            if package in required:
                assert version == required[package], f"{path.name}: {package}=={version}"


RULES = rule_scripts()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_env_pins_what_its_script_imports(rule):
    env, script = RULES[rule]
    assert env is not None, f"rule {rule} runs {script.name} but declares no conda env"
    assert env.is_file(), f"rule {rule}: {env} does not exist"
    pins = env_pins(env)
    needed = {distribution(module) for module in third_party_imports(script)}
    missing = sorted(needed - set(pins))
    assert not missing, f"{env.name} (rule {rule}, {script.name}) does not pin {missing}"


def test_import_scan_follows_the_library():
    """The scan sees through _job and minima: train.py imports torch only via the library."""
    imports = third_party_imports(REPO / "scripts" / "train.py")
    assert {"torch", "numpy", "pandas", "safetensors", "pyarrow"} <= imports
    assert not {"minima", "_job", "os", "json"} & imports
    assert distribution("yaml") == "pyyaml"
