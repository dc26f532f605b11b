"""``era sync SOURCE DEST``: copy a results folder between storage and a local folder.

A submitted job on object storage ends with ``era sync <head results folder> STORAGE/<suite>``;
users pull the same way (``era sync s3://BUCKET/era/smoke results/smoke``). Tune's checkpoints
(``tune/``) stay behind unless ``--with-checkpoints``.
"""

from __future__ import annotations

import argparse

from harness.errors import EXIT_FAILED, EXIT_OK, command_error

__all__ = ["add_parser", "sync_command"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sync",
        help="copy a results folder to or from storage (s3://, gs://, a shared path)",
        description=(
            "Copy the files of a results folder (results.parquet, trials.parquet, suite.json, "
            "trials/, report/) from SOURCE to DEST; either may be a path or a URI (s3://, gs://, "
            "hdfs://, file://). Local files are replaced atomically."
        ),
    )
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("destination", metavar="DEST")
    parser.add_argument("--with-checkpoints", action="store_true",
                        help="also copy Tune's folder (tune/: checkpoints and logs; can be large)")
    parser.set_defaults(handler=sync_command)


def sync_command(args: argparse.Namespace) -> int:
    from adapters.errors import ConfigError
    from harness.cluster import storage

    try:
        source, destination = storage.normalize(args.source), storage.normalize(args.destination)
        copied = storage.copy_tree(source, destination, skip=() if args.with_checkpoints else ("tune",))
    except ConfigError as error:
        return command_error("sync", error)
    except OSError as error:  # storage refused (credentials, permissions, network)
        return command_error("sync", f"copying {args.source} to {args.destination} failed: {error}", EXIT_FAILED)
    print(f"copied {copied} files from {source} to {destination}")
    return EXIT_OK
