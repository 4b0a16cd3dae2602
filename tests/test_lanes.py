"""The suite's lanes (tests/support/lanes.py): markers derived from fixtures, tests that start a server in their
own body marked by hand, and the guard that fails a test which starts a vLLM server, a Prefect process or
Chromium without the marker that says so (shown on a small suite of its own, with stand-in processes)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from grace.serving import Endpoint
from tests.conftest import ROOT, vllm_processes
from tests.support.lanes import (
    BROWSER,
    FAST,
    FIXTURE_MARKERS,
    LARGER_SERVERS,
    LATE_FIXTURES,
    PREFECT,
    SERVER,
    STARTS,
    TOY,
    derived_markers,
    group_of,
    kind_of,
)

TESTS = ROOT / "tests"


def marks_of(decorators: list[ast.expr]) -> set[str]:
    """The `pytest.mark.X` names in decorators or in a `pytestmark = ...` value."""
    out = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                out.add(sub.attr)
    return out


def calls(fn: ast.AST) -> list[ast.Call]:
    return sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call)), key=lambda c: (c.lineno, c.col_offset))


def name_of(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


NO_VLLM = "# no vLLM"  # on the line of a LocalVLLMServer the test expects to be refused before it starts


def starts_vllm(fn: ast.AST, lines: list[str] | None = None) -> list[str]:
    """What in this function's body starts a local vLLM server: a LocalVLLMServer (not one built only to read an
    attribute, `LocalVLLMServer(m).command`, nor one on a line saying `# no vLLM`: the guard checks that claim
    when the test runs), or the flow run in-process with no `endpoint` (it serves the model itself)."""
    read_only = {id(n.value) for n in ast.walk(fn) if isinstance(n, ast.Attribute) and n.attr not in ("start",
                                                                                                       "__enter__")}
    found = []
    for c in calls(fn):
        if lines and NO_VLLM in lines[c.lineno - 1]:
            continue
        if name_of(c) == "LocalVLLMServer" and id(c) not in read_only:
            found.append(f"LocalVLLMServer (line {c.lineno})")
        elif name_of(c) in ("grace", "model_run") and not any(k.arg == "endpoint" for k in c.keywords):
            found.append(f"the flow {name_of(c)}() without an endpoint (line {c.lineno})")
    return found


def is_fixture(fn: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in fn.decorator_list)


def functions(path: Path) -> tuple[set[str], list[ast.FunctionDef]]:
    """The module's `pytestmark` markers and its functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            module |= marks_of([node.value])
    return module, [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


def test_a_test_that_starts_vllm_in_its_body_is_marked_server() -> None:
    unmarked = []
    for path in sorted(TESTS.glob("test_*.py")):
        module, fns = functions(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        for fn in fns:
            if not fn.name.startswith("test_") or is_fixture(fn):
                continue
            what = starts_vllm(fn, lines)
            marks = module | marks_of(fn.decorator_list) | derived_markers(a.arg for a in fn.args.args)
            if what and SERVER not in marks:
                unmarked.append(f"{path.name}::{fn.name} starts {', '.join(what)}")
    assert not unmarked, "mark these @pytest.mark.server:\n" + "\n".join(unmarked)


def test_a_fixture_that_starts_a_server_or_the_browser_derives_its_marker() -> None:
    defined, missing = set(), []
    for path in sorted(TESTS.rglob("*.py")):
        for fn in functions(path)[1]:
            if not is_fixture(fn):
                continue
            defined.add(fn.name)
            needs = {SERVER} if starts_vllm(fn) else set()
            needs |= {BROWSER} if "chromium" in {name_of(c) for c in calls(fn)} else set()
            needs |= {PREFECT, SERVER} if "run_deployment" in {name_of(c) for c in calls(fn)} else set()
            if not needs <= set(FIXTURE_MARKERS.get(fn.name, ())):
                missing.append(f"{path.relative_to(ROOT)}::{fn.name} needs {sorted(needs)}")
    assert not missing, "add these to tests/support/lanes.py FIXTURE_MARKERS:\n" + "\n".join(missing)
    assert set(FIXTURE_MARKERS) <= defined, f"no such fixture: {set(FIXTURE_MARKERS) - defined}"


def test_the_checks_above_see_what_they_look_for() -> None:
    fn = ast.parse("def test_x(cfg):\n    with LocalVLLMServer(cfg.model('toy')):\n        grace(models=['toy'])\n"
                   "    grace(models=['toy'], endpoint='http://x')\n    LocalVLLMServer(cfg.model('toy'))._env()\n"
                   "    s = LocalVLLMServer(cfg.model('toy'), port=taken)  # no vLLM: refused\n").body[0]
    assert starts_vllm(fn, []) == ["LocalVLLMServer (line 2)", "the flow grace() without an endpoint (line 3)",
                                   "LocalVLLMServer (line 6)"]
    src = ast.unparse(fn).splitlines()
    src[-1] += "  # no vLLM: refused"
    assert starts_vllm(fn, src) == starts_vllm(fn, [])[:2]
    dec = ast.parse("@pytest.mark.faults\n@pytest.mark.timeout(9)\n@pytest.mark.server\ndef f(): pass").body[0]
    assert isinstance(dec, ast.FunctionDef) and marks_of(dec.decorator_list) == {"faults", "timeout", "server"}
    assert derived_markers(["tmp_path", "prefect_env", "readme_run"]) == {PREFECT, SERVER}


def test_what_counts_as_a_guarded_process() -> None:
    vllm = ["/x/.grace/vllm-venv/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "toy"]
    assert kind_of(vllm) == SERVER
    assert kind_of(["/x/.grace/vllm-venv/bin/python", "-c", "import vllm"]) is None  # importing it serves nothing
    assert kind_of(["/x/.venv/bin/prefect", "worker", "start"]) == PREFECT
    assert kind_of(["/x/.venv/bin/python", "-m", "prefect.engine"]) == PREFECT
    assert kind_of(["/x/.venv/bin/python3", "/x/.venv/bin/prefect", "server", "start"]) == PREFECT  # the script
    assert kind_of(["/x/python", "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app"]) == PREFECT
    assert kind_of(["/usr/lib/chromium/chromium", "--headless"]) == BROWSER
    assert kind_of(["/x/.venv/bin/grace", "query", "--model", "toy"]) is None
    assert kind_of(["/x/python", "-m", "pytest", "-m", "not server and not prefect", "tests/test_prefect_flow.py"]) \
        is None  # what the arguments mention does not count


def test_the_fast_lane_is_the_selection_test_sh_runs() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "--fast" in script and f'-m "{FAST}"' in script


SUB_CONFTEST = '''
import os
import subprocess
import sys
import uuid

import pytest

os.environ["GRACE_TEST_SESSION"] = "lanes-" + uuid.uuid4().hex[:8]  # this small session's own mark
from tests.support.lanes import ProcessGuard, derive_markers


def pytest_configure(config):
    config.pluginmanager.register(ProcessGuard(os.environ["GRACE_TEST_SESSION"], every_s=0.2), "guard")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    derive_markers(items)


def stand_in(*argv):
    """A process whose command line is the real thing's, doing nothing."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])


VLLM = ("-m", "vllm.entrypoints.openai.api_server", "--model", "toy")


@pytest.fixture()
def seen(request):
    """Wait until the guard has seen this process, then stop it."""
    guard = request.config.pluginmanager.get_plugin("guard")
    procs = []

    def start(*argv):
        p = stand_in(*argv)
        procs.append(p)
        import time
        deadline = time.monotonic() + 20
        while p.pid not in {s.pid for s in guard.seen.values()}:
            assert time.monotonic() < deadline, "the guard never saw it"
            time.sleep(0.05)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="session")
def toy_server():
    p = stand_in(*VLLM)
    yield p
    p.kill()
    p.wait()
'''

SUB_TESTS = '''
import time

import pytest

from conftest import VLLM


def test_uses_the_server_fixture(toy_server):
    time.sleep(0.5)


@pytest.mark.server
def test_starts_vllm_marked(seen):
    seen(*VLLM)


def test_starts_vllm_unmarked(seen):
    seen(*VLLM)


def test_starts_prefect_unmarked(seen):
    seen("-m", "prefect.engine")


def test_pure():
    pass
'''


def run_sub(tmp_path: Path, *args: str) -> tuple[int, str]:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "conftest.py").write_text(SUB_CONFTEST)
    (suite / "test_sub.py").write_text(SUB_TESTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(suite),
                          "-p", "no:cacheprovider", *args, str(suite)],
                         capture_output=True, text=True, timeout=300, cwd=suite, env=env)
    return out.returncode, out.stdout + out.stderr


def test_the_guard_fails_a_test_that_starts_what_it_is_not_marked_for(tmp_path: Path) -> None:
    code, said = run_sub(tmp_path)
    assert code == 1, said
    assert "5 passed, 2 errors" in said, said
    assert "ERROR at teardown of test_starts_vllm_unmarked" in said, said
    assert "a vLLM server started while this test ran, and it is not marked server" in said, said
    assert "ERROR at teardown of test_starts_prefect_unmarked" in said, said
    assert "a Prefect process started while this test ran, and it is not marked prefect" in said, said
    assert ("process guard: started by this session: vLLM servers 3, Prefect processes 1, Chromium processes 0; "
            "started by a test without its marker: 2") in said, said


def test_the_fast_selection_leaves_out_what_the_fixtures_mark(tmp_path: Path) -> None:
    code, said = run_sub(tmp_path, "-m", FAST, "-k", "not unmarked")
    assert code == 0, said
    assert "1 passed, 4 deselected" in said, said  # the fixture's user and the marked one are out
    assert ("process guard: started by this session: vLLM servers 0, Prefect processes 0, Chromium processes 0; "
            "started by a test without its marker: 0") in said, said


def test_under_two_xdist_workers_each_guards_its_tests_and_the_summary_adds_them_up(tmp_path: Path) -> None:
    code, said = run_sub(tmp_path, "-n", "2", "--dist", "loadgroup", "-v")
    assert code == 1, said
    assert "5 passed, 2 errors" in said, said  # the same failures as in one process
    # The two tests that start a (toy) server are one xdist group, on one worker: xdist names the group in the node id
    # (pytest 9.2 broke that for pytest-xdist 3.8.0, which then silently spread the group: pyproject.toml's pin).
    ran = {test: worker for worker, test in re.findall(
        r"\[(gw\d)\][^\n]*PASSED[^\n]*::(test_uses_the_server_fixture@starts-toy|test_starts_vllm_marked@starts-toy)",
        said)}
    assert len(ran) == 2 and len(set(ran.values())) == 1, said
    assert "a vLLM server started while this test ran, and it is not marked server" in said, said
    assert ("process guard: started by this session (2 xdist workers): vLLM servers 3, Prefect processes 1, "
            "Chromium processes 0; started by a test without its marker: 2") in said, said


COLLECT = '''
import json, sys
import pytest

class Groups:
    def pytest_collection_finish(self, session):
        out = {i.nodeid: {"group": (m.args[0] if (m := i.get_closest_marker("xdist_group")) else None),
                          "marks": sorted(x.name for x in i.iter_markers()), "fixtures": list(i.fixturenames)}
               for i in session.items}
        json.dump(out, open(sys.argv[1], "w"))

sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[Groups()]))
'''


def test_every_test_that_starts_something_is_in_one_of_two_xdist_groups(tmp_path: Path) -> None:
    """The real suite's collection: what `--dist loadgroup` keeps on one worker, and what on the other
    (tests/support/lanes.py)."""
    assert group_of(["parametrize", "timeout"]) is None and group_of(["timeout"], ["smollm2_server"]) is None
    assert group_of([SERVER]) == group_of([SERVER], ["toy_server", "gemma2_server", "tmp_path"]) == TOY
    assert group_of([PREFECT, SERVER]) == group_of([BROWSER]) == group_of([SERVER], ["smollm2_server"]) == STARTS
    dump = tmp_path / "groups.json"
    out = subprocess.run([sys.executable, "-c", COLLECT, str(dump)], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    items = json.loads(dump.read_text())
    assert len(items) > 600
    for nodeid, it in items.items():
        starts = bool({SERVER, PREFECT, BROWSER} & set(it["marks"]))
        pinned = nodeid.startswith("tests/test_utilization.py")  # measures a server's load: the lane that ends last
        assert it["group"] == (STARTS if pinned and starts else group_of(it["marks"], it["fixtures"])), nodeid
        if starts and {"readme_run", "prefect_server", "smollm2_server"} & set(it["fixtures"]):
            assert it["group"] == STARTS, nodeid
        if it["group"] == TOY:
            assert not {PREFECT, BROWSER} & set(it["marks"]) and not LARGER_SERVERS & set(it["fixtures"]), nodeid
    late = [LATE_FIXTURES & set(it["fixtures"]) != set() for it in items.values()]
    assert late.index(True) == len(late) - sum(late) > 600, "the README run's readers last (run_late)"
    groups = Counter(it["group"] for it in items.values())
    assert groups[STARTS] > 30 and groups[TOY] > 30 and groups[None] > 500, groups


def test_the_suites_servers_run_one_lanes_share_of_the_cores(toy_server: Endpoint) -> None:
    """The two lanes' servers run at once: each engine gets the cores over the two lanes as OpenMP threads (one on
    this 2-core machine; tests/conftest.py), so two engines do not spin waiting on each other's workers."""
    want = os.environ.get("OMP_NUM_THREADS")
    assert want is not None, "tests/conftest.py sets OMP_NUM_THREADS for the servers the suite starts"
    port = toy_server.base_url.rstrip("/").rsplit(":", 1)[1]
    servers = [p for p in vllm_processes() if f"--port {port}" in " ".join(p.cmdline())]
    assert servers, f"the toy server on port {port} not found among this session's vLLM processes"
    # the engine inherits the API server's environment (it is spawned from it; its own /proc environ is unreadable
    # once it renames itself VLLM::EngineCore)
    assert servers[0].environ().get("OMP_NUM_THREADS") == want
