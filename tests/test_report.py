"""The data-quality report: checks, fit / not-fit verdicts, variant pairs, plots, Markdown and JSON."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from grace.cli import main
from grace.extract import extract_stage
from grace.records import Exp1Record, Exp2Record, OptionScores
from grace.report.build import build_report
from grace.studies.registry import STUDIES, get_study
from grace.studies.study2 import UTTERANCES

S1 = "Initial Answer: {a}\nProbabilities: 0: {p[0]}%, 1: {p[1]}%, 2: {p[2]}%, 3: {p[3]}%\nKnowledge: {k}"
CELLS = [("1", "1"), ("2", "1"), ("2", "2"), ("3", "1"), ("3", "2"), ("3", "3")]


def _e1(model: str, study: str, tid: str, response: str, finish: str = "stop") -> Exp1Record:
    return Exp1Record(trial_id=tid, model=model, model_revision="r", study=study, prompt_version="p",
                      messages=[{"role": "user", "content": "q"}], sampling={"max_tokens": 64}, response=response,
                      finish_reason=finish, completion_tokens=20, latency_s=0.1)


def _scores(options: tuple[str, ...], probs: list[float]) -> OptionScores:
    p = dict(zip(options, probs, strict=True))
    return OptionScores(prompt="x", options=list(options), token_ids={o: [1] for o in options},
                        logprobs={o: math.log(v) if v > 0 else -99.0 for o, v in p.items()}, probs=p, probs_norm=p,
                        entropy=0.0, argmax=max(p, key=p.get))  # type: ignore[arg-type]


def _e2(model: str, study: str, tid: str, questions: dict[str, OptionScores]) -> Exp2Record:
    return Exp2Record(trial_id=tid, model=model, model_revision="r", study=study, prompt_version="p",
                      questions=questions)


def _write(path: Path, recs: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.model_dump_json() + "\n" for r in recs))


def _study1_stage(run: Path, model: str, n: int = 12, shift: int = 0, exp2: bool = True) -> Path:
    d = run / model / "study1"
    tids = [f"study1-{i}" for i in range(n)]
    bets = [[0, 10, 60, 30], [10, 20, 30, 40], [0, 0, 20, 80]]
    _write(d / "exp1.jsonl", [_e1(model, "study1", t, S1.format(a=(i + shift) % 4, p=bets[(i + shift) % 3],
                                                                  k="yes" if i % 2 else "no"))
                              for i, t in enumerate(tids)])
    pd.DataFrame({"trial_id": tids, "replicate": [0] * n, "access": [CELLS[i % 6][0] for i in range(n)],
                  "observe": [CELLS[i % 6][1] for i in range(n)]}).to_parquet(d / "exp1.parquet")
    if exp2:
        _write(d / "exp2.jsonl", [_e2(model, "study1", t, {
            "prior": _scores(("0", "1", "2", "3"), [0.1, 0.1, 0.1, 0.7]),
            "posterior": _scores(("0", "1", "2", "3"), [0.05, 0.05, 0.6, 0.3]),
            "knowledge": _scores(("yes", "no"), [0.2, 0.8])}) for t in tids])
    extract_stage(d, get_study("study1"))
    return d


def _study2_stage(run: Path, model: str, n: int = 16) -> Path:
    d = run / model / "study2"
    tids = [f"study2-{i}" for i in range(n)]
    _write(d / "exp1.jsonl", [_e1(model, "study2", t, f"{UTTERANCES[i % 8]}\nBecause.") for i, t in enumerate(tids)])
    pd.DataFrame({"trial_id": tids, "replicate": [0] * n,
                  "goal": [("informative", "social", "both")[i % 3] for i in range(n)],
                  "state": [f"{i % 4} heart{'s' if i % 4 != 1 else ''}" for i in range(n)]}).to_parquet(
        d / "exp1.parquet")
    extract_stage(d, get_study("study2"))
    return d


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    r = tmp_path / "run-1"
    _study1_stage(r, "gemma2-27b")
    _study1_stage(r, "gemma2-27b-awq", shift=1)
    _study2_stage(r, "gemma2-27b")
    return r


def test_report_files_verdicts_and_variants(run: Path) -> None:
    md = build_report(run, STUDIES.values())
    out = run / "report"
    assert md == out / "report.md"
    data = json.loads((out / "report.json").read_text())
    s1 = data["models"]["gemma2-27b"]["study1"]
    assert s1["fit"] is True, s1["reasons"]
    assert s1["metrics"]["extracted"]["status"] == {"ok": 12}
    agree = s1["metrics"]["agreement"]
    assert agree["initial_answer~prior"] == {"pairs": 12, "agree": 3, "rate": 0.25}  # answers 0..3, argmax "3"
    assert agree["knowledge~knowledge"]["agree"] == 6
    assert "agreement" not in data["models"]["gemma2-27b"]["study2"]["metrics"]  # no exp2: nothing to compare
    assert data["models"]["gemma2-27b"]["study2"]["fit"] is True
    pair = data["variant_pairs"][0]
    assert (pair["full"], pair["quantized"], pair["study"]) == ("gemma2-27b", "gemma2-27b-awq", "study1")
    for name in ("parse_status.png", "compare_study1.png", "compare_study2.png", "gemma2-27b_study1_posterior.png",
                 "gemma2-27b_study2_utterances.png", "gemma2-27b-awq_study1_posterior.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    text = md.read_text()
    assert "Quantized vs full precision" in text and "quantized variant of gemma2-27b" in text
    assert "![compare_study1.png](compare_study1.png)" in text


def test_not_fit_with_reasons(run: Path) -> None:
    bad = run / "broken" / "study1"
    _study1_stage(run, "broken")
    lines = (bad / "exp1.jsonl").read_text().splitlines()
    (bad / "exp1.jsonl").write_text("\n".join(lines[:-2] + [lines[0]]) + "\n")  # two rows lost, one doubled
    recs = [Exp2Record.model_validate_json(x) for x in (bad / "exp2.jsonl").read_text().splitlines()]
    recs[0].questions["posterior"].probs = {"0": 0.5, "1": 0.5, "2": 0.5, "3": 0.5}
    _write(bad / "exp2.jsonl", recs)
    build_report(run, STUDIES.values())
    r = json.loads((run / "report" / "report.json").read_text())["models"]["broken"]["study1"]
    assert r["fit"] is False
    reasons = " | ".join(r["reasons"])
    assert "10 rows, expected 12; 2 missing" in reasons
    assert "1 keys with more than one completed line" in reasons
    assert "1 question scores with probabilities outside" in reasons
    md = (run / "report" / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("- **broken / study1**:"))
    assert line.startswith("- **broken / study1**: ✗ **not fit**: [exp1: 10 rows, expected 12; 2 missing]"
                           "(../trials.html#model=broken&study=study1&phase=study)"), line  # each reason a link
    assert "- ✗ **FAIL** · exp2 probabilities: [1 question scores" in md and "- ✓ pass · exp1 row count:" in md
    assert "| " not in md.split("## Verdict")[1].split("![")[0], "the verdict is a list: long text never in a table"


def test_report_reads_as_prose_not_python(run: Path) -> None:
    """No dict or list reprs, numbers as people write them, the cut and unread replies one click away."""
    d = run / "gemma2-27b" / "study1"
    lines = (d / "exp1.jsonl").read_text().splitlines()
    cut = json.loads(lines[0])
    cut.update(finish_reason="length", status="truncated")
    (d / "exp1.jsonl").write_text("\n".join([json.dumps(cut), *lines[1:]]) + "\n")
    md = build_report(run, STUDIES.values()).read_text()
    assert not re.search(r"\{'|'\}|\['|'\]", md), "a Python repr in the report"
    assert "finish reasons length 1, stop 11 ([the 1 cut by max_tokens](../trials.html#model=gemma2-27b&" \
           "study=study1&phase=study&finish=length))" in md
    assert "missing: none." in md


def test_unreadable_answers_make_a_model_unfit(tmp_path: Path) -> None:
    run = tmp_path / "r"
    d = run / "toy" / "study2"
    _write(d / "exp1.jsonl", [_e1("toy", "study2", f"t{i}", "zxq vortex", "length") for i in range(5)])
    extract_stage(d, get_study("study2"))
    build_report(run, STUDIES.values())
    r = json.loads((run / "report" / "report.json").read_text())["models"]["toy"]["study2"]
    assert not r["fit"]
    assert any("0.0% of replies fully read" in x for x in r["reasons"])
    assert any("100.0% of replies cut by max_tokens" in x for x in r["reasons"])


def test_missing_extraction_is_a_reason(tmp_path: Path) -> None:
    d = tmp_path / "r" / "m" / "study2"
    _write(d / "exp1.jsonl", [_e1("m", "study2", "t0", "It was bad")])
    build_report(tmp_path / "r", STUDIES.values())
    r = json.loads((tmp_path / "r" / "report" / "report.json").read_text())["models"]["m"]["study2"]
    assert not r["fit"] and "no extracted.jsonl" in r["reasons"][0]


def test_cli_report(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "gemma2-27b / study1: fit" in out and "report.md" in out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
