"""The suite's per-test timeout (pyproject.toml, pytest-timeout): a hanging test fails alone, the next test still
runs, and session fixtures are still torn down (the servers they started are stopped)."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

from tests.conftest import ROOT

CONFTEST = '''
import pytest

@pytest.fixture(scope="session")
def server(tmp_path_factory):
    yield "up"
    (tmp_path_factory.getbasetemp().parent / "torn-down").write_text("yes")  # as a real fixture stops a server
'''

TESTS = '''
import time
import pytest

@pytest.mark.timeout(3)
def test_hangs(server):
    time.sleep(600)

def test_after(server):
    assert server == "up"
'''


def test_configured_timeout_and_method() -> None:
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < int(opts["timeout"]) <= 900
    assert opts["timeout_method"] == "signal"  # "thread" would end the whole session with os._exit
    assert opts["timeout_func_only"] is True  # shared fixtures' start-up is not charged to the first test using them


def test_a_hang_fails_one_test_and_fixtures_still_tear_down(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_hang.py").write_text(TESTS)
    t0 = time.monotonic()
    # the project's pytest settings (method, func_only, addopts), a tiny suite of its own
    out = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(suite),
                          "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "base"), str(suite)],
                         capture_output=True, text=True, timeout=300, cwd=suite)
    took = time.monotonic() - t0
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    assert "Timeout (>3.0s) from pytest-timeout" in said and "1 failed, 1 passed" in said, said
    assert (tmp_path / "torn-down").read_text() == "yes", "the session fixture was not torn down"
    assert took < 120, f"a 3 s timeout took {took:.0f} s"
