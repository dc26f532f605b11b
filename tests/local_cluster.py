"""A real multi-node Ray cluster on this machine for tests: a head (with the Jobs server) and worker
nodes, each a separate ``ray start`` on 127.0.0.1 (docs/harness.md).

Every process gets the same ``RAY_AUTH_MODE`` and token, a private temp dir and free ports, so the
cluster cannot meet another Ray on the machine. Teardown stops only what the cluster started, by
PID: the processes whose command line holds its temp dir or its GCS address, and their
descendants (SIGTERM, then SIGKILL). Never ``ray stop``: it kills every Ray process on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Node:
    """One ``ray start``: its raylet is found by the node-manager port it was given."""

    name: str
    node_manager_port: int
    log: Path

    def raylet(self) -> psutil.Process | None:
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if (process.info["name"] or "").startswith("raylet") and \
                    f"--node_manager_port={self.node_manager_port}" in cmdline:
                return process
        return None

    def processes(self) -> list[psutil.Process]:
        """The raylet and everything below it: workers (trial actors), agents."""
        raylet = self.raylet()
        if raylet is None:
            return []
        try:
            return [raylet, *raylet.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


@dataclass
class LocalCluster:
    """Start with :meth:`start_head`, add nodes with :meth:`add_worker`, end with :meth:`shutdown`."""

    root: Path
    auth_mode: str = "token"
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        # unix socket paths are limited to ~107 bytes: keep the temp dir short
        self.temp_dir = Path(tempfile.mkdtemp(prefix="era-mn-", dir="/tmp"))

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def jobs_address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, with_token: bool = True) -> dict[str, str]:
        """The environment of every process of this cluster, and of clients that talk to it."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_JOBS_ADDRESS", "ERA_STORAGE"))}
        env.update({
            "RAY_TMPDIR": str(self.temp_dir),
            "TMPDIR": str(self.temp_dir),  # trials' scratch folders, the dashboard's pymp-* dirs
            "RAY_AUTH_MODE": self.auth_mode,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # `era` for the job's entrypoint
            "MUJOCO_GL": env.get("MUJOCO_GL", "disable"),
        })
        if with_token and self.auth_mode == "token":
            env["RAY_AUTH_TOKEN"] = self.token
        elif not with_token:  # a client that was told nothing about the cluster's authentication
            del env["RAY_AUTH_MODE"]
        return env

    def _start(self, name: str, args: list[str]) -> Node:
        port = free_port()
        log = self.root / f"{name}.log"
        command = [RAY, "start", *args, "--node-manager-port", str(port),
                   "--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats"]
        with open(log, "w") as handle:
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=self.env(),
                                  timeout=120, cwd=self.root)
        node = Node(name, port, log)
        self.nodes.append(node)  # before the check: a half-started node is still torn down
        if done.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{log.read_text()[-3000:]}")
        return node

    def start_head(self, num_cpus: int = 1) -> Node:
        return self._start("head", [
            "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.gcs_port),
            "--num-cpus", str(num_cpus), "--num-gpus", "0", "--temp-dir", str(self.temp_dir),
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(free_port()),
        ])

    def add_worker(self, num_cpus: int = 1) -> Node:
        name = f"worker{len(self.nodes)}"
        # its own temp dir, as on another machine: sharing the head's, both nodes' runtime-env
        # agents would unpack (and delete) the job's working_dir in one place, under the driver
        return self._start(name, [
            "--address", self.gcs_address, "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(num_cpus), "--num-gpus", "0", "--temp-dir", str(self.temp_dir / name),
        ])

    def alive_nodes(self) -> int:
        """Alive nodes, as the dashboard's state API reports them."""
        request = urllib.request.Request(
            f"{self.jobs_address}/api/v0/nodes?limit=100",
            headers={"Authorization": f"Bearer {self.token}"} if self.auth_mode == "token" else {},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            rows = json.loads(reply.read())["data"]["result"]["result"]
        return sum(1 for row in rows if row.get("state") == "ALIVE")

    def wait_for_nodes(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.alive_nodes() >= count:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} Ray nodes not alive after {timeout_s} s")
            time.sleep(0.5)

    def kill_node(self, node: Node) -> list[int]:
        """SIGKILL a node's raylet and everything below it: the machine is gone, as far as Ray knows."""
        victims = node.processes()
        for process in victims:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)
        return [p.pid for p in victims]

    def own_processes(self) -> list[psutil.Process]:
        """Every process this cluster started, found by its temp dir or GCS address, with descendants."""
        marks = (str(self.temp_dir), self.gcs_address, f"127.0.0.1:{self.dashboard_port}")
        found: dict[int, psutil.Process] = {}
        me = os.getpid()
        for process in psutil.process_iter(["cmdline"]):
            if process.pid == me:
                continue
            cmdline = " ".join(process.info["cmdline"] or [])
            if any(mark in cmdline for mark in marks):
                found[process.pid] = process
        for node in self.nodes:
            for process in node.processes():
                found.setdefault(process.pid, process)
        for process in list(found.values()):
            try:
                for child in process.children(recursive=True):
                    found.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                continue
        found.pop(me, None)
        return list(found.values())

    def shutdown(self, grace_s: float = 3.0) -> list[int]:
        """Stop this cluster's processes (SIGTERM, then SIGKILL after ``grace_s``); returns their PIDs.

        Two rounds: a process that was starting during the first (a worker the raylet forked) is
        caught by the second.
        """
        stopped = []
        for _ in range(2):
            stopped += self._stop(self.own_processes(), grace_s)
        return stopped

    @staticmethod
    def _stop(victims: list[psutil.Process], grace_s: float) -> list[int]:
        for process in victims:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(victims, timeout=grace_s)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        return [p.pid for p in victims]
