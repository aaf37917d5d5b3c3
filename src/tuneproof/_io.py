"""Atomic writes, and disk errors that name the path, the space and the fix.

:func:`atomic_write` and :func:`atomic_open` write to a temporary file beside the target,
flush it to disk, then rename it over the target (``os.replace``, atomic on POSIX): a
reader, or a rerun after a kill or a full disk, sees the old file or the new one, never
half of one. The temporary file is removed when the write fails.

:func:`disk_error` turns an ``OSError`` from a full disk (ENOSPC, EDQUOT, EFBIG) or an
unwritable folder (EACCES, EPERM, EROFS) into a :class:`DiskError` that names the path,
the free space there and, when known, the bytes the write needed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tuneproof.errors import TuneproofError

__all__ = ["DiskError", "atomic_open", "atomic_write", "disk_error", "free_bytes", "remove_temporaries"]

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


class DiskError(TuneproofError):
    """A write failed because the disk is full or the folder is not writable.

    Attributes:
        path: the file or folder that could not be written.
        needed: bytes the failed write needed, when known.
        free: bytes free on that file system, when it can be read.
    """

    def __init__(self, message: str, path: Path | None, needed: int | None = None, free: int | None = None):
        super().__init__(message)
        self.path, self.needed, self.free = path, needed, free


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system that holds ``path`` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_error(exc: BaseException, path: str | os.PathLike | None = None, needed: int | None = None) -> DiskError | None:
    """A :class:`DiskError` for a full disk or an unwritable folder; None for any other error.

    Args:
        exc: the error raised by a write (looked for along its ``__cause__``/``__context__`` chain,
            as libraries often wrap it).
        path: the path written, when the error does not name it.
        needed: the bytes the write needed, when known.
    """
    exc = _os_error(exc)  # type: ignore[assignment]
    if exc is None:
        return None
    where = Path(path) if path is not None else (Path(exc.filename) if exc.filename else None)
    free = free_bytes(where) if where is not None else None
    shown = where if where is not None else "a file (the library did not say which)"
    if exc.errno in UNWRITABLE:
        return DiskError(f"cannot write {shown}: {os.strerror(exc.errno)}. Fix: make the folder writable for this user, or "
                         "point tracking.runs_dir (or --out) at a folder you may write.", where, needed, free)  # fmt: skip
    need = f"; the write needed {_human(needed)}" if needed is not None else ""
    have = f"{_human(free)} free there" if free is not None else "the free space could not be read"
    return DiskError(f"no space left writing {shown} ({os.strerror(exc.errno)}): {have}{need}. Nothing half-written is "
                     "kept as done: rerun the same command once space is freed and it resumes. Fix: free disk space, or "
                     "point tracking.runs_dir at a larger disk.", where, needed, free)  # fmt: skip


def _os_error(exc: BaseException | None) -> OSError | None:
    """The disk's OSError behind ``exc``: itself, one along its cause chain, or SQLite's "disk is full".

    SQLite (the MLflow and Optuna stores) reports a full disk as ``OperationalError: database
    or disk is full``, not as an OSError; SQLAlchemy wraps that again.
    """
    for _ in range(10):
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno in FULL | UNWRITABLE:
            return exc
        text = str(exc).lower()
        if "database or disk is full" in text:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if "attempt to write a readonly database" in text:
            return OSError(errno.EROFS, os.strerror(errno.EROFS))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", *,
                size: int | None = None) -> Iterator[IO[Any]]:  # fmt: skip
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    Args:
        path: the file to write; its folder is created.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: for text mode.
        size: the bytes that will be written, when known: a full disk's error reports them as needed.

    Raises:
        DiskError: the disk is full or the folder is not writable (the target is left as it was).

    Example:
        >>> with atomic_open("runs/x/split/train.jsonl") as f:  # doctest: +SKIP
        ...     f.write('{"text": "hello"}\\n')
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise disk_error(exc, target.parent) or exc from None
    tmp = Path(tmp_name)
    f = os.fdopen(fd, mode, **({"encoding": encoding} if "b" not in mode else {}))
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_error(exc, target, size) or exc from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path.

    Raises:
        DiskError: the disk is full (naming the bytes needed) or the folder is not writable.
    """
    raw = data.encode(encoding) if isinstance(data, str) else data
    with atomic_open(path, "wb", size=len(raw)) as f:
        f.write(raw)
    return Path(path)


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes left in ``folder`` (not below it).

    Only for a folder no other process writes to (a run directory's stage folder, under the
    run directory's lock): a live writer's temporary file looks the same.

    Returns:
        The files removed.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    gone = [p for p in root.glob(".*.tmp") if p.is_file()]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone
