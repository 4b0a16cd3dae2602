"""The trial viewer without a browser: the rows it holds for a run folder (every trial, what was sent and what came
back, joined across stages), its links, the page it writes and the server behind `grace view`. The browser test
(tests/test_ui_browser.py) opens the page in Chromium on a real run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from grace.cli import main
from grace.report.build import build_report
from grace.studies.registry import STUDIES
from grace.view.links import check_link, fragment, localize, served_url
from grace.view.page import read_payload, viewer_html, write_viewer
from grace.view.serve import find_runs, make_server
from tests.test_report import _e1, _scores, _study1_stage, _study2_stage, _write


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """A run of two models: study 1 (Exp 1, Exp 2, extraction) and study 2 (Exp 1, extraction); two of
    model b's six study 1 replies cut by max_tokens (over the 20% limit), one line of its Exp 1 file torn."""
    r = tmp_path / "run-a"
    _study1_stage(r, "a", n=6)
    _study2_stage(r, "a", n=8)
    d = _study1_stage(r, "b", n=6)
    lines = (d / "exp1.jsonl").read_text().splitlines()
    for i in (2, 3):
        cut = json.loads(lines[i])
        cut.update(finish_reason="length", status="truncated", response="Initial Answer: 2\nProbabil")
        lines[i] = json.dumps(cut)
    (d / "exp1.jsonl").write_text("\n".join(lines) + '\n{"trial_id": "study1-9", "mod')
    (r / "run.json").write_text(json.dumps({"status": "completed"}))
    return r


def test_every_trial_is_one_row_with_what_was_sent_and_read(run: Path) -> None:
    data = read_payload(viewer_html([run]))
    rows = data["rows"]
    assert len(rows) == 6 + 8 + 6
    by = {(r["model"], r["study"], r["trial"]): r for r in rows}
    a1 = by["a", "study1", "study1-0"]
    assert a1["exp1"]["messages"] == [{"role": "user", "content": "q"}]
    assert a1["exp1"]["response"].startswith("Initial Answer: 0") and a1["exp1"]["finish"] == "stop"
    assert a1["extracted"]["status"] == "ok" and a1["extracted"]["fields"]["initial_answer"] == 0
    assert a1["exp2"]["questions"]["knowledge"]["probs"] == {"yes": 0.2, "no": 0.8}
    assert a1["exp2"]["questions"]["knowledge"]["argmax"] == "no"
    assert a1["condition"] == {"access": "1", "observe": "1"} and a1["phase"] == "study"
    assert by["a", "study2", "study2-1"]["condition"] == {"goal": "social", "state": "1 heart"}
    assert by["a", "study2", "study2-1"]["exp2"] is None  # study 2 had no Exp 2 here
    cut = by["b", "study1", "study1-2"]
    assert (cut["exp1"]["status"], cut["exp1"]["finish"]) == ("truncated", "length")
    assert data["unreadable"] == [{"path": "run-a/b/study1/exp1.jsonl", "lines": [7]}]  # the torn line, counted
    assert "analysis/" not in data["subtitle"]  # no tables written yet; once they are, the page says where
    (run / "analysis").mkdir()
    (run / "analysis" / "README.md").write_text("codebook")
    assert "tables for R or pandas: analysis/ in the run folder (run-a)" in read_payload(viewer_html([run]))["subtitle"]


def test_a_variant_and_unknown_fields_are_shown_when_present_and_absent_in_older_runs(run: Path) -> None:
    d = run / "a" / "study2"
    lines = [json.loads(x) for x in (d / "exp1.jsonl").read_text().splitlines()]
    for i, rec in enumerate(lines):
        rec["prompt_variant"] = "v2" if i % 2 else "v1"
        rec["option_order"] = [3, 1, 2]
    (d / "exp1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for old in (run / m / "study1" / f for m in ("a", "b") for f in ("exp1.jsonl", "exp2.jsonl", "extracted.jsonl")):
        if old.exists():  # as a run from before prompt variants wrote them
            recs = [{k: v for k, v in json.loads(x).items() if k != "prompt_variant"}
                    for x in old.read_text().splitlines() if x.strip().startswith("{") and x.strip().endswith("}")]
            old.write_text("".join(json.dumps(x) + "\n" for x in recs))
    rows = read_payload(viewer_html([run]))["rows"]
    variants = {r["trial"]: r["variant"] for r in rows if r["study"] == "study2" and r["exp1"]}
    assert variants["study2-0"] == "v1" and variants["study2-1"] == "v2"
    assert all(r["variant"] is None for r in rows if r["study"] == "study1")  # an older record has none
    assert next(r for r in rows if r["trial"] == "study2-0")["exp1"]["more"] == {"option_order": [3, 1, 2]}


def test_preflight_trials_and_replicates_are_rows_and_exp2_rides_on_the_first_replicate(tmp_path: Path) -> None:
    r = tmp_path / "run-p"
    _study1_stage(r, "m", n=2)
    pf = r / "m" / "preflight" / "study1"
    _write(pf / "exp1.jsonl", [_e1("m", "study1", "study1-0", "Initial Answer: 1"),
                               _e1("m", "study1", "study1-0", "Initial Answer: 2").model_copy(update={"replicate": 1})])
    rows = read_payload(viewer_html([r]))["rows"]
    pre = [x for x in rows if x["phase"] == "preflight"]
    assert [(x["trial"], x["replicate"]) for x in pre] == [("study1-0", 0), ("study1-0", 1)]
    assert all(x["exp2"] is None and x["extracted"] is None for x in pre)


def test_the_page_is_one_file_that_loads_nothing(run: Path) -> None:
    path = write_viewer(run)
    html = path.read_text()
    assert path == run / "trials.html"
    assert "default-src 'none'" in html  # the browser refuses any fetch, image or frame from elsewhere
    for marker in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert marker not in html.split('<script id="grace-data"')[0].replace(
            'content="width=device-width', ""), marker  # nothing before the data refers elsewhere
    assert "__DATA__" not in html and "__JS__" not in html
    assert read_payload(html)["runs"] == [{"name": "run-a", "verdicts": []}]


def test_verdicts_link_to_the_trials_behind_each_reason(run: Path) -> None:
    build_report(run, STUDIES.values())
    (verdicts,) = [r["verdicts"] for r in read_payload(viewer_html([run]))["runs"]]
    fit = {(v["model"], v["study"]): v for v in verdicts}
    assert fit["a", "study1"]["fit"] and not fit["a", "study1"]["reasons"]
    b = fit["b", "study1"]
    assert not b["fit"], b
    assert [x["link"] for x in b["reasons"]] == ["#model=b&study=study1&phase=study&finish=length"], b["reasons"]
    assert b["reasons"][0]["text"].startswith("exp1: 33.3% of replies cut by max_tokens")


def test_links_carry_filters_and_leave_the_prefect_ui_only_for_a_served_viewer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_link("m", "study1", "exp1", "truncation") == \
        "../trials.html#model=m&study=study1&phase=study&finish=length"
    assert check_link("m", "study1", "extracted", "parse rate").endswith("ext=%21ok")
    assert fragment(cond="access 3, observe 1") == "#cond=access%203%2C%20observe%201"
    with pytest.raises(ValueError, match="not a filter"):
        fragment(colour="red")
    md = "[30% cut](../trials.html#model=m&finish=length) and [report](report.md)"
    assert localize(md, None) == "30% cut and [report](report.md)"
    assert localize(md, "http://h:1/r/trials.html") == ("[30% cut](http://h:1/r/trials.html#model=m&finish=length) "
                                                        "and [report](report.md)")
    monkeypatch.delenv("GRACE_VIEW_URL", raising=False)
    assert served_url(tmp_path / "results" / "r1") is None
    monkeypatch.setenv("GRACE_VIEW_URL", "http://127.0.0.1:4300/")
    monkeypatch.setenv("GRACE_VIEW_ROOT", str(tmp_path / "results"))
    assert served_url(tmp_path / "results" / "r1") == "http://127.0.0.1:4300/r1/trials.html"
    assert served_url(tmp_path / "elsewhere" / "r1") is None  # not under the served folder: no link


@pytest.fixture()
def served(tmp_path: Path, run: Path) -> Iterator[str]:
    httpd = make_server(tmp_path, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_server_lists_runs_and_serves_each_viewer_fresh_and_nothing_else(served: str, run: Path,
                                                                             tmp_path: Path) -> None:
    assert find_runs(tmp_path) == [run]
    index = httpx.get(served + "/").text
    assert 'href="/run-a/trials.html"' in index and "completed" in index
    first = read_payload(httpx.get(served + "/run-a/trials.html").text)
    assert len(first["rows"]) == 20
    _study2_stage(run, "b", n=4)  # the run goes on: the next request sees it
    assert len(read_payload(httpx.get(served + "/run-a/trials.html").text)["rows"]) == 24
    both = httpx.get(served + "/trials.html", params=[("runs", "run-a"), ("runs", "run-a")])
    assert both.status_code == 200
    for bad in ("/../etc/passwd", "/run-a/a/study1/exp1.jsonl", "/run-a/run.json", "/%2e%2e/trials.html",
                "/nowhere/trials.html"):
        assert httpx.get(served + bad).status_code == 404, bad
    assert not (run / "trials.html").exists()  # serving writes nothing into the run folder


def test_a_bad_line_mid_file_is_an_error_naming_it_as_every_reader_says(served: str, run: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The one JSONL reading policy (grace.checkpoint): only a torn last line is left out and counted."""
    path = run / "a" / "study2" / "exp1.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    answer = httpx.get(served + "/run-a/trials.html")
    assert answer.status_code == 500 and f"{path}: line 2: not JSON" in answer.text, answer.text
    assert main(["view", str(run), "--no-serve"]) == 2
    assert f"{path}: line 2: not JSON" in capsys.readouterr().err and not (run / "trials.html").exists()


def test_grace_view_writes_the_file_for_one_run_or_several_side_by_side(run: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(run), "--no-serve"]) == 0
    assert (run / "trials.html").exists() and "opens in any browser" in capsys.readouterr().out
    other = tmp_path / "run-b"
    _study2_stage(other, "a", n=3)
    assert main(["view", str(run), str(other), "--no-serve"]) == 0
    both = read_payload((tmp_path / "trials-run-a+run-b.html").read_text())
    assert {r["run"] for r in both["rows"]} == {"run-a", "run-b"} and len(both["runs"]) == 2
    assert main(["view", str(tmp_path / "nothing-here"), "--no-serve"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_each_prompt_wording_of_a_trial_is_a_row_of_its_own_with_its_own_exp2(run: Path) -> None:
    """Records of one trial and replicate in two wordings share trial_id and replicate: neither may hide the other."""
    d = run / "a" / "study2"
    first = json.loads((d / "exp1.jsonl").read_text().splitlines()[0])
    other = {**first, "prompt_variant": "everyday", "response": "said in the everyday wording"}
    with (d / "exp1.jsonl").open("a") as f:
        f.write(json.dumps(other) + "\n")
    rows = [r for r in read_payload(viewer_html([run]))["rows"]
            if (r["model"], r["study"], r["trial"], r["replicate"]) == ("a", "study2", first["trial_id"],
                                                                         first.get("replicate", 0))]
    assert sorted(str(r["variant"]) for r in rows) == sorted([str(first.get("prompt_variant")), "everyday"])
    assert next(r for r in rows if r["variant"] == "everyday")["exp1"]["response"] == "said in the everyday wording"


def test_a_rotated_question_shows_each_rotation_as_sent_not_the_raw_record(run: Path) -> None:
    """Exp 2 scored the yes/no list in both orders: the detail pane gets one compact line per rotation (listed
    first, top choice, its p, mass), and the record's raw `rotations` is not repeated under "more"."""
    d = run / "a" / "study1"
    lines = (d / "exp2.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["rotations"] = {"knowledge": [json.loads(_scores(("yes", "no"), [0.7, 0.3]).model_dump_json()),
                                      json.loads(_scores(("no", "yes"), [0.9, 0.1]).model_dump_json())]}
    lines[0] = json.dumps(rec)
    (d / "exp2.jsonl").write_text("\n".join(lines) + "\n")
    row = next(r for r in read_payload(viewer_html([run]))["rows"]
               if (r["model"], r["study"], r["trial"]) == ("a", "study1", rec["trial_id"]))
    rots = row["exp2"]["rotations"]["knowledge"]
    assert [(x["order"], x["first"], x["argmax"]) for x in rots] == [(["yes", "no"], "yes", "yes"),
                                                                    (["no", "yes"], "no", "no")]
    assert [x["p_argmax"] for x in rots] == [0.7, 0.9]
    assert "rotations" not in row["exp2"]["more"]
    assert row["exp2"]["questions"]["knowledge"]["probs"] == {"yes": 0.2, "no": 0.8}  # the pooled one, unchanged
