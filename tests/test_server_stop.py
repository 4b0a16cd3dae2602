"""Stopping a server's process group (grace.serving.local.kill_group) with real processes shaped like vLLM's: a
leader (the API server) and its child (the EngineCore). On SIGTERM the child exits at once, and the leader, busy
closing its connections, does not reap it: the child stays a zombie. Waiting for that zombie to vanish held a
server stopped under load for the whole grace period (15 s against 1.5 s idle, measured on the toy model)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from grace.serving.local import kill_group

# The leader starts its child and, on SIGTERM, stays busy for `linger` seconds without reaping it.
LEADER = """
import signal, subprocess, sys, time
linger = float(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (time.sleep(linger), sys.exit(0)))
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)  # the handler is in place before the test reads this and stops the group
time.sleep(120)
"""


def start_group(linger: float) -> tuple[subprocess.Popen[str], psutil.Process]:
    leader = subprocess.Popen([sys.executable, "-c", LEADER, str(linger)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert leader.stdout is not None
    child = psutil.Process(int(leader.stdout.readline()))
    return leader, child


def stop(leader: subprocess.Popen[str], **kw: float) -> float:
    """Seconds kill_group took; the leader is gone after it (reaped by kill_group's wait, so Popen sees no status)."""
    t0 = time.monotonic()
    kill_group(leader.pid, pgid=leader.pid, **kw)
    took = time.monotonic() - t0
    leader.wait(timeout=10)
    assert not psutil.pid_exists(leader.pid) or psutil.Process(leader.pid).status() == psutil.STATUS_ZOMBIE
    return took


def test_a_child_left_a_zombie_does_not_hold_the_stop_for_the_grace_period() -> None:
    leader, child = start_group(linger=60)  # a leader that would outlast the grace period
    took = stop(leader, grace_s=20)  # drain_s: 3 s once the child has exited
    assert 2.9 < took < 8, f"the stop took {took:.1f} s: the leader is killed drain_s after its child exited"
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_leader_that_exits_in_time_is_not_killed() -> None:
    leader, child = start_group(linger=0.5)
    took = stop(leader, grace_s=20, drain_s=5)
    assert 0.4 < took < 4.5, f"the stop took {took:.1f} s: the leader exits 0.5 s after SIGTERM, within drain_s"
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    leader = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                               "signal.SIG_IGN); print(1, flush=True); time.sleep(120)"], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    assert leader.stdout is not None and leader.stdout.readline()
    took = stop(leader, grace_s=1.5)
    assert 1.4 < took < 6, took
