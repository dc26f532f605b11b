"""Finding and stopping the processes a test started, by PID (never by name: the machine is shared)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["descendants", "stop_leftovers", "kill_when"]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> dict[int, bytes]:
    """Every process below ``pid``, with its command line (to recognise it after a PID reuse)."""
    found, todo = {}, [pid]
    while todo:
        for child in _children(todo.pop()):
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            todo.append(child)
    return found


def stop_leftovers(processes: dict[int, bytes], wait_s: float = 10.0) -> None:
    """docs/harness.md: the driver's Ray processes die with it; stop any that did not, by PID."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        alive = {p: c for p, c in processes.items() if _same_process(p, c)}
        if not alive:
            return
        time.sleep(0.25)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _same_process(pid: int, cmdline: bytes) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], log: Path, waiting_for: str,
              timeout_s: float = 240, poll_s: float = 0.1) -> None:
    """SIGKILL ``process`` by its PID as soon as ``ready()``, then stop whatever it left; fails if it
    ends first (showing ``log``) or nothing is ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, "the run ended before it could be killed:\n" + log.read_text()
        assert time.monotonic() < deadline, f"no {waiting_for} in {timeout_s:g} s"
        time.sleep(poll_s)
    processes = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    stop_leftovers(processes)
