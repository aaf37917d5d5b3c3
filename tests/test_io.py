"""Atomic writes, and full or unwritable disks met with an error that names the path and the space."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneproof._io import DiskError, atomic_open, atomic_write, disk_error, remove_temporaries
from tuneproof.cli import app


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kb, ro=False)``: a real tmpfs of that size (read-only if asked), unmounted afterwards.

    Mounting needs root (CI and this project's machines run the tests as root); elsewhere the
    test is skipped and says why.
    """
    mounts = []

    def make(kb: int, ro: bool = False) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        if not _mount_tmpfs(where, f"size={kb}k" + (",ro" if ro else "")):
            pytest.skip("mounting a tmpfs needs root; run the suite as root (as CI does) to test a full disk")
        mounts.append(where)
        return where

    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], check=False)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write(tmp_path / "out.json", '{"old": true}')
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write('{"new": ')
            raise RuntimeError("killed halfway")
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_full_disk_names_the_path_the_space_needed_and_the_free_space(small_disk):
    disk = small_disk(64)
    target = atomic_write(disk / "split" / "train.jsonl", "old\n")
    with pytest.raises(DiskError) as err:
        atomic_write(target, "x" * (1 << 20))
    msg = str(err.value)
    assert f"no space left writing {target}" in msg and "needed 1.0 MB" in msg and "free there" in msg
    assert err.value.needed == 1 << 20 and err.value.free is not None and err.value.free < 64 * 1024
    assert target.read_text() == "old\n"  # the old file stands; nothing half-written
    assert [p.name for p in target.parent.iterdir()] == ["train.jsonl"]  # the temporary file is gone


def test_a_full_disk_met_while_streaming_rows(small_disk):
    disk = small_disk(64)
    with pytest.raises(DiskError, match="no space left writing"):
        with atomic_open(disk / "records.jsonl") as f:
            for i in range(100_000):
                f.write(json.dumps({"id": i, "text": "some words"}) + "\n")
    assert list(disk.iterdir()) == []


def test_an_unwritable_folder_is_named_with_the_fix(small_disk):
    disk = small_disk(64, ro=True)
    with pytest.raises(DiskError) as err:
        atomic_write(disk / "run" / "pipeline.json", "{}")
    assert "cannot write" in str(err.value) and str(disk / "run") in str(err.value) and "Fix:" in str(err.value)


def test_a_real_enospc_from_a_device_and_a_wrapped_one_are_recognised():
    with pytest.raises(OSError) as raw:
        with open("/dev/full", "wb", buffering=0) as f:
            f.write(b"x")
    assert raw.value.errno == errno.ENOSPC
    err = disk_error(raw.value, "/dev/full", 1)
    assert err is not None and "no space left writing /dev/full" in str(err) and "needed 1 bytes" in str(err)
    try:  # a library that wraps it (e.g. SQLAlchemy around sqlite's "database or disk is full")
        try:
            raise raw.value
        except OSError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as wrapped:
        assert disk_error(wrapped) is not None
    assert disk_error(RuntimeError("sqlite3.OperationalError: database or disk is full")) is not None
    assert disk_error(ValueError("something else")) is None


def test_check_on_a_full_disk_exits_with_the_message_not_a_traceback(small_disk, tmp_path):
    disk = small_disk(32)
    (disk / "filler").write_bytes(b"\0" * (28 * 1024))  # almost full
    data = tmp_path / "d.jsonl"
    rows = [json.dumps({"prompt": f"q{i} " + "w" * 400, "completion": "a"}) for i in range(30)]
    data.write_text("\n".join(rows + ["{broken " + "z" * 600] * 60) + "\n")  # rejects.jsonl: ~35 KB
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"name": "r", "task": "sft", "data": {"path": str(data)}, "tracking": {"runs_dir": str(disk)}}))
    result = CliRunner().invoke(app, ["check", str(cfg), "--set", "model.name=minilm"])
    out = " ".join(result.output.split())
    assert result.exit_code == 1, out
    assert f"no space left writing {disk / 'r' / 'check' / 'rejects.jsonl'}" in out and "Traceback" not in out


def test_temporaries_of_interrupted_writes_are_removed_on_request(tmp_path):
    atomic_write(tmp_path / "kept.json", "{}")
    (tmp_path / ".audit.json.abc123.tmp").write_text('{"half": ')
    assert [p.name for p in remove_temporaries(tmp_path)] == [".audit.json.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["kept.json"]
