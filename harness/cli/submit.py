"""``era submit SUITE`` and the commands that follow a submitted job: ``era status``, ``era logs``,
``era stop`` (Ray Jobs, see :mod:`harness.cluster.jobs`).

Exit codes: 0 success (``submit --wait``: the job succeeded); 1 the job failed or was stopped
(``--wait`` passes on the run's own exit code when there is one); 2 bad input or no cluster:
a bad suite, storage or address, an unknown job id. Nothing is submitted on exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from harness.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, command_error

__all__ = ["add_parser", "submit_command", "status_command", "logs_command", "stop_command"]

_ADDRESS_HELP = ("the head's dashboard, e.g. http://HEAD:8265 (default: $RAY_JOBS_ADDRESS, else "
                 "$RAY_ADDRESS); token auth: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN")


def _address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None, metavar="URL", help=_ADDRESS_HELP)


def add_parser(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit",
        help="run a suite on a Ray cluster as a Ray Job (era run on the head node)",
        description=(
            "Check SUITE here, then submit it as a Ray Job: the head node runs `era run SUITE "
            "--address auto` with this project's code, and Tune spreads the trials over the cluster. "
            "Results and the report go to STORAGE/<suite>/, which `era report` reads from any machine. "
            "Submitting the same suite and storage again continues the run."
        ),
    )
    submit.add_argument("suite", type=Path, metavar="SUITE", help="a suite file, e.g. suites/smoke.yaml")
    _address(submit)
    submit.add_argument("--storage", default=None, metavar="URI",
                        help="where results, checkpoints and the report go: s3://BUCKET/era, gs://..., or a "
                             "path every node mounts (default: $ERA_STORAGE, else ~/era-results on the head, "
                             "fine for a one-machine cluster only)")
    submit.add_argument("--out", default=None, metavar="DIR",
                        help="the results folder on the head node (default: STORAGE/<suite> for a path, "
                             "~/era-results/<suite> for object storage, copied to STORAGE/<suite> at the end)")
    submit.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                        help="run at most N trials at once (default: the suite's, else as many as fit)")
    submit.add_argument("--job-id", default=None, metavar="ID", help="the job's submission id (default era-<suite>-<time>)")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job's output until it ends; exit with its outcome")
    submit.set_defaults(handler=submit_command)

    status = commands.add_parser("status", help="show a submitted job's status (no JOB_ID: list the jobs)",
                                 description="Status, results location and exit code of a job; without "
                                             "JOB_ID, every job on the cluster.")
    status.add_argument("job_id", nargs="?", default=None, metavar="JOB_ID")
    _address(status)
    status.set_defaults(handler=status_command)

    logs = commands.add_parser("logs", help="print a submitted job's output",
                               description="Print what the job's driver (era run on the head) printed.")
    logs.add_argument("job_id", metavar="JOB_ID")
    _address(logs)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(handler=logs_command)

    stop = commands.add_parser("stop", help="stop a submitted job",
                               description="Stop the job (its driver gets SIGTERM, then SIGKILL); the "
                                           "trials it finished stay in its results. Submit again to continue.")
    stop.add_argument("job_id", metavar="JOB_ID")
    _address(stop)
    stop.add_argument("--no-wait", action="store_true", help="return without waiting for the job to end")
    stop.set_defaults(handler=stop_command)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _address_flag(args: argparse.Namespace) -> str:
    """How the follow-up commands should name the cluster (nothing when it came from the env)."""
    return f" --address {args.address}" if args.address else ""


def _when(stamp_ms: int | None) -> str:
    return "-" if not stamp_ms else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp_ms / 1000))


def submit_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError, MissingDependencyError
    from harness.cluster import jobs
    from harness.suite import load_and_expand

    if args.max_concurrent is not None and args.max_concurrent < 1:
        return command_error("submit", f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    try:  # a bad suite never reaches the cluster
        suite, trials = load_and_expand(args.suite)
        storage = args.storage or os.environ.get("ERA_STORAGE") or None
        # storage and --out are checked before anything is staged or sent
        plan = jobs.plan_submission(suite, "SUITE", storage, args.out, args.max_concurrent, args.job_id)
        address = jobs.resolve_address(args.address)
        client = jobs.connect(address)
        with jobs.staged(args.suite) as (working_dir, suite_file):
            plan = jobs.plan_submission(suite, suite_file, storage, args.out, args.max_concurrent,
                                        plan.submission_id)
            job_id = jobs.submit(client, address, plan, working_dir)
    except (ConfigError, MissingDependencyError) as error:
        return command_error("submit", str(error))

    gpus = sum(t.resources.gpus for t in trials)
    print(f"submitted {suite.name} ({len(trials)} trials{f', {gpus:g} GPUs in all' if gpus else ''}) "
          f"to {address} as job {job_id}")
    print(f"results: {plan.results}    report: {plan.report}")
    if not storage:
        print("note: no --storage: results stay on the head node; on a multi-node cluster give "
              "--storage s3://BUCKET/era or a path every node mounts", file=sys.stderr)
    where = _address_flag(args)
    print(f"follow:  era logs {job_id} --follow{where}")
    print(f"status:  era status {job_id}{where}")
    print(f"stop:    era stop {job_id}{where}")
    print(f"report:  era report {plan.results}   (once it has finished)")
    if not args.wait:
        return EXIT_OK
    return _follow_to_end(client, address, job_id, args)


def _follow_to_end(client, address: str, job_id: str, args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError
    from harness.cluster import jobs

    try:
        jobs.follow_logs(client, address, job_id, _write)
        info = jobs.wait(client, address, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job goes on (era stop {job_id}{_address_flag(args)} stops it)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except ConfigError as error:
        return command_error("submit", str(error), EXIT_FAILED)
    return _outcome(job_id, info)


def _outcome(job_id: str, info) -> int:
    status = str(info.status)
    print(f"job {job_id}: {status}" + (f" ({info.message})" if status != "SUCCEEDED" and info.message else ""))
    if status == "SUCCEEDED":
        return EXIT_OK
    code = info.driver_exit_code
    return code if isinstance(code, int) and code > 0 else EXIT_FAILED


def status_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError
    from harness.cluster import jobs

    try:
        address = jobs.resolve_address(args.address)
        client = jobs.connect(address)
        if args.job_id is None:
            listed = jobs.list_jobs(client, address)
            if not listed:
                print(f"no jobs at {address}")
            for job in listed:
                suite = (job.metadata or {}).get("era_suite", "-")
                print(f"{job.submission_id}  {str(job.status):9}  {suite:20}  started {_when(job.start_time)}")
            return EXIT_OK
        info = jobs.job_info(client, address, args.job_id)
    except ConfigError as error:
        return command_error("status", str(error))
    meta = info.metadata or {}
    print(f"job {args.job_id}: {info.status}")
    if info.message:
        print(f"  message: {info.message}")
    print(f"  started: {_when(info.start_time)}   ended: {_when(info.end_time)}")
    if info.driver_exit_code is not None:
        print(f"  exit code: {info.driver_exit_code}")
    if meta.get("era_suite"):
        print(f"  suite: {meta['era_suite']}   results: {meta.get('era_results')}   report: {meta.get('era_report')}")
    print(f"  entrypoint: {info.entrypoint}")
    return EXIT_OK


def logs_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError
    from harness.cluster import jobs

    try:
        address = jobs.resolve_address(args.address)
        client = jobs.connect(address)
        if args.follow:
            jobs.follow_logs(client, address, args.job_id, _write)
        else:
            _write(jobs.logs(client, address, args.job_id))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ConfigError as error:
        return command_error("logs", str(error))
    return EXIT_OK


def stop_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError
    from harness.cluster import jobs

    try:
        address = jobs.resolve_address(args.address)
        client = jobs.connect(address)
        was_running = jobs.stop(client, address, args.job_id)
        if args.no_wait:
            print(f"job {args.job_id}: stop requested" if was_running else f"job {args.job_id} had already ended")
            return EXIT_OK
        info = jobs.wait(client, address, args.job_id, timeout_s=120)
    except ConfigError as error:
        return command_error("stop", str(error))
    print(f"job {args.job_id}: {info.status}")
    return EXIT_OK if str(info.status) in jobs.TERMINAL else EXIT_FAILED
