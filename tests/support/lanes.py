"""The suite's lanes: markers derived from the fixtures a test uses, and a guard that holds every test to them.

`bash scripts/test.sh --fast` runs the tests selected by `FAST` (no vLLM server, no Prefect, no browser); the
whole suite runs everything. A test is marked

- from its fixtures: `item.fixturenames` is the transitive closure of what the test asks for, so a test using
  `prefect_env` (built on `prefect_server`) or `run_artifacts` (built on `readme_run`) gets the markers of the
  fixtures below them (`FIXTURE_MARKERS`);
- by hand where it starts the thing in its own body (a `LocalVLLMServer`, the flow run in-process on a local
  model, `grace query` without `--endpoint`): `@pytest.mark.server` (tests/test_lanes.py finds the first two
  kinds in the source).

`ProcessGuard` checks both while the tests run: it samples the processes this session starts (they inherit
`GRACE_TEST_SESSION`) and fails, at its teardown, any test during which a vLLM server, a Prefect process or
Chromium appeared without the test carrying that marker. Its summary line says what the session started, so a
run of the fast lane shows that it started none of them.

Both lanes run on pytest-xdist workers (`scripts/test.sh`). Each worker is a session of its own (its own mark,
guard and session fixtures); a worker's guard hands its counts to the controller (`workeroutput`), whose summary
adds them up. Under `--dist loadgroup` the tests that start something are in two groups (`group_of`), each on one
worker:
- `STARTS`: every test with Prefect, Chromium or the larger shared server (SmolLM2, which also serves the
  README's run), so one worker holds those, the Prefect worker and the flow runs' own servers, as one process
  would;
- `TOY`: the tests that start only servers of the small random-weight models (the shared `toy_server` and
  `gemma2_server`, the gpt-oss toy's module server, or servers of their own): the other worker starts its own
  toy server (about 1 GiB) and runs them beside the tests that start nothing. The Gemma-2 toy's tests (no
  Prefect; the CLI two-model run among them) were on `STARTS` until that lane ran 1,115 s of the 1,124 s suite
  and this one 768 s (measured); the gpt-oss toy's (3.3 GiB, about 50 s) until STARTS ran 852 s of test time
  and this lane ended about 200 s before it.
Two workers each starting every server ran this 24 GiB machine out of memory (measured: 0 MiB available, the
suite thrashing); one holding everything left the other idle for 15 of 18 minutes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

SERVER, PREFECT, BROWSER = "server", "prefect", "browser"
FAST = f"not {SERVER} and not {PREFECT} and not {BROWSER}"
WHAT = {SERVER: "a vLLM server", PREFECT: "a Prefect process", BROWSER: "Chromium"}
COUNTED = {SERVER: "vLLM servers", PREFECT: "Prefect processes", BROWSER: "Chromium processes"}

# The fixtures that start a real thing, or hand work to something that does (a run the worker picks up starts
# its own vLLM server). Fixtures built on these need no entry: the closure carries the markers up.
FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "toy_server": (SERVER,),
    "smollm2_server": (SERVER,),
    "gemma2_server": (SERVER,),
    "gptoss_server": (SERVER,),  # tests/test_family_servers.py, one per module
    "prefect_server": (PREFECT,),  # under prefect_env, full_study_deployment, prefect_worker, readme_run
    "prefect_worker": (PREFECT, SERVER),
    "readme_run": (PREFECT, SERVER),  # the README's run through the worker (tests/conftest.py)
    "ui": (BROWSER,),  # tests/test_ui_browser.py: headless Chromium
}


def derived_markers(fixturenames: Iterable[str]) -> set[str]:
    return {m for name in fixturenames for m in FIXTURE_MARKERS.get(name, ())}


STARTS = "starts"  # the xdist group of the tests that start Prefect, Chromium or the larger server
TOY = "starts-toy"  # ... of those that start only servers of the small toys (Llama, Gemma-2, gpt-oss)
# The shared servers only `STARTS`'s worker holds for the whole session (SmolLM2 also serves the README's run there).
# Their tests (about 90 s) were moved to the toy lane once, to shorten this one (warm, 2 cores): the README's run then
# began while that lane still ran its servers, took 450 s (250 s before), three of its replies passed the 60 s
# request timeout and were asked again (its test failed on 13 rows for 10 trials), and the suite took 963 s (912
# and 929 s before).
LARGER_SERVERS = frozenset({"smollm2_server"})


def group_of(markers: Iterable[str], fixturenames: Iterable[str] = ()) -> str | None:
    """The xdist group of a test from its markers and fixtures: none for a test that starts nothing; `TOY` for one
    that starts only vLLM servers, none of them the larger shared one; `STARTS` for the rest."""
    marks = set(markers)
    if not marks & set(WHAT):
        return None
    if marks & {PREFECT, BROWSER} or LARGER_SERVERS & set(fixturenames):
        return STARTS
    return TOY


# Tests that read the README's run (SmolLM2 through the worker, the longest single piece of the suite) run last in
# their lane, when the other worker has finished or nearly: its setup took 143 s there, 307 s when it ran first,
# beside the toy lane's own servers (measured on this 2-core machine, servers of two OpenMP threads each).
# Keep the toy lane short of this one's end: moving the in-process flows that serve their own models (about 170 s)
# to the toy lane made the run start beside it, its setup 230 -> 481 s, three of its SmolLM2 replies timing out
# (60 s in the tests' config), a fresh clone's suite 1,118 -> 1,188 s. With one thread per lane's server
# (tests/conftest.py), the gpt-oss toy's module (about 50 s) moved there: the run then shares its time with the
# other lane's last tests (its setup 188 -> 220-265 s), the two lanes end closer together, and fresh clones took
# 818, 916 and 959 s (875, 900 and 924 s before: no measurable difference; the cores are 85-88% busy throughout).
# Since the other lane's last tests run beside it, the run's server got one lane's share of the cores (its setup
# 249-266 -> 210 s); it now gets every core as OpenMP threads that sleep while they wait, which lose little beside
# a busy core and gain a third alone (tests/conftest.py, readme_run).
LATE_FIXTURES = frozenset({"readme_run"})


def run_late(items: list[pytest.Item]) -> None:
    """Move the tests using a `LATE_FIXTURES` fixture to the end, in their order (a stable sort: every xdist
    worker collects the same order)."""
    items.sort(key=lambda item: bool(LATE_FIXTURES & set(getattr(item, "fixturenames", ()))))


def derive_markers(items: list[pytest.Item]) -> None:
    """Add each item the markers of the fixtures it uses (run before `-m` deselects: tryfirst), and its xdist
    group (`group_of`; used under `--dist loadgroup`)."""
    for item in items:
        for marker in sorted(derived_markers(getattr(item, "fixturenames", ()))):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)
        group = group_of((m.name for m in item.iter_markers()), getattr(item, "fixturenames", ()))
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))


def kind_of(cmdline: list[str]) -> str | None:
    """Which of the guarded things a command line runs: the vLLM API server (its engine process is its child),
    anything of Prefect's (the CLI, its server, worker or a flow-run process), Chromium or Playwright's driver.
    Only the program and `-m` modules count, not what its arguments mention."""
    programs = [os.path.basename(a) for a in cmdline[:2]]  # a script runs as `python /path/to/script ...`
    modules = [b for a, b in zip(cmdline, cmdline[1:], strict=False) if a == "-m"]
    modules += [a.split(":")[0] for a in cmdline if a.startswith("prefect.server.")]  # uvicorn's app factory
    if any(m.startswith("vllm.entrypoints") for m in modules) or programs[1:] == ["vllm"]:
        return SERVER
    if any(p == "prefect" for p in programs) or any(m == "prefect" or m.startswith("prefect.") for m in modules):
        return PREFECT
    if cmdline and (os.path.basename(cmdline[0]).startswith("chrom") or "playwright" in cmdline[0]):
        return BROWSER
    return None


@dataclass(frozen=True)
class Seen:
    pid: int
    kind: str
    at: float  # time.monotonic() when first seen
    cmd: str


class ProcessGuard:
    """A pytest plugin: samples, every `every_s`, the guarded processes carrying this session's mark."""

    def __init__(self, mark: str, every_s: float = 0.5) -> None:
        self.mark = mark
        self.every_s = every_s
        self.seen: dict[tuple[int, float], Seen] = {}  # by pid and start time: a pid can be reused
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="process-guard", daemon=True)
        self._since: dict[str, float] = {}
        self.offenders: list[str] = []
        self.workers: list[dict[str, Any]] = []  # on an xdist controller: each worker's counts and offenders

    def scan(self) -> None:
        me = os.getpid()
        for p in psutil.process_iter(["pid", "cmdline", "create_time"]):
            key = (p.pid, p.info["create_time"])
            if p.pid == me or key in self.seen:
                continue
            try:
                kind = kind_of(p.info["cmdline"] or [])
                if kind is None or p.environ().get("GRACE_TEST_SESSION") != self.mark:
                    continue
            except psutil.Error:
                continue
            with self._lock:
                self.seen.setdefault(key, Seen(p.pid, kind, time.monotonic(), " ".join(p.info["cmdline"])[:160]))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.scan()

    def started(self, since: float) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen.values() if s.at >= since]

    # -- hooks ---------------------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if session.config.pluginmanager.hasplugin("dsession"):
            return  # an xdist controller runs no test: its workers guard theirs (a scan costs 4-8 ms of CPU)
        self.scan()  # what was there before the first test is nobody's
        self._thread.start()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: sum(s.kind == k for s in self.seen.values()) for k in WHAT}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._stop.set()
        if hasattr(session.config, "workeroutput"):  # an xdist worker: the controller's summary adds it up
            session.config.workeroutput["grace_guard"] = {"counts": self.counts(), "offenders": self.offenders}

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, on the controller
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        out = getattr(node, "workeroutput", {}).get("grace_guard")
        if out:
            self.workers.append(out)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.scan()  # anything of the previous test's teardown is charged to it, not to this one
        self._since[item.nodeid] = time.monotonic()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when != "teardown" or item.nodeid not in self._since:
            return report
        self.scan()
        since = self._since.pop(item.nodeid)
        missing = [s for s in self.started(since) if item.get_closest_marker(s.kind) is None]
        if missing:
            lines = [f"{WHAT[s.kind]} started while this test ran, and it is not marked {s.kind}: pid {s.pid}, "
                     f"{s.cmd}" for s in missing]
            self.offenders += [f"{item.nodeid}: {line}" for line in lines]
            lines.append("mark the test (@pytest.mark.<marker>) or give the fixture that starts it its markers "
                         "(tests/support/lanes.py, FIXTURE_MARKERS)")
            report.outcome = "failed"
            report.longrepr = "\n".join(lines)
        return report

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        counts = self.counts()
        offenders = list(self.offenders)
        for w in self.workers:
            counts = {k: counts[k] + int(w["counts"].get(k, 0)) for k in WHAT}
            offenders += w["offenders"]
        said = ", ".join(f"{COUNTED[k]} {counts[k]}" for k in WHAT)
        workers = f" ({len(self.workers)} xdist workers)" if self.workers else ""
        terminalreporter.write_line(f"process guard: started by this session{workers}: {said}; "
                                    f"started by a test without its marker: {len(offenders)}")
        for line in offenders:
            terminalreporter.write_line(f"  {line}")
