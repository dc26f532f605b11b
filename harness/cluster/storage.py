"""Where a suite's results live on a cluster: a path every node mounts, or object storage.

Under a storage location ``S`` (``era submit --storage S``) each suite gets one folder::

    S/<suite>/                results.parquet, trials.parquet, suite.json, trials/ (``era run --out``)
    S/<suite>/tune/           Ray Tune's checkpoints and logs (``RunConfig(storage_path=...)``)
    S/<suite>/report/         report.md, report.json, figures/

A path (NFS, EFS, or a plain folder when the whole cluster is one machine) is written directly.
Object storage (``s3://``, ``gs://``, ...) is reached through pyarrow's filesystems, as Tune does:
Tune writes its checkpoints there itself, and the results folder, kept on the head node while the
job runs, is copied there when it ends (``era sync``). ``era report S/<suite>`` and ``era sync``
read it back from any machine with access.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from adapters.errors import ConfigError
from harness.store import write_atomic

__all__ = [
    "SCHEMES",
    "is_uri",
    "normalize",
    "join",
    "copy_tree",
    "results_folder",
    "RESULT_FILES",
]

#: URI schemes pyarrow's ``FileSystem.from_uri`` understands (Tune's storage support uses it)
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")
#: what ``era report`` needs from a results folder
RESULT_FILES = ("results.parquet", "trials.parquet", "suite.json")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


def is_uri(location: str) -> bool:
    """Whether ``location`` names object storage (``scheme://...``) rather than a path."""
    return bool(_URI.match(str(location)))


def normalize(location: str) -> str:
    """An absolute path, or a URI with a scheme pyarrow can open; anything else is a ``ConfigError``."""
    location = str(location).strip()
    if not location:
        raise ConfigError("empty storage location: give a shared path (/mnt/shared/era) or a URI (s3://BUCKET/era)")
    match = _URI.match(location)
    if match is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", location):  # s3:/bucket: a slash lost somewhere
            raise ConfigError(f"{location!r} is not a URI: write SCHEME://BUCKET/PATH, e.g. s3://my-bucket/era")
        return os.path.abspath(os.path.expanduser(location))
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in SCHEMES:
        raise ConfigError(
            f"storage scheme {scheme!r} is not supported: use a shared path or one of "
            f"{', '.join(s + '://' for s in SCHEMES)}"
        )
    if not rest.strip("/"):
        raise ConfigError(f"{location!r} names no bucket or folder: write {scheme}://BUCKET/PATH")
    return f"{scheme}://{rest.rstrip('/') or '/'}"


def join(location: str, *parts: str) -> str:
    """``location/part/...`` for a path or a URI."""
    if is_uri(location):
        return posixpath.join(location.rstrip("/"), *parts)
    return os.path.join(location, *parts)


def _filesystem(location: str):
    """(pyarrow filesystem, path inside it) for a path or a URI."""
    import pyarrow.fs

    if is_uri(location):
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), os.path.abspath(location)


def copy_tree(source: str, destination: str, *, skip: tuple[str, ...] = ("tune",)) -> int:
    """Copy the files under ``source`` to ``destination`` (paths or URIs); returns how many.

    Hidden files (locks, temporary files) and the top-level folders in ``skip`` (Tune's checkpoints,
    large and not needed for reports) stay behind. A local destination file is replaced atomically
    (temp file + rename), so a reader never sees half a parquet file; an object store's put is
    atomic already. Raises ``ConfigError`` when ``source`` holds nothing.
    """
    import pyarrow.fs

    src_fs, src_root = _filesystem(source)
    dst_fs, dst_root = _filesystem(destination)
    info = src_fs.get_file_info(src_root)
    if info.type == pyarrow.fs.FileType.NotFound:
        raise ConfigError(f"nothing at {source}: check the location (era status JOB_ID shows where a job writes)")
    if info.type == pyarrow.fs.FileType.File:
        raise ConfigError(f"{source} is a file: give the results folder that holds it")
    local = isinstance(dst_fs, pyarrow.fs.LocalFileSystem)
    copied = 0
    for item in src_fs.get_file_info(pyarrow.fs.FileSelector(src_root, recursive=True)):
        if item.type != pyarrow.fs.FileType.File:
            continue
        relative = posixpath.relpath(item.path, src_root.rstrip("/") or "/")
        parts = relative.split("/")
        if any(p.startswith(".") for p in parts) or (len(parts) > 1 and parts[0] in skip):
            continue
        target = posixpath.join(dst_root.rstrip("/"), relative)
        dst_fs.create_dir(posixpath.dirname(target), recursive=True)

        def copy(written: str, source: str = item.path) -> None:
            with src_fs.open_input_stream(source) as reader, dst_fs.open_output_stream(str(written)) as writer:
                while chunk := reader.read(1 << 20):
                    writer.write(chunk)

        if local:  # a local reader never sees a half-copied file; object stores write whole objects
            write_atomic(target, copy)
        else:
            copy(target)
        copied += 1
    return copied


@contextlib.contextmanager
def results_folder(location: str | os.PathLike) -> Iterator[Path]:
    """A local folder holding the results at ``location``: the folder itself for a path, a
    temporary copy of its tables for a URI (``era report s3://BUCKET/era/<suite>``)."""
    location = str(location)
    if not is_uri(location):
        yield Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="era-results-") as tmp:
        import pyarrow.fs

        found = 0
        try:
            fs, root = _filesystem(normalize(location))
            for name in RESULT_FILES:
                path = posixpath.join(root, name)
                if fs.get_file_info(path).type == pyarrow.fs.FileType.File:
                    _download(fs, path, Path(tmp) / name)
                    found += 1
        except OSError as error:  # pyarrow: no credentials, no such bucket, no network
            raise ConfigError(f"cannot read {location}: {error}; check the URI and this machine's "
                              f"credentials for it") from None
        if not found:
            raise ConfigError(
                f"{location} holds none of {', '.join(RESULT_FILES)}: give the suite's folder "
                f"(STORAGE/<suite>), as era submit printed it"
            )
        yield Path(tmp)


def _download(fs, path: str, target: Path) -> None:
    with fs.open_input_stream(path) as reader, open(target, "wb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
