"""Finding and stopping the processes a test started, by PID (never by name: the machine is shared)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["descendants", "stop_leftovers"]


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
