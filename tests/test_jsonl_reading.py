"""One reading policy for every JSONL file (grace.checkpoint): a torn last line is left out and reported, any other
bad line is an error naming the file and the line, for checkpoints, the report, the comparison, the GPU-hour
measure, `grace extract --input` and the annotated answers alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grace.checkpoint import Checkpoint, LoadReport, read_objects, read_records
from grace.cli import main
from grace.errors import DataError
from grace.records import Exp1Record, Exp2Record

RECORD = Exp2Record(trial_id="t1", model="m", model_revision="r", study="study2", prompt_version="v")


def _line(trial_id: str, status: str = "ok") -> str:
    return RECORD.model_copy(update={"trial_id": trial_id, "status": status}).model_dump_json() + "\n"


def test_a_torn_last_line_is_left_out_reported_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "exp2.jsonl"
    whole = _line("t1") + _line("t2")
    path.write_text(whole + _line("t3")[:40])
    reader = Checkpoint(path, Exp2Record)
    assert list(reader.load(trim=False)) == ["t1", "t2"] and reader.report.truncated == 1
    assert path.read_text().endswith(_line("t3")[:40]), "a reader that must not touch the file leaves it"
    assert [r.trial_id for r in read_records(path, Exp2Record)] == ["t1", "t2"]
    with Checkpoint(path, Exp2Record) as writer:
        assert list(writer.load()) == ["t1", "t2"] and writer.report.truncated == 1
        writer.append(RECORD.model_copy(update={"trial_id": "t3"}))
    assert path.read_text() == whole + _line("t3")
    assert Checkpoint(path, Exp2Record).load() and Checkpoint(path, Exp2Record).report.truncated == 0


def test_a_whole_last_line_without_its_newline_is_a_record(tmp_path: Path) -> None:
    path = tmp_path / "exp2.jsonl"
    path.write_text(_line("t1") + _line("t2").rstrip("\n"))
    ckpt = Checkpoint(path, Exp2Record)
    assert list(ckpt.load(trim=False)) == ["t1", "t2"] and ckpt.report.truncated == 0
    with Checkpoint(path, Exp2Record) as writer:
        writer.load()  # about to append: the last line is ended first
        writer.append(RECORD.model_copy(update={"trial_id": "t3"}))
    assert path.read_text() == _line("t1") + _line("t2") + _line("t3")


@pytest.mark.parametrize(("content", "line"), [
    (_line("t1") + "{not json\n" + _line("t2"), 2),
    (_line("t1") + '{"trial_id": "t2"}\n', 2),  # the last line, ended: not torn, a wrong record
    ("\n" + _line("t1") + "[1, 2]\n" + _line("t2")[:30], 3),  # a bad line before a torn one
], ids=["not-json-mid-file", "wrong-record-last-line", "bad-line-before-a-torn-one"])  # named: ids made
# from the records, which hold a time, differed between xdist workers
def test_any_other_bad_line_is_an_error_naming_file_and_line(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "exp2.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"exp2\.jsonl: line {line}: not a valid Exp2Record"):
        Checkpoint(path, Exp2Record).load()
    assert path.read_text() == content, "the file is left as it was"


def test_lines_per_key_and_superseded(tmp_path: Path) -> None:
    path = tmp_path / "exp2.jsonl"
    path.write_text(_line("t1", "error") + _line("t1") + _line("t2") + _line("t2"))
    ckpt = Checkpoint(path, Exp2Record)
    assert ckpt.load()["t1"].status == "ok"
    assert ckpt.report.done_lines == {"t1": 1, "t2": 2} and ckpt.report.superseded == 2
    assert (ckpt.report.lines, ckpt.report.records) == (4, 2)


def test_json_objects_under_the_same_policy(tmp_path: Path) -> None:
    path = tmp_path / "replies.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": ')
    report = LoadReport()
    assert list(read_objects(path, report)) == [(1, {"a": 1}), (3, {"a": 2})] and report.truncated == 1
    path.write_text('{"a": 1}\n[1]\n{"a": 2}\n')
    with pytest.raises(DataError, match="replies.jsonl: line 2: not a JSON object"):
        list(read_objects(path))


def test_the_report_stops_at_a_bad_line_with_its_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stage = tmp_path / "run" / "toy" / "study1"
    stage.mkdir(parents=True)
    rec = Exp1Record(trial_id="study1-1", model="toy", model_revision="r", study="study1", prompt_version="p",
                     messages=[{"role": "user", "content": "q"}], sampling={}, response="Initial Answer: 2")
    (stage / "exp1.jsonl").write_text(rec.model_dump_json() + "\n" + "garbage\n" + rec.model_dump_json() + "\n")
    assert main(["report", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{stage / 'exp1.jsonl'}: line 2: not a valid Exp1Record" in err and len(err.splitlines()) == 1


def test_extract_input_leaves_out_a_torn_last_line_and_says_so(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"trial_id": "a", "response": "It was bad"}) + "\n" + '{"trial_id": "b", "resp')
    out = tmp_path / "out.jsonl"
    assert main(["extract", "--study", "study2", "--input", str(src), "--output", str(out)]) == 0
    assert "the last line is torn" in capsys.readouterr().out
    assert [json.loads(x)["trial_id"] for x in out.read_text().splitlines()] == ["a"]
