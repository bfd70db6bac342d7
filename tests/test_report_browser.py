"""The HTML report as a reader sees it: `snakemake --report` of a tiny run, opened in headless
Chromium, every figure and table listed with its caption, every figure's picture shown.

The browser is Debian's `chromium`; the test installs it with apt-get where it can (root), and
is skipped, saying why, elsewhere. tests/report/reader.js is put into a copy of the report and
clicks through it (Results, each experiment, each file's info and view buttons) as a person
would, then writes what the page showed into the page, which Chromium dumps.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess

import pytest

from minima.report import spec as paper_spec
from minima.resource_usage import merged_config
from tests.workflow_helpers import REPO, snakemake

CONFIGS = ("tests/configs/tiny.yaml",)
# the tiny run of this test: E1's training figure and its hyper-parameter table
FIGURES = {"e1": ["grad_norm"]}
TABLES = {"e1": ["hyperparameters"]}


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("headless Chromium (Debian package chromium) is not installed, and apt-get "
                    "cannot install it here (needs root and apt-get)")  # fmt: skip
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    if subprocess.run(install, capture_output=True, env=env, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=900)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"apt-get could not install chromium: {result.stderr.strip()[-300:]}")
    return shutil.which("chromium")


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def _headless(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_report_shows_every_figure_with_its_caption(chromium, tiny_built, tmp_path):
    work = tiny_built  # the tiny workflow, built once for the session (conftest)
    targets = [f"results/figures/{e}/{n}.png" for e, names in FIGURES.items() for n in names]
    targets += [f"results/tables/{e}/{n}.csv" for e, names in TABLES.items() for n in names]
    config = merged_config([REPO / "config.yaml", *(REPO / f for f in CONFIGS)])
    with_claims = [
        e for e in sorted(set(FIGURES) | set(TABLES)) if config["experiments"][e].get("claims")
    ]
    findings = [f"results/findings/{e}/verdicts.csv" for e in with_claims]
    findings += [f"results/figures/{e}/curvature_generalization.png" for e in with_claims]
    targets += findings
    report = tmp_path / "report.html"
    snakemake(work, "--report", str(report), *targets, configfiles=CONFIGS)

    # the reader's script, after the report's own code
    categories = sorted(set(FIGURES) | set(TABLES))
    reader = (REPO / "tests" / "report" / "reader.js").read_text()
    reader = reader.replace("__CATEGORIES__", json.dumps(categories))
    page = report.read_text()
    cut = page.rfind("</body>")
    read = tmp_path / "report_read.html"
    read.write_text(page[:cut] + f"<script>\n{reader}</script>\n" + page[cut:])

    budget = "--virtual-time-budget=60000"  # ms of page time: the clicks wait for rendering
    dom = _headless(chromium, budget, "--dump-dom", read.as_uri())
    logs = re.findall(r'<pre id="reader-log">(\{.*?)</pre>', dom.stdout, flags=re.DOTALL)
    assert logs, f"the page never finished reading: {dom.stderr[-2000:]}"
    seen = json.loads(html.unescape(logs[-1]))
    assert seen["errors"] == []
    rows = {row["file"]: row for row in seen["rows"]}
    assert set(rows) == set(targets)  # every figure and table of the run, nothing else

    for section, names in (("figures", FIGURES), ("tables", TABLES)):
        for exp, entries in names.items():
            title = config["experiments"][exp]["title"]
            for name in entries:
                suffix = "png" if section == "figures" else "csv"
                row = rows[f"results/{section}/{exp}/{name}.{suffix}"]
                caption = paper_spec.default_caption(paper_spec.entry(config, exp, section, name))
                described = row["caption"].split("DESCRIPTION", 1)[1]
                assert caption in described and f"Experiment {exp}: {title}." in described
                if section == "figures":  # the picture itself, at the file's size
                    size = _png_size(work / row["file"])
                    assert (row["image"]["width"], row["image"]["height"]) == size

    assert findings  # the tiny config judges E1's claims: the findings are in the report too
    for file in findings:
        exp = file.split("/")[2]
        assert rows[file]["subcategory"] == "findings"  # beside the experiment's figures
        described = rows[file]["caption"].split("DESCRIPTION", 1)[1]
        assert f"Findings of {exp}: each claim of the study" in described

    shot = tmp_path / "report.png"
    _headless(chromium, budget, f"--screenshot={shot}", "--window-size=1400,900", read.as_uri())
    assert _png_size(shot) == (1400, 900)
