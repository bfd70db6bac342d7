"""docs/config.md and the config schema cannot drift: one section per top-level key, its
required/optional mark as the schema says, and every sub-key of fixed-shape sections named."""

from __future__ import annotations

import re

import yaml

from tests.workflow_helpers import REPO

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
DOC = (REPO / "docs" / "config.md").read_text()


def sections() -> dict[str, str]:
    """Top-level key -> text of its `### \\`key\\`` section."""
    parts = re.split(r"^### `(\w+)`\n", DOC, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_one_section_per_schema_key_in_schema_order():
    assert list(sections()) == list(SCHEMA["properties"])


def test_required_marks_follow_the_schema():
    for key, text in sections().items():
        mark = re.match(r"\s*\*(required|optional)\*", text)
        assert mark, key
        assert (mark.group(1) == "required") == (key in SCHEMA["required"]), key


def test_every_sub_key_of_fixed_sections_is_named():
    for key, text in sections().items():
        spec = SCHEMA["properties"][key]
        for sub in spec.get("properties", {}):
            assert f"`{key}.{sub}`" in text, f"{key}.{sub}"


def test_config_yaml_uses_only_documented_keys():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert set(config) <= set(sections())
    assert set(SCHEMA["required"]) <= set(config)
