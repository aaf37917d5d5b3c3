"""One process per run directory: an advisory lock on ``<run dir>/.lock``.

Two ``tuneproof run`` (or ``train``, or ``tune`` on the run directory's own SQLite study)
in one run directory would overwrite each other's stage outputs, ledger and checkpoints.
The lock is an ``flock`` on ``<run dir>/.lock``: the kernel drops it when its process ends,
however it ends (SIGKILL, OOM, power loss of a local disk), so a dead process never blocks
a rerun. The file also holds the holder's pid, host, command and start time: a second
process that finds the lock taken names them in its error; one that finds the file filled
by a process that has ended (it never released the lock cleanly) says that it cleared it.

Where the file system has no ``flock`` (some network mounts), the pid in the file decides:
a holder on this host whose process no longer exists is stale and is cleared; one on
another host cannot be checked, so the error says how to clear it by hand.

Rank 0 of a distributed job (``RANK`` unset or 0) holds the lock for the job; the other
ranks share its run directory by design and take none.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneproof.errors import TuneproofError

__all__ = ["LOCK_NAME", "RunDirLocked", "run_dir_lock"]

LOCK_NAME = ".lock"
_HELD: dict[str, list[Any]] = {}  # resolved lock path -> [fd, depth]: a process may re-enter its own lock


class RunDirLocked(TuneproofError):
    """Another live process holds the run directory.

    Attributes:
        holder: what the lock file says about that process (pid, host, command, started).
    """

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder


@dataclass
class LockState:
    """What taking the lock found: ``cleared`` describes a stale holder that was cleared, if any."""

    path: Path
    cleared: dict[str, Any] | None = None


def _me(command: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "argv": " ".join(sys.argv)[:500], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip


def _read(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 1 << 16)
    if not data.strip():
        return None
    try:
        info = json.loads(data)
    except ValueError:
        return {"pid": None, "note": "unreadable lock file"}
    return info if isinstance(info, dict) else {"pid": None, "note": "unreadable lock file"}


def _alive(holder: dict[str, Any]) -> bool | None:
    """Whether the holder's process runs: None when it is on another host (it cannot be checked)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command')}, started {holder.get('started')}; "
            f"command line: {holder.get('argv')})")  # fmt: skip


def _refuse(path: Path, holder: dict[str, Any], checkable: bool) -> RunDirLocked:
    run_dir = path.parent
    how = (f"wait for it to finish, or stop it (kill {holder.get('pid')})" if checkable else
           f"if that process has ended, delete {path}")  # fmt: skip
    return RunDirLocked(f"{run_dir} is in use by another tuneproof process: {_describe(holder)}. Two processes in one "
                        f"run directory would overwrite each other's outputs. Fix: {how}; or give this run another "
                        "name (name: in the config, or --set name=...) to run beside it.", holder)  # fmt: skip


def _flock(fd: int) -> bool | None:
    """Try the kernel lock: True taken, False held by another process, None not supported here."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise
    return True


def _acquire(path: Path, command: str) -> tuple[int, LockState]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        taken = _flock(fd)
        holder = _read(fd)
        if taken is False:
            raise _refuse(path, holder or {"pid": "unknown"}, True)
        state = LockState(path)
        if holder:
            alive = _alive(holder) if taken is None else False  # with flock taken, its holder has ended
            if alive is None or alive:
                raise _refuse(path, holder, alive is not None)
            state.cleared = holder
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(_me(command)).encode())
        os.fsync(fd)
        return fd, state
    except BaseException:
        os.close(fd)
        raise


def _release(fd: int) -> None:
    # Emptied, not deleted: deleting a locked file lets two later processes lock two different files.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing drops the flock


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike, command: str, *, console: Any = None) -> Iterator[LockState]:
    """Hold ``<run_dir>/.lock`` for the block, or refuse naming the process that holds it.

    Args:
        run_dir: the run directory (created if missing).
        command: what this process is, for the other process's error (e.g. ``"tuneproof run"``).
        console: a rich console that is told when a stale lock was cleared.

    Yields:
        A :class:`LockState`; ``cleared`` names a dead holder whose lock was cleared.

    Raises:
        RunDirLocked: another live process holds the lock.

    Example:
        >>> with run_dir_lock("runs/demo", "tuneproof run"):  # doctest: +SKIP
        ...     pass
    """
    run_dir = Path(run_dir)
    path = run_dir.resolve() / LOCK_NAME
    if int(os.environ.get("RANK", "0") or 0) != 0:
        yield LockState(path)  # another rank of rank 0's job
        return
    key = str(path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield LockState(path)
        finally:
            _HELD[key][1] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, state = _acquire(path, command)
    if state.cleared and console is not None:
        console.print(f"[yellow]cleared a stale lock on {run_dir}: {_describe(state.cleared)} is no longer "
                      "running[/yellow]", highlight=False)  # fmt: skip
    _HELD[key] = [fd, 1]
    try:
        yield state
    finally:
        del _HELD[key]
        _release(fd)
