"""Every number in a generated findings paragraph is a cell of its findings table (the
paragraph is parsed back from the .tex), and the verdict tally matches the table's rows."""

import re

import numpy as np
import pandas as pd

from minima.findings import claims as claims_mod
from minima.findings.job import findings
from minima.findings.quantities import RunData
from minima.plan import RunKey

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def table_rows(table_tex: str) -> dict[str, list[str]]:
    """Claim id -> the cells of its row, from a findings tabular."""
    body = table_tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    rows = {}
    for line in body.strip().splitlines():
        cells = [c.strip() for c in line.rstrip().removesuffix(r"\\").split(" & ")]
        rows[cells[0]] = cells
    return rows


def paragraph_claims(section_tex: str, ids: list[str]) -> dict[str, str]:
    """Claim id -> its sentence in the findings paragraph."""
    paragraph = section_tex.split(r"\paragraph{Findings.}", 1)[1].split("\n\n", 1)[0]
    # the closing pointer to the table is no claim's (its label holds the experiment's digit)
    paragraph = re.sub(r"\s*Table~\\ref\{[^}]*\} lists them\.\s*$", "", paragraph)
    starts = sorted((paragraph.index(f"{cid} ("), cid) for cid in ids)
    out = {}
    for (start, cid), nxt in zip(starts, [*starts[1:], (len(paragraph), None)], strict=True):
        out[cid] = paragraph[start : nxt[0]]
    return out


def check_paragraph_against_table(section_tex: str, table_tex: str) -> int:
    """Assert each number of each claim's sentence is in that claim's row; return how many."""
    rows = table_rows(table_tex)
    checked = 0
    for cid, sentence in paragraph_claims(section_tex, list(rows)).items():
        cell_numbers = {n for cell in rows[cid] for n in NUMBER.findall(cell)}
        numbers = NUMBER.findall(sentence.replace(cid, "", 1))
        missing = [n for n in numbers if n not in cell_numbers]
        assert not missing, f"{cid}: {missing} in the paragraph but not in its table row"
        checked += len(numbers)
    tally = re.search(r"(\d+) claims? tested \(([^)]*)\)", section_tex)
    words = ("supported", "contradicted", "inconclusive", "not run")
    judged = [c for c in rows.values() if any(rf"\textbf{{{w}" in c[-1] for w in words)]
    assert int(tally.group(1)) == len(judged)
    for count, word in re.findall(
        r"(\d+) (supported|contradicted|inconclusive|not run)", tally.group(2)
    ):
        shown = sum(r"\textbf{" + word in cells[-1] for cells in rows.values())
        assert shown == int(count), (word, shown, count)
    return checked


def _data():
    rng = np.random.default_rng(0)
    data = {}
    for run, base in (("a", 0.95), ("b", 0.90), ("c", 0.80)):
        for seed in range(4):
            acc = base + rng.normal(0, 0.01)
            frame = pd.DataFrame(
                {
                    "epoch": [1, 2],
                    "step": [5, 10],
                    "train_acc": [acc, acc + 0.03],
                    "test_acc": [acc - 0.01, acc],
                    "train_seconds": [1.0, 2.0 + seed + (run == "b")],
                }
            )
            data[RunKey("x", "m", run, seed)] = RunData(metrics=frame)
    return data


def test_every_number_of_the_paragraph_is_a_table_cell():
    entries = {
        "X-C1": {
            "statement": "a beats b by 5 points.",
            "source": "Table 1",
            "quantity": {"name": "test_acc"},
            "comparison": {"kind": "order", "runs": ["a", "b", "c"], "direction": "greater"},
            "reported": [{"run": "a", "mean": 0.951, "std": 0.004, "n": 10}],
        },
        "X-C2": {
            "statement": "b is slower than a.",
            "source": "Table 2",
            "quantity": {"name": "train_seconds"},
            "comparison": {
                "kind": "ratio",
                "pairs": [["b", "a"]],
                "direction": "greater",
                "threshold": 1.0,
            },
        },
        "X-C3": {
            "statement": "Every run exceeds 85% test accuracy.",
            "source": "Table 1",
            "quantity": {"name": "test_acc"},
            "comparison": {
                "kind": "every",
                "runs": ["a", "b", "c"],
                "direction": "greater",
                "threshold": 0.85,
            },
        },
        "X-C4": {
            "statement": "d beats a.",
            "source": "Table 3",
            "quantity": {"name": "test_acc"},
            "comparison": {"kind": "difference", "pairs": [["d", "a"]], "direction": "greater"},
        },
    }
    config = {
        "experiments": {
            "x": {
                "models": [{"name": "lenet5", "label": "m"}],
                "runs": {"a": {}, "b": {}, "c": {}, "d": {}},
                "claims": entries,
            }
        }
    }
    claims = claims_mod.parse_claims(config, "x")
    out = findings(
        "x",
        claims,
        _data(),
        models=["m"],
        run_names=["a", "b", "c", "d"],
        skipped={"d": "its weights file is missing (3 files expected)"},
        init={},
        stand_in=None,
        paths={"table": "t.tex", "reproduced": "r.tex", "correlation": "c.tex", "figure": "f.pdf"},
    )
    verdicts = out["verdicts"].set_index("claim")["verdict"].to_dict()
    assert verdicts == {
        "X-C1": "supported",
        "X-C2": "supported",
        "X-C3": "contradicted",
        "X-C4": "not run",
    }
    checked = check_paragraph_against_table(out["section"], out["table_tex"])
    assert checked >= 10
    assert r"\input{t.tex}" in out["section"] and r"\includegraphics{f.pdf}" in out["section"]


def test_a_number_typed_into_the_prose_is_caught():
    table = "\n".join(
        [
            r"\begin{tabular}{l}",
            r"\toprule",
            r"Claim & Ours \\",
            r"\midrule",
            r"X-C1 & +0.05, n = 3 & \textbf{supported} \\",
            r"\bottomrule",
            r"\end{tabular}",
        ]
    )
    section = (
        r"\paragraph{Findings.} 1 claim tested (1 supported). "
        "X-C1 (a): supported; ours: +0.07, n = 3.\n\n"
    )
    try:
        check_paragraph_against_table(section, table)
    except AssertionError as error:
        assert "+0.07" in str(error)
    else:
        raise AssertionError("a number absent from the table passed the check")
