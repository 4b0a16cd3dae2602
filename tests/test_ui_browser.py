"""The Prefect UI as a researcher sees it: headless Chromium (Debian's package, driven by Playwright) on the
real Prefect server after one sample run through the deployment (the session's `sample_run`).

Each test opens pages, asserts on what the browser shows and saves full-page screenshots in its output
folder (tmp_path/screenshots), copied to results/ui-screenshots/ (git-ignored) for people to look at.
The default UI of Prefect 3.9 is the V2 one (under /v2); the plots are checked in the V1 UI as well, one
click away ("Switch to V1 UI"). To add a check: a test taking `ui`, `sample_run`, `run_artifacts`, `shots`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
from prefect.client.schemas.objects import Artifact

from tests.conftest import ROOT, SampleRun
from tests.support.browser import UI, chromium, origin_of
from tests.support.prefect_runs import artifacts_of, run_tree

STABLE_SHOTS = ROOT / "results" / "ui-screenshots"
V2, V1 = "/v2", ""
MARKDOWN = {V2: "[data-testid=markdown-display]", V1: ".artifact-data-view .markdown-renderer"}
TABLE = {V2: "[data-testid=table-display]"}
PROGRESS = {V2: "[data-testid=progress-display]"}
DATA_IMAGE = re.compile(r"!\[[^\]]*\]\((data:image/png;base64,[^)]+)\)")
DECIMAL = re.compile(r"-?\d+\.\d+")
ROUNDED = {"grace-run", "grace-compare-details"}  # Markdown artifacts whose tables hold measured numbers


@pytest.fixture(scope="module")
def ui(prefect_server: str) -> Iterator[UI]:
    for old in STABLE_SHOTS.glob("*.png"):  # only this session's screenshots stay there
        old.unlink()
    with chromium() as browser:
        yield UI(browser=browser, origin=origin_of(prefect_server))


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    return tmp_path / "screenshots"


@pytest.fixture(scope="module")
def run_artifacts(sample_run: SampleRun) -> list[Artifact]:
    """Every artifact of the sample run and of its per-model subflow runs."""
    assert sample_run.flow_run.state.is_completed(), sample_run.flow_run.state.message
    with get_client(sync_client=True) as client:
        artifacts = artifacts_of(client, run_tree(client, sample_run.flow_run.id))
    assert {"grace-run", "grace-report", "grace-compare-details", "grace-toy-stages"} <= {a.key for a in artifacts}
    return artifacts


def _shot(ui: UI, page: Any, shots: Path, name: str) -> Path:
    return ui.screenshot(page, shots, name, copy_to=STABLE_SHOTS)


def _raw(artifact: Artifact) -> str:
    return artifact.data if isinstance(artifact.data, str) else json.dumps(artifact.data)


def _too_precise(text: str) -> list[str]:
    """Decimal numbers written with more than 3 significant digits."""
    return [n for n in DECIMAL.findall(text) if len(n.lstrip("-").replace(".", "").lstrip("0")) > 3]


def _pngs_made(run_dir: Path, artifact: Artifact) -> list[Path]:
    """The plots a markdown artifact must show: every PNG the report (or the comparison) wrote."""
    folder = {"grace-report": "report", "grace-compare-details": "compare"}.get(artifact.key or "")
    return sorted((run_dir / folder).glob("*.png")) if folder else []


def check_artifact_page(ui: UI, page: Any, artifact: Artifact, run_dir: Path, base: str) -> list[str]:
    """Open one artifact in the UI at `base` (V2 or V1); what the reader would find wrong, as sentences."""
    problems: list[str] = []
    key = artifact.key or str(artifact.id)
    raw = _raw(artifact)
    if "file:" in raw:
        problems.append(f"{key}: its data holds a file: link")
    ready = {"markdown": MARKDOWN, "table": TABLE, "progress": PROGRESS}.get(artifact.type or "", {}).get(base, "body")
    shown = ui.open(page, f"{base}/artifacts/artifact/{artifact.id}", ready=ready,
                    settle_images=MARKDOWN[base] if artifact.type == "markdown" else None)
    problems += [f"{key}: UI code not served locally: {p}" for p in shown.own_code_problems()]
    problems += [f"{key}: link to {a['href']}" for a in shown.links() if a["resolved"].startswith("file:")]
    if artifact.type == "markdown":
        content = shown.images(MARKDOWN[base])
        wanted = len(DATA_IMAGE.findall(raw))
        if len(content) != wanted:
            problems.append(f"{key}: {len(content)} images on the page, {wanted} in the artifact")
        visible = [i for i in content if i["complete"] and i["naturalWidth"] > 0]
        problems += [f"{key}: image not shown: {i['alt'] or i['src'][:60]}" for i in content if i not in visible]
        made = _pngs_made(run_dir, artifact)
        if len(visible) < len(made):
            problems.append(f"{key}: shows {len(visible)} of the {len(made)} plots written: "
                            f"{[p.name for p in made]}")
        problems += [f"{key}: struck-through text: {t!r}" for t in shown.struck(MARKDOWN[base])]
        tables = shown.tables(MARKDOWN[base])
        problems += [f"{key}: empty table with columns {t['header']}" for t in tables if not t["rows"]]
        if key in ROUNDED:
            problems += [f"{key}: number not rounded for reading: {n}" for t in tables for r in t["rows"]
                         for c in r for n in _too_precise(c)]
        heading = shown.text(f"{MARKDOWN[base]} h1") if page.locator(f"{MARKDOWN[base]} h1").count() else ""
        if str(run_dir) in heading:
            problems.append(f"{key}: heading names the worker's disk: {heading!r}")
    elif artifact.type == "table":
        cells = [c for t in shown.tables(TABLE[base]) for r in t["rows"] for c in r]
        if not cells:
            problems.append(f"{key}: table shows no rows")
        problems += [f"{key}: number not rounded for reading: {n}" for c in cells for n in _too_precise(c)]
    return problems


def test_flow_run_page_lists_its_artifacts_and_named_task_runs(ui: UI, sample_run: SampleRun,
                                                             run_artifacts: list[Artifact], shots: Path) -> None:
    run = sample_run.flow_run
    with get_client(sync_client=True) as client:
        names = {t.name for t in client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id])))}
    assert {"report", f"compare-{sample_run.run_dir.name}"} <= names, names
    with ui.tab() as page:
        shown = ui.open(page, f"{V2}/runs/flow-run/{run.id}", ready="[role=tab]:has-text('Artifacts')")
        assert not shown.own_code_problems(), shown.own_code_problems()
        assert run.name in shown.text()
        page.locator("text=Finished in state").first.wait_for(timeout=30_000)  # the logs tab, open by default
        page.wait_for_timeout(1500)  # the run graph is a canvas: give it a moment to draw
        _shot(ui, page, shots, "01-flow-run")
        page.locator("[role=tab]:has-text('Task Runs')").click()
        for name in (f"compare-{sample_run.run_dir.name}", "report"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        _shot(ui, page, shots, "02-flow-run-task-runs")
        page.locator("[role=tab]:has-text('Artifacts')").click()
        for key in ("grace-run", "grace-report", "grace-compare", "grace-compare-details"):
            page.get_by_text(key, exact=True).first.wait_for(timeout=30_000)
        _shot(ui, page, shots, "03-flow-run-artifacts")


def test_every_artifact_shows_its_plots_rounded_numbers_and_no_dead_links(
    ui: UI, sample_run: SampleRun, run_artifacts: list[Artifact], shots: Path,
) -> None:
    problems: list[str] = []
    order = ["grace-run", "grace-report", "grace-compare", "grace-compare-details"]
    with ui.tab() as page:
        ranked = sorted(run_artifacts, key=lambda a: (order.index(a.key) if a.key in order else len(order),
                                                      a.key or "", str(a.created)))
        for i, artifact in enumerate(ranked):
            problems += check_artifact_page(ui, page, artifact, sample_run.run_dir, V2)
            _shot(ui, page, shots, f"1{i:02d}-artifact-{artifact.key or artifact.type}")
    assert not problems, "\n".join(problems)


def test_plots_show_in_the_v1_ui_too(ui: UI, sample_run: SampleRun, run_artifacts: list[Artifact],
                                     shots: Path) -> None:
    problems: list[str] = []
    with ui.tab() as page:
        with_plots = [a for a in run_artifacts if a.key in {"grace-report", "grace-compare-details"}]
        for i, artifact in enumerate(sorted(with_plots, key=lambda a: a.key or "")):
            problems += check_artifact_page(ui, page, artifact, sample_run.run_dir, V1)
            _shot(ui, page, shots, f"2{i:02d}-v1-artifact-{artifact.key}")
    assert not problems, "\n".join(problems)


def test_every_stage_shows_its_progress_and_the_run_its_verdict(ui: UI, sample_run: SampleRun,
                                                              run_artifacts: list[Artifact], shots: Path) -> None:
    """A progress artifact per stage of the model, at 100% once the run is over; the verdict in the flow run's
    state message (what the runs list shows) and at the head of the run summary."""
    progress = {a.key: a for a in run_artifacts if a.type == "progress"}
    stages = [f"grace-toy-{s}-{e}-progress" for s in ("study1", "study2") for e in ("exp1", "exp2", "extract")]
    assert set(stages) <= set(progress), sorted(progress)
    assert all(float(progress[k].data) == 100.0 for k in stages), {k: progress[k].data for k in stages}
    assert all("rows" in (progress[k].description or "") for k in stages)
    with ui.tab() as page:
        shown = ui.open(page, f"{V2}/artifacts/artifact/{progress[stages[0]].id}", ready=PROGRESS[V2])
        assert "100%" in shown.text(PROGRESS[V2]), shown.text(PROGRESS[V2])
        _shot(ui, page, shots, "300-progress-study1-exp1")
        message = sample_run.flow_run.state.message or ""
        for study in ("study1", "study2"):
            assert re.search(rf"toy/{study} (fit|not fit: \S)", message), message
        summary = next(a for a in run_artifacts if a.key == "grace-run")
        assert _raw(summary).splitlines()[2].startswith("**Verdict:** "), _raw(summary)[:300]
        shown = ui.open(page, f"{V2}/runs/flow-run/{sample_run.flow_run.id}",
                        ready="[role=tab]:has-text('Artifacts')")
        assert "toy/study1" in shown.text(), "the verdict is on the flow run's page"
        _shot(ui, page, shots, "301-flow-run-verdict")
