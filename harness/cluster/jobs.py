"""Ray Jobs for era-harness: submit a suite to a cluster's head node, then follow, inspect or stop it.

A job runs ``era run SUITE --address auto`` on the head node, through Ray's ``JobSubmissionClient``
with this project's code as the job's ``working_dir``; the Tune driver there spreads the trials
over the cluster and writes results to the storage every node can reach (:mod:`harness.cluster.storage`).

Addresses follow Ray's conventions: ``--address``, else ``RAY_JOBS_ADDRESS``, else ``RAY_ADDRESS``,
all naming the head's dashboard (``http://HEAD:8265``). Token authentication (on by default in
recent Ray): the client sends ``RAY_AUTH_TOKEN`` (or the file ``RAY_AUTH_TOKEN_PATH``) when set, and
Ray's client sends ``~/.ray/auth_token`` when ``RAY_AUTH_MODE=token``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.cluster import storage
from harness.errors import ClusterError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from harness.suite import Suite

__all__ = [
    "ADDRESS_VARIABLES",
    "TERMINAL",
    "resolve_address",
    "auth_headers",
    "connect",
    "Submission",
    "plan_submission",
    "stage_working_dir",
    "staged",
    "submit",
    "job_info",
    "list_jobs",
    "stop",
    "wait",
    "logs",
    "follow_logs",
]

#: where the jobs address comes from when ``--address`` is not given, first set wins
ADDRESS_VARIABLES = ("RAY_JOBS_ADDRESS", "RAY_ADDRESS")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: results folder on the head node when no storage is given (the driver's shell expands $HOME)
HEAD_RESULTS = "$HOME/era-results"
#: set in a job's environment: the job's working_dir carries the code to every task of the job, so
#: ``era run`` inside it ships nothing more (``harness.run.runner``)
CODE_SHIPPED = "ERA_CODE_SHIPPED"
#: what ships as the job's working_dir besides the suite: the packages and the suites folder
_SHIPPED = ("adapters", "harness", "suites", "pyproject.toml")
_WRONG_TOKEN = ("the cluster refused the token it was sent: export the head's token (`ray get-auth-token` "
                "on the head) as RAY_AUTH_TOKEN")
_AUTH_HINT = (
    "the cluster uses token authentication: export RAY_AUTH_MODE=token and the head's token as "
    "RAY_AUTH_TOKEN (print it on the head with `ray get-auth-token`), or put it in ~/.ray/auth_token"
)


# --------------------------------------------------------------------------- connecting
def resolve_address(address: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The Jobs API address: ``address``, else ``RAY_JOBS_ADDRESS``, else ``RAY_ADDRESS``.

    ``HOST:PORT`` gets ``http://`` (the dashboard speaks HTTP); ``auto`` is left to Ray (it finds
    the cluster this machine is part of).
    """
    environ = os.environ if environ is None else environ
    chosen = address or next((environ[v] for v in ADDRESS_VARIABLES if environ.get(v)), None)
    if not chosen:
        raise ClusterError(
            "no cluster address: pass --address http://HEAD:8265 (the head's dashboard) or export "
            "RAY_ADDRESS=http://HEAD:8265; after `ray up cluster.yaml`, `ray dashboard cluster.yaml` "
            "forwards it to http://127.0.0.1:8265"
        )
    chosen = chosen.strip().rstrip("/")
    if chosen == "auto" or "://" in chosen:
        return chosen
    return f"http://{chosen}"


def auth_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """An ``Authorization`` header from ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``, if either is set.

    Sent even when ``RAY_AUTH_MODE`` is unset, so exporting the token is enough; a cluster without
    authentication ignores it.
    """
    environ = os.environ if environ is None else environ
    token = environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token and environ.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(environ["RAY_AUTH_TOKEN_PATH"]).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as error:
            raise ClusterError(f"RAY_AUTH_TOKEN_PATH={path} cannot be read ({error.strerror}): fix the path "
                               f"or unset it") from None
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client_headers() -> dict[str, str]:
    """The headers Ray's client will send: ours, else Ray's own token (``RAY_AUTH_MODE=token``)."""
    headers = auth_headers()
    if not headers:
        try:
            from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled
        except ImportError:  # pragma: no cover - a Ray without token authentication
            return {}
        headers = dict(get_auth_headers_if_auth_enabled({}))
    return headers


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast, with the fix, when nothing (or no Ray dashboard) answers at ``address``.

    Ray's client would wait without a timeout on a host that drops packets, and reports a
    refused connection as a bare ``ConnectionError``.
    """
    import requests

    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # ray://, auto: Ray resolves those itself
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    fix = ("start the head with `ray start --head` (it serves the Jobs API on its dashboard, port 8265 "
           "by default; needs ray[default]), or check --address / RAY_ADDRESS")
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ClusterError(f"nothing answers at {address} ({reason}): {fix}") from None
    headers = _client_headers()
    try:
        reply = requests.get(f"{address}/api/version", timeout=timeout_s, headers=headers)
        refused = reply.status_code in (401, 403)
        if not refused:
            reply.raise_for_status()
            reply.json()["ray_version"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        raise ClusterError(f"{where} answers, but not as a Ray dashboard with the Jobs API: {fix}") from None
    if refused:
        wrong = reply.status_code == 403 or bool(headers)
        raise ClusterError(f"{address}: {_WRONG_TOKEN if wrong else _AUTH_HINT}")


@contextlib.contextmanager
def _translated(address: str, job_id: str | None = None) -> Iterator[None]:
    """Ray client errors as ``ClusterError`` naming the fix."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as error:
        wrong = "invalid or incorrect" in str(error) or "403" in str(error)
        problem = _WRONG_TOKEN if wrong else _AUTH_HINT
        raise ClusterError(f"{address}: {problem}") from None
    except (ConnectionError, requests.ConnectionError, requests.Timeout) as error:
        raise ClusterError(f"lost the connection to {address} ({error}): is the head still up?") from None
    except RuntimeError as error:
        text = str(error)
        if job_id is not None and ("404" in text or "does not exist" in text):
            raise ClusterError(
                f"no job {job_id!r} at {address}: `era status` lists the jobs there"
            ) from None
        raise ClusterError(f"{address}: the Jobs API failed: {text}") from None


#: Ray client loggers whose INFO lines (package uploads, websocket closing) only repeat what era prints
_CHATTY = ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk", "ray._private.runtime_env.packaging")


def connect(address: str | None = None, timeout_s: float = 10.0) -> "JobSubmissionClient":
    """A ``JobSubmissionClient`` for the cluster at ``address`` (see :func:`resolve_address`)."""
    import logging

    from ray.job_submission import JobSubmissionClient

    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)

    resolved = resolve_address(address)
    _probe(resolved, timeout_s)
    with _translated(resolved):
        return JobSubmissionClient(resolved, headers=auth_headers() or None)


# --------------------------------------------------------------------------- submitting
@dataclass(frozen=True)
class Submission:
    """What ``era submit`` sends: the command the head runs and where its results land."""

    submission_id: str
    entrypoint: str
    results: str
    report: str
    env_vars: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def _quoted_location(location: str) -> str:
    """Shell-quote a location, leaving a leading ``$HOME`` for the head's shell to expand."""
    if location.startswith("$HOME/"):
        return '"$HOME"/' + shlex.quote(location[len("$HOME/"):])
    return shlex.quote(location)


def _head_path(path: str) -> str:
    """A path on the head node: absolute, or under ``$HOME`` (``~/x`` is written ``$HOME/x``)."""
    path = str(path).strip()
    if path == "~" or path.startswith("~/"):
        return "$HOME" + path[1:]
    if path.startswith("$HOME/") or os.path.isabs(path):
        return path
    raise ClusterError(f"--out {path!r} is relative, but it names a folder on the head node: give an "
                       f"absolute path or one under ~/")


def plan_submission(suite: "Suite", suite_file: str, storage_location: str | None,
                    out: str | None = None, max_concurrent: int | None = None,
                    submission_id: str | None = None) -> Submission:
    """The job for ``suite``: ``era run`` on the head, results under ``storage_location/<suite>``.

    ``suite_file`` is the suite's path inside the job's working_dir. With object storage, Tune
    writes checkpoints there directly and the results folder (``out``, default
    ``~/era-results/<suite>`` on the head) is copied there when the run ends, whatever its outcome.
    Without storage everything stays on the head node: fine for a one-machine cluster only.
    """
    location = storage.normalize(storage_location) if storage_location else None
    out = _head_path(out) if out else None
    remote = location is not None and storage.is_uri(location)
    if location is None:
        results = out or f"{HEAD_RESULTS}/{suite.name}"
        tune = None
    elif remote:
        results = out or f"{HEAD_RESULTS}/{suite.name}"
        tune = storage.join(location, suite.name, "tune")
    else:  # a shared path: the results folder there, and Tune's folder inside it (era run's default)
        results = out or storage.join(location, suite.name)
        tune = storage.join(location, suite.name, "tune") if out else None
    report = storage.join(results, "report")
    command = ["era", "run", suite_file, "--address", "auto", "--out", results, "--report-dir", report]
    if tune:
        command += ["--storage", tune]
    if max_concurrent:
        command += ["--max-concurrent", str(max_concurrent)]
    entrypoint = " ".join(_quoted_location(part) for part in command)
    published = results
    if remote:
        published = storage.join(location, suite.name)
        # copy the results folder to storage whatever the run's outcome, keep the run's exit code
        entrypoint = (f"{entrypoint}; code=$?; era sync {_quoted_location(results)} {shlex.quote(published)}"
                      f' || {{ [ "$code" -eq 0 ] && code=1; }}; exit $code')
    job_id = submission_id or f"era-{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    env_vars = {
        # the job's working_dir carries the code to every worker: era run inside the job ships nothing
        CODE_SHIPPED: "1",
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
        "PYTHONUNBUFFERED": "1",  # `era logs --follow` shows progress as it happens
    }
    metadata = {"era_suite": suite.name, "era_results": published,
                "era_report": storage.join(published, "report")}
    return Submission(job_id, entrypoint, published, storage.join(published, "report"), env_vars, metadata)


def stage_working_dir(suite_path: Path, into: Path) -> str:
    """Copy the code (``adapters``, ``harness``, ``suites``, ``pyproject.toml``) and the suite into
    ``into``, the job's working_dir; returns the suite's path inside it.

    Only these ship: a checkout's virtualenv, results and data stay behind whatever they are called.
    """
    import adapters
    import harness

    sources = {"adapters": Path(adapters.__file__).parent, "harness": Path(harness.__file__).parent}
    root = harness.project_root() or Path(harness.__file__).resolve().parents[1]
    for name in _SHIPPED:
        source = sources.get(name, root / name)
        target = into / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        elif source.is_file():
            shutil.copy2(source, target)
    job_suite = Path("era-job") / suite_path.name
    (into / job_suite).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(suite_path, into / job_suite)
    return job_suite.as_posix()


def submit(client: "JobSubmissionClient", address: str, plan: Submission, working_dir: Path) -> str:
    """Submit ``plan`` with ``working_dir`` uploaded as the job's code; returns the job id."""
    runtime_env = {"working_dir": str(working_dir), "env_vars": dict(plan.env_vars)}
    with _translated(address):
        return client.submit_job(entrypoint=plan.entrypoint, submission_id=plan.submission_id,
                                 runtime_env=runtime_env, metadata=dict(plan.metadata))


@contextlib.contextmanager
def staged(suite_path: Path) -> Iterator[tuple[Path, str]]:
    """A temporary working_dir holding the code and the suite: (folder, suite path inside it)."""
    with tempfile.TemporaryDirectory(prefix="era-job-") as tmp:
        yield Path(tmp), stage_working_dir(suite_path, Path(tmp))


# --------------------------------------------------------------------------- following
def job_info(client: "JobSubmissionClient", address: str, job_id: str) -> Any:
    """Ray's ``JobDetails`` of ``job_id``; an unknown id is a ``ClusterError``."""
    with _translated(address, job_id):
        return client.get_job_info(job_id)


def list_jobs(client: "JobSubmissionClient", address: str) -> list[Any]:
    """Every submitted job on the cluster, oldest first."""
    with _translated(address):
        jobs = [j for j in client.list_jobs() if j.submission_id]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def stop(client: "JobSubmissionClient", address: str, job_id: str) -> bool:
    """Ask Ray to stop ``job_id`` (SIGTERM to the driver, then SIGKILL); False if it had ended."""
    with _translated(address, job_id):
        return client.stop_job(job_id)


def wait(client: "JobSubmissionClient", address: str, job_id: str, timeout_s: float | None = None,
         poll_s: float = 1.0) -> Any:
    """Poll until ``job_id`` reaches a terminal status (or ``timeout_s`` passes); its ``JobDetails``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        info = job_info(client, address, job_id)
        if str(info.status) in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
            return info
        time.sleep(poll_s)


def logs(client: "JobSubmissionClient", address: str, job_id: str) -> str:
    """Everything the job's driver printed so far."""
    with _translated(address, job_id):
        return client.get_job_logs(job_id)


def follow_logs(client: "JobSubmissionClient", address: str, job_id: str,
                write: Callable[[str], None]) -> None:
    """Stream the job's output to ``write`` from its start until the job ends."""
    job_info(client, address, job_id)  # an unknown id: a clear error, not a websocket failure

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    with _translated(address, job_id):
        asyncio.run(tail())
