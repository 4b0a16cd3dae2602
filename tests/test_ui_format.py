"""What the Prefect UI shows, without the UI: numbers for reading, plots inlined as data URIs within a size
budget, the run summary's places and links, the comparison's tables (the browser test renders them for real)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from grace.compare.report import compare_run, ranking_rows
from grace.manifests.build import pvc_name
from grace.manifests.settings import load_cluster_settings
from grace.report.build import build_report
from grace.report.inline import MAX_WIDTH, inline_images, png_data_uri
from grace.report.summary import ArtifactLink, run_summary
from grace.studies.registry import STUDIES
from grace.ui_format import cell, counts, interval, md_table, readable_rows, results_location, sig
from tests.test_compare import study1_rows, write_exp2, write_extracted
from tests.test_report import _study1_stage, _study2_stage

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


# --- numbers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("x", "text"), [
    (0.43974123456789, "0.440"), (27.53, "27.5"), (12345.6, "12300"), (0.000123456, "0.000123"), (3, "3"),
    (-0.0051234, "-0.00512"), (0.0, "0"), (None, "—"), (float("nan"), "—"), (1.5e-9, "1.50e-09"), (1.0, "1.00"),
])
def test_three_significant_digits(x, text) -> None:
    assert sig(x) == text


def test_intervals_cells_and_table_rows() -> None:
    assert interval((0.43912345, 0.4401234)) == "[0.439, 0.440]"
    assert interval(None) == ""
    assert cell([0.1234567, 0.98765]) == "[0.123, 0.988]"
    assert cell({"ok": 0.123456, "failed": 2}) == "ok 0.123, failed 2"
    assert counts('{"truncated": 10, "error": 2}') == "truncated 10, error 2" and counts("{}") == "—"
    rows = readable_rows([{"model": "toy", "wall_s": 12.3456789, "ok": 10, "ci": (1.23456, 2.34567), "x": None}])
    assert rows == [{"model": "toy", "wall_s": "12.3", "ok": "10", "ci": "[1.23, 2.35]", "x": "—"}]


def test_no_empty_table() -> None:
    assert md_table(["a", "b"], [], empty="Nothing: no trial had usable bets.") == \
        ["_Nothing: no trial had usable bets._"]
    assert md_table(["a", "b"], [["x|y", 0.123456]], empty="-") == ["| a | b |", "|---|---|", "| x\\|y | 0.123 |"]


# --- plots as data URIs ---------------------------------------------------------------------------------

def _plot(path: Path, width_in: float, height_in: float, dpi: int, noise: bool = False) -> Path:
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    if noise:  # a plot that compresses badly: many distinct colours
        ax.imshow(np.random.default_rng(0).random((300, 400, 3)))
    else:
        ax.bar(["a", "b", "c"], [1, 3, 2])
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _decoded(uri_b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri_b64)))


def test_small_plot_is_inlined_byte_for_byte(tmp_path: Path) -> None:
    png = _plot(tmp_path / "bars.png", 6, 3, 90)
    md = inline_images("# r\n\n![bars.png](bars.png)\n", tmp_path)
    (b64,) = DATA_URI.findall(md)
    assert base64.b64decode(b64) == png.read_bytes()
    assert "](bars.png)" not in md


def test_large_plot_is_scaled_down_to_its_share_of_the_budget(tmp_path: Path) -> None:
    _plot(tmp_path / "big.png", 24, 16, 100, noise=True)  # 2400 x 1600, noisy
    raw = (tmp_path / "big.png").stat().st_size
    md = inline_images("![a](big.png)\n\n![b](big.png)\n![c](other.png)", tmp_path, max_total=600_000)
    uris = DATA_URI.findall(md)
    assert len(uris) == 2, "the same plot twice is inlined twice"
    im = _decoded(uris[0])
    assert im.width <= MAX_WIDTH and im.width / im.height == pytest.approx(1.5, rel=0.01)
    assert len(uris[0]) <= 300_000 < raw * 4 / 3, "each of the 2 plots gets half of the 600 kB budget"
    assert "_(plot `other.png` was not written)_" in md


def test_plot_that_cannot_fit_is_left_out_with_a_note(tmp_path: Path) -> None:
    _plot(tmp_path / "big.png", 24, 16, 100, noise=True)
    assert png_data_uri(tmp_path / "big.png", max_bytes=2_000) is None
    md = inline_images("![a](big.png)", tmp_path, max_total=2_000)
    assert "data:" not in md and "left out here: over this page's size budget" in md


def test_report_artifact_inlines_every_plot(tmp_path: Path) -> None:
    run = tmp_path / "run-1"
    _study1_stage(run, "m1")
    _study2_stage(run, "m1")
    md_path = build_report(run, STUDIES.values())
    on_disk = md_path.read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", on_disk)
    assert len(refs) >= 4 and all("/" not in r for r in refs), "report.md keeps its relative links"
    md = inline_images(on_disk, md_path.parent)
    assert len(DATA_URI.findall(md)) == len(refs) and not re.search(r"\]\([^)d][^)]*\.png\)", md)
    assert str(tmp_path) not in md, "no absolute path of the worker's disk"
    assert all(_decoded(b).width > 0 for b in DATA_URI.findall(md))


# --- the run summary: places and links ------------------------------------------------------------------

def _run_folder(parent: Path) -> Path:
    run = parent / "ruby-run-1234abcd"
    for rel in ("toy/study1/exp1.jsonl", "toy/study1/exp1.parquet", "report/report.md", "report/a.png",
                "report/b.png", "run.json", "logs/vllm-toy.log"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text("x")
    return run


SUMMARY = [{"model": "toy", "study": "study1", "experiment": "exp1", "total": 10, "ok": 10, "failed": 0,
            "other": "{}", "wall_s": 3.14159265, "rows_per_s": 3.18309886}]


def test_run_summary_in_the_checkout_names_the_relative_folder(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "results")
    links = [ArtifactLink("grace-report", "the verdict", "/v2/artifacts/artifact/123"),
             ArtifactLink("grace-toy-stages", "rows per stage")]
    md = run_summary(run, SUMMARY, {}, links, location=results_location(run, tmp_path))
    assert "Results: `results/ruby-run-1234abcd/` in the Grace checkout" in md
    assert "file:" not in md and str(tmp_path) not in md
    # the only links: pages of the Prefect UI, from wherever it is served; no viewer served: its file and command
    assert re.findall(r"\]\(([^)]*)\)", md) == ["/v2/artifacts/artifact/123"]
    assert "- [grace-report](/v2/artifacts/artifact/123): the verdict" in md and "- `grace-toy-stages`: rows" in md
    assert "the trial viewer is `trials.html` in the run folder" in md
    assert "serve it with `grace view results/ruby-run-1234abcd`" in md
    assert "| toy | study1 | exp1 | 10 | 10 | 0 | — | 3.14 | 3.18 | - |" in md
    assert "- `report/`: report.md, 2 PNG plot(s)" in md and "- `./`: run.json" in md
    assert "**Tables:**" not in md  # no analysis/ folder yet
    (run / "analysis").mkdir()
    (run / "analysis" / "README.md").write_text("codebook")
    served = run_summary(run, SUMMARY, {}, links, viewer_url="http://127.0.0.1:4300/ruby-run-1234abcd/trials.html")
    assert "[open the trial viewer](http://127.0.0.1:4300/ruby-run-1234abcd/trials.html)" in served
    assert "**Tables:** `analysis/` in the run folder" in served and "- `analysis/`: README.md" in served


def test_run_summary_lists_each_models_preflight(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "results")
    for model, passed, checks in (("toy", True, [{"name": "extraction", "passed": False, "fatal": False,
                                                  "detail": "study1: 0 of 2 read (accepted)"}]),
                                  ("gemma", False, [])):
        (run / model / "preflight").mkdir(parents=True, exist_ok=True)
        (run / model / "preflight" / "preflight.json").write_text(json.dumps(
            {"model": model, "passed": passed, "reason": "" if passed else "chat roles: System role not supported",
             "wall_s": 12.345, "checks": checks}))
    md = run_summary(run, SUMMARY, {}, location=results_location(run, tmp_path))
    assert "## Preflight" in md
    assert "- **gemma**: ✗ **stopped**: chat roles: System role not supported" in md
    assert "- **toy**: ✓ passed in 12.3 s (noted: extraction: study1: 0 of 2 read (accepted))" in md


def test_run_summary_outside_the_checkout_and_with_nothing_finished(tmp_path: Path) -> None:
    run = tmp_path / "elsewhere" / "r1"
    run.mkdir(parents=True)
    md = run_summary(run, [], {"toy": "server did not start"}, location=results_location(run, ROOT))
    assert f"Results: `{run.resolve()}` on the worker's machine." in md
    assert "_No stage finished: every model failed (below)._" in md and "- **toy**: server did not start" in md
    assert "_The run folder holds no result files yet._" in md


def test_run_summary_on_the_cluster_names_the_pvc(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_cluster_settings()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    loc = results_location(Path(settings.results_mount) / "night-run-1")
    assert loc.on_cluster
    assert loc.where == (f"PVC `{pvc_name(settings, 'results')}` (namespace `{settings.namespace}`), folder "
                         f"`night-run-1/` (mounted at `{settings.results_mount}` in the runner pods)")
    assert "grace-results" in loc.where
    assert loc.fetch == "grace archive --run-id night-run-1 --from-cluster"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert not results_location(Path(settings.results_mount) / "night-run-1").on_cluster


# --- the comparison's tables ----------------------------------------------------------------------------

LIKENESS = re.compile(r"\d/8 findings \[\d+, \d+\]|JS [\d.]+ \[[\d.]+, [\d.]+\]|—|not compared \([a-z-]+\)")


def test_comparison_tables_read_sensibly(tmp_path: Path, cfg) -> None:
    from tests.test_compare import PASS, STUDY1, STUDY2, study2_exp2_rows

    s2 = STUDY2.load(ROOT / "data" / "study2.csv")[:60]
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2", study2_exp2_rows(s2, lambda t: np.full(8, 1 / 8)))
    trials = STUDY1.load(ROOT / "data" / "study1.csv")
    write_exp2(tmp_path / "run" / "m" / "study1", "m", "study1", study1_rows(trials[:40], PASS))
    write_extracted(tmp_path / "run" / "m" / "study1", "m",
                    [{"trial_id": t["trial_id"], "status": "unparseable"} for t in trials[:10]])
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=20, plots=False)
    md = (tmp_path / "run" / "compare" / "compare.md").read_text()
    assert "| access | observe | n | mean bets 0/1/2/3 |\n|---|---|---|---|\n\n" not in md, "no empty table"
    assert "_No mean bets: all 10 responses lack usable posterior probabilities" in md
    assert "| no humans" not in md and "humans: upper-bounded reading" in md
    rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| observe 2, access 3")]
    assert rows and all(re.fullmatch(r"(\*\*yes\*\*|no|not testable)( \[\d+\])? \|", r[6]) for r in rows), rows
    assert str(tmp_path) not in md.split("\n")[0]
    table = ranking_rows(rep.ranking, STUDIES.values())
    assert len({tuple(r) for r in table}) == 1, "every row has the same columns (the UI takes the first row's)"
    for r in table:
        assert all(isinstance(v, str) for v in r.values())
        assert re.fullmatch(LIKENESS, r["human-likeness [95% CI]"]), r
        digits = [n.replace(".", "").lstrip("0") for n in re.findall(r"\d+\.\d+", r["human-likeness [95% CI]"])]
        assert all(len(d) <= 3 for d in digits), r
    assert {r["study"] for r in table} == {"study1", "study2"}
