"""The Prefect UI as a researcher sees it: headless Chromium (Debian's package, driven by Playwright) on the
real Prefect server after the README's run (grace/full-study with the deployment's own parameters: SmolLM2 on
the 10-row samples), and the trial viewer one click away from it.

Each test opens pages, asserts on what the browser shows and saves full-page screenshots in its output
folder (tmp_path/screenshots), copied to results/ui-screenshots/ (git-ignored) for people to look at. The
artifacts' own pages are opened once each per UI, by the module's `artifact_visits`, and three tests assert on
what those visits found.
The default UI of Prefect 3.9 is the V2 one (under /v2); the plots are checked in the V1 UI as well, one
click away ("Switch to V1 UI"). The tests of issue 26 (last in the file) check what a researcher looks for
first: the verdict on the badges (run page, model subflow, stages, runs list), the trial viewer one click from
`grace-run` filtered to the replies cut by max_tokens, a not-fit reason leading to its trials, and every artifact
table measured against its pane in both UIs. The trial viewer is the session's `grace view --root` (the
`trial_viewer` fixture), as scripts/prefect-up.sh serves it beside the Prefect UI.
To add a check: a test taking `ui`, `readme_run`, `run_artifacts`, `shots` (and `trial_viewer`), or a finding
recorded in `Visit` for the artifacts' pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
from prefect.client.schemas.objects import Artifact

from grace.report.limits import stage_breaches
from grace.studies.registry import get_study
from grace.view.page import read_payload
from tests.conftest import ROOT, SampleRun
from tests.support.browser import UI, chromium, origin_of
from tests.support.prefect_runs import artifacts_of, run_tree, task_runs_of

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
def run_artifacts(readme_run: SampleRun) -> list[Artifact]:
    """Every artifact of the README's run and of its per-model subflow runs."""
    assert readme_run.flow_run.state.is_completed(), readme_run.flow_run.state.message
    with get_client(sync_client=True) as client:
        artifacts = artifacts_of(client, run_tree(client, readme_run.flow_run.id))
    assert {"grace-run", "grace-report", "grace-compare-details", "grace-smollm2-stages",
            "grace-smollm2-preflight"} <= {a.key for a in artifacts}
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
    pane = PANE[base].get(artifact.type or "")  # where its images are (a progress artifact has none)
    shown = ui.open(page, f"{base}/artifacts/artifact/{artifact.id}", ready=ready, settle_images=pane)
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


def test_flow_run_page_lists_its_artifacts_and_named_task_runs(ui: UI, readme_run: SampleRun,
                                                             run_artifacts: list[Artifact], shots: Path) -> None:
    run = readme_run.flow_run
    with get_client(sync_client=True) as client:
        names = {t.name for t in client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id])))}
    assert {"report", f"compare-{readme_run.run_dir.name}"} <= names, names
    with ui.tab() as page:
        shown = ui.open(page, f"{V2}/runs/flow-run/{run.id}", ready="[role=tab]:has-text('Artifacts')")
        assert not shown.own_code_problems(), shown.own_code_problems()
        assert run.name in shown.text()
        page.locator("text=Finished in state").first.wait_for(timeout=30_000)  # the logs tab, open by default
        page.wait_for_timeout(1500)  # the run graph is a canvas: give it a moment to draw
        _shot(ui, page, shots, "01-flow-run")
        page.locator("[role=tab]:has-text('Task Runs')").click()
        for name in (f"compare-{readme_run.run_dir.name}", "report"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        _shot(ui, page, shots, "02-flow-run-task-runs")
        page.locator("[role=tab]:has-text('Artifacts')").click()
        for key in ("grace-run", "grace-report", "grace-compare", "grace-compare-details"):
            page.get_by_text(key, exact=True).first.wait_for(timeout=30_000)
        _shot(ui, page, shots, "03-flow-run-artifacts")


TABLE_WIDTHS = """(root) => { const pane = document.querySelector(root);
  return [...pane.querySelectorAll('table')].map(t => ({
    table: Math.ceil(t.getBoundingClientRect().width), scroll: t.scrollWidth, pane: pane.clientWidth,
    header: [...t.querySelectorAll('th')].map(x => x.textContent.trim()).join(' | ')}))}"""
IMAGE_SIZES = """(root) => [...document.querySelectorAll(root + ' img')].map(i =>
    ({alt: i.alt, width: i.clientWidth, height: i.clientHeight}))"""
PANE = {V2: {"markdown": MARKDOWN[V2], "table": TABLE[V2]}, V1: {"markdown": MARKDOWN[V1]}}
MIN_PLOT_HEIGHT = 240  # px: below it a plot's labels do not read (the issue saw one squeezed to 160 px)
ORDER = ["grace-run", "grace-report", "grace-compare", "grace-compare-details"]  # the V2 screenshots' order
WITH_PLOTS = ("grace-compare-details", "grace-report")  # the artifacts whose plots are checked in V1 too


@dataclass
class Visit:
    """What the browser showed on one artifact's page in one UI (V2 or V1): check_artifact_page's findings, and
    the tables and images of its pane as laid out (None where that UI has no pane for the artifact's type)."""

    artifact: Artifact
    base: str
    problems: list[str]
    tables: list[dict[str, Any]] | None
    images: list[dict[str, Any]] | None


@pytest.fixture(scope="module")
def artifact_visits(ui: UI, readme_run: SampleRun, run_artifacts: list[Artifact],
                    tmp_path_factory: pytest.TempPathFactory) -> list[Visit]:
    """Every artifact's page opened once in the V2 UI, and once in V1 where V1 has a pane for its type: checked,
    measured and photographed in that one visit. The three tests below assert on what the visits found; each
    used to open its pages itself, loading most of them two or three times."""
    shots = tmp_path_factory.mktemp("artifact-screenshots")
    ranked = sorted(run_artifacts, key=lambda a: (ORDER.index(a.key) if a.key in ORDER else len(ORDER),
                                                  a.key or "", str(a.created)))
    visits: list[Visit] = []
    with ui.tab() as page:
        for i, artifact in enumerate(ranked):
            visits.append(_visit(ui, page, artifact, readme_run.run_dir, V2))
            _shot(ui, page, shots, f"1{i:02d}-artifact-{artifact.key or artifact.type}")
        for artifact in sorted(ranked, key=lambda a: a.key or ""):
            if artifact.type in PANE[V1]:
                visits.append(_visit(ui, page, artifact, readme_run.run_dir, V1))
                if artifact.key in WITH_PLOTS:
                    _shot(ui, page, shots, f"2{WITH_PLOTS.index(artifact.key):02d}-v1-artifact-{artifact.key}")
    return visits


def _visit(ui: UI, page: Any, artifact: Artifact, run_dir: Path, base: str) -> Visit:
    problems = check_artifact_page(ui, page, artifact, run_dir, base)
    pane = PANE[base].get(artifact.type or "")
    if pane is None:
        return Visit(artifact, base, problems, None, None)
    return Visit(artifact, base, problems, page.evaluate(TABLE_WIDTHS, pane), page.evaluate(IMAGE_SIZES, pane))


def test_every_artifact_shows_its_plots_rounded_numbers_and_no_dead_links(
    run_artifacts: list[Artifact], artifact_visits: list[Visit],
) -> None:
    seen = [v for v in artifact_visits if v.base == V2]
    assert len(seen) == len(run_artifacts)
    problems = [p for v in seen for p in v.problems]
    assert not problems, "\n".join(problems)


def test_plots_show_in_the_v1_ui_too(artifact_visits: list[Visit]) -> None:
    seen = [v for v in artifact_visits if v.base == V1 and v.artifact.key in WITH_PLOTS]
    assert sorted(v.artifact.key or "" for v in seen) == sorted(WITH_PLOTS)
    problems = [p for v in seen for p in v.problems]
    assert not problems, "\n".join(problems)


def test_every_stage_shows_its_progress_and_the_run_its_verdict(ui: UI, readme_run: SampleRun,
                                                              run_artifacts: list[Artifact], shots: Path) -> None:
    """A progress artifact per stage of the model, at 100% once the run is over; the verdict in the flow run's
    state message (what the runs list shows) and at the head of the run summary."""
    progress = {a.key: a for a in run_artifacts if a.type == "progress"}
    stages = [f"grace-smollm2-{s}-{e}-progress" for s in ("study1", "study2") for e in ("exp1", "exp2", "extract")]
    assert set(stages) <= set(progress), sorted(progress)
    assert all(float(progress[k].data) == 100.0 for k in stages), {k: progress[k].data for k in stages}
    assert all("rows" in (progress[k].description or "") for k in stages)
    with ui.tab() as page:
        shown = ui.open(page, f"{V2}/artifacts/artifact/{progress[stages[0]].id}", ready=PROGRESS[V2])
        assert "100%" in shown.text(PROGRESS[V2]), shown.text(PROGRESS[V2])
        _shot(ui, page, shots, "300-progress-study1-exp1")
        message = readme_run.flow_run.state.message or ""
        for study in ("study1", "study2"):
            assert re.search(rf"smollm2/{study} (fit|not fit: \S)", message), message
        summary = next(a for a in run_artifacts if a.key == "grace-run")
        assert _raw(summary).splitlines()[2].startswith("**Verdict:** "), _raw(summary)[:300]
        shown = ui.open(page, f"{V2}/runs/flow-run/{readme_run.flow_run.id}",
                        ready="[role=tab]:has-text('Artifacts')")
        assert "smollm2/study1" in shown.text(), "the verdict is on the flow run's page"
        _shot(ui, page, shots, "301-flow-run-verdict")


# --- the verdict on the badge, the trial viewer one click away, tables that fit (issue 26) --------------------

NOT_FIT = "Not fit"


def _expected_states(readme_run: SampleRun) -> dict[str, str]:
    """The state each run, subflow and stage must end in, from the run's own files: "Not fit" where the report
    finds a model/study not fit (the run, the model) or a stage's files breach a limit (the stage)."""
    report = json.loads((readme_run.run_dir / "report" / "report.json").read_text())
    unfit = {m for m, studies in report["models"].items() for r in studies.values() if not r["fit"]}
    out = {readme_run.flow_run.name: NOT_FIT if unfit else "Fit", "smollm2": NOT_FIT if "smollm2" in unfit else "Fit"}
    for study in ("study1", "study2"):
        d = readme_run.run_dir / "smollm2" / study
        for task, exp in ((f"{study}-exp1", "exp1"), (f"{study}-exp2", "exp2"),
                          (f"extract-smollm2-{study}", "extract")):
            out[task] = NOT_FIT if stage_breaches(d, get_study(study), exp) else "Completed"
    return out


# the runs list's rows that name a run (a table row or a list item, whichever the UI draws)
RUN_ROWS = """(name) => [...document.querySelectorAll('tr, li, [role=row]')].map(e => e.innerText.replace(/\\s+/g, ' '))
    .filter(t => t.includes(name) && t.length < 400)"""


def test_the_verdict_is_on_the_badge_of_the_run_its_model_and_its_stages(ui: UI, readme_run: SampleRun,
                                                                         shots: Path) -> None:
    run = readme_run.flow_run
    expected = _expected_states(readme_run)
    assert expected[run.name] == NOT_FIT, "the README's run on SmolLM2 is expected not fit (its report says why)"
    with get_client(sync_client=True) as client:
        tree = run_tree(client, run.id)
        tasks = {t.name: t.state for t in task_runs_of(client, tree[1:])}
    states = {r.name: r.state for r in tree} | tasks
    assert {k: states[k].name for k in expected} == expected
    assert run.state.is_completed() and states["smollm2"].is_completed()  # Completed, named "Not fit"
    over = [k for k, v in expected.items() if v == NOT_FIT and k in tasks]
    assert over, "a stage over a limit (SmolLM2's replies are mostly unreadable)"
    for k in over:  # red, with the breach as the message
        assert tasks[k].is_failed() and "limit" in (tasks[k].message or ""), (k, tasks[k])
    with ui.tab() as page:
        ui.open(page, f"{V2}/runs/flow-run/{run.id}", ready="[role=tab]:has-text('Artifacts')")
        page.get_by_text(NOT_FIT, exact=True).first.wait_for(timeout=30_000)
        assert run.state.message  # the verdict, in the run's final log line (its state) once the logs have loaded
        page.get_by_text(run.state.message[:40]).first.wait_for(timeout=30_000)
        _shot(ui, page, shots, "400-run-page-not-fit-badge")
        subflow = next(r for r in tree if r.name == "smollm2")  # the stages are the model's subflow's tasks
        ui.open(page, f"{V2}/runs/flow-run/{subflow.id}", ready="[role=tab]:has-text('Task Runs')")
        page.locator("[role=tab]:has-text('Task Runs')").click()
        page.get_by_text(over[0], exact=True).first.wait_for(timeout=30_000)
        assert page.get_by_text(NOT_FIT, exact=True).count() >= 2, "the model's badge and its stages over a limit"
        _shot(ui, page, shots, "401-model-subflow-not-fit-stages")
        ui.open(page, f"{V2}/runs", ready="body")
        page.get_by_text(run.name).first.wait_for(timeout=30_000)
        rows = page.evaluate(RUN_ROWS, run.name)
        # the run's row carries the badge (an element that holds the name alone, a link, is not a row of its own)
        assert any(NOT_FIT in r for r in rows) and not any("Completed" in r for r in rows), rows
        _shot(ui, page, shots, "402-runs-list-not-fit-badge")


def test_the_trial_viewer_is_one_click_from_grace_run_and_shows_the_cut_replies(
    ui: UI, readme_run: SampleRun, run_artifacts: list[Artifact], trial_viewer: str, shots: Path,
) -> None:
    # (phase, record): the preflight's own replies (smollm2/preflight/...) are rows of their own, beside the study's
    cut = [("preflight" if "preflight" in p.parts else "study", r)
           for p in sorted(readme_run.run_dir.glob("smollm2/**/exp1.jsonl"))
           for x in p.read_text().splitlines() if (r := json.loads(x)).get("finish_reason") == "length"]
    assert cut, "the README's run has replies cut by max_tokens"
    summary = next(a for a in run_artifacts if a.key == "grace-run")
    with ui.tab() as page:
        elsewhere: list[str] = []
        # what the viewer's page asks for (the Prefect UI's own requests, its telemetry included, are not the
        # viewer's: a request counts when the frame that makes it shows the viewer)
        page.on("request", lambda r: None if r.url.startswith((ui.origin, trial_viewer, "data:", "blob:"))
                or not r.frame.url.startswith(trial_viewer) else elsewhere.append(r.url))
        ui.open(page, f"{V2}/artifacts/artifact/{summary.id}", ready=MARKDOWN[V2])
        link = page.locator(f"{MARKDOWN[V2]} a", has_text="open the trial viewer")
        assert link.get_attribute("href") == f"{trial_viewer}/{readme_run.run_dir.relative_to(readme_run.out.parent)}" \
                                             f"/trials.html"
        link.click()  # one click
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert page.url.startswith(trial_viewer)
        page.select_option("select[data-filter=finish]", "length")
        shown = page.locator("#trials tbody tr")
        assert shown.count() == len(cut), (shown.count(), len(cut))
        assert all("truncated" in t or "length" in t for t in shown.locator("td.exp1").all_inner_texts())
        shown.first.click()
        detail = page.inner_text("#detail")
        first = page.locator("#trials tbody tr").first.get_attribute("data-id") or ""
        # the row's id ends with phase | trial | replicate | wording: each wording of a trial is a row (and a record)
        # of its own, and the preflight may have asked the same trial (its reply cut too, on one machine)
        rec = next(r for phase, r in cut if first.endswith(
            f"|{phase}|{r['trial_id']}|{r.get('replicate', 0)}|{r.get('prompt_variant') or ''}"))
        assert rec["response"].strip()[:60] in detail.replace("\n", " ") or rec["response"].strip()[:60] in detail
        assert "Cut here: the reply reached max_tokens" in detail and rec["messages"][-1]["content"][:40] in detail
        assert "#" in page.url and "finish=length" in page.url  # the filter is in the address: a link to share
        _shot(ui, page, shots, "403-trial-viewer-truncated-replies")
        # an Exp 2 trial scored under every rotation of its option list: one line per rotation, as sent
        rotated = next(r for p in sorted(readme_run.run_dir.glob("smollm2/study2/exp2.jsonl"))
                       for x in p.read_text().splitlines() if (r := json.loads(x)).get("rotations"))
        page.select_option("select[data-filter=finish]", "")
        page.select_option("select[data-filter=study]", "study2")
        page.select_option("select[data-filter=exp2]", "ok")
        page.locator("#trials tbody tr[data-id*='|study2|study|" + rotated["trial_id"] + "|']").first.click()
        table = page.locator("#detail table.rot").first
        table.wait_for(timeout=10_000)
        rots = next(iter(rotated["rotations"].values()))
        assert table.locator("tbody tr").count() == len(rots)
        assert [c.strip() for c in table.locator("tbody tr td:nth-child(2)").all_inner_texts()] == \
            [q["options"][0] for q in rots]  # what each rotation listed first
        assert "rotations as sent" in page.inner_text("#detail")
        _shot(ui, page, shots, "405-trial-viewer-exp2-rotations")
        assert not elsewhere, f"the viewer loaded from elsewhere: {elsewhere}"
    html = (readme_run.run_dir / "trials.html").read_text()  # the same viewer, in the run folder, offline
    assert sum(1 for r in read_payload(html)["rows"] if (r["exp1"] or {}).get("finish") == "length") == len(cut)


def test_a_not_fit_reason_links_to_the_trials_behind_it(ui: UI, readme_run: SampleRun, run_artifacts: list[Artifact],
                                                        trial_viewer: str, shots: Path) -> None:
    report = next(a for a in run_artifacts if a.key == "grace-report")
    with ui.tab() as page:
        ui.open(page, f"{V2}/artifacts/artifact/{report.id}", ready=MARKDOWN[V2])
        reasons = page.locator(f"{MARKDOWN[V2]} li a[href*='/trials.html#']")  # the verdict's reasons come first
        try:
            reasons.first.wait_for(timeout=30_000)  # the markdown (with its inlined plots) renders after the pane
        except Exception:  # say what the pane's links are instead
            hrefs = page.locator(f"{MARKDOWN[V2]} a").evaluate_all("els => els.slice(0, 8).map(e => e.href)")
            raise AssertionError(f"no reason links to the trial viewer; the pane's first links: {hrefs}") from None
        href = reasons.first.get_attribute("href") or ""
        assert href.startswith(trial_viewer) and "#model=smollm2" in href, href
        reasons.first.click()
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        counted = page.inner_text("#count")
        n = int(counted.split(" of ")[0])
        assert 0 < n < int(counted.split(" of ")[1].split()[0]), counted  # the trials behind it, not all
        assert page.input_value("select[data-filter=model]") == "smollm2"
        _shot(ui, page, shots, "404-trial-viewer-from-a-not-fit-reason")


def test_no_artifact_table_is_wider_than_its_pane(artifact_visits: list[Visit]) -> None:
    problems, measured = [], 0
    for v in artifact_visits:
        if v.tables is None or v.images is None:
            continue
        where = f"{v.base or 'V1'} {v.artifact.key}"
        for t in v.tables:
            measured += 1
            if max(t["table"], t["scroll"]) > t["pane"] + 1:
                problems.append(f"{where}: table {max(t['table'], t['scroll'])} px wide in a {t['pane']} px pane: "
                                f"{t['header'][:80]}")
        problems += [f"{where}: plot {i['alt']} {i['width']}x{i['height']} px" for i in v.images
                     if i["height"] < MIN_PLOT_HEIGHT]
    assert measured >= 8, measured
    assert not problems, "\n".join(problems)
