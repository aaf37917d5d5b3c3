"""Where a study lives: SQLite in the run dir by default, PostgreSQL for several workers.

The storage is checked (connect and run ``SELECT 1``) before any trial, and heartbeats
with :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (Optuna 5's name for RetryFailedTrialCallback) make a dead worker's trial come
back as a new trial with the same parameters instead of being lost.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tuneproof._io import disk_error
from tuneproof.errors import TuneproofError

__all__ = ["HEARTBEAT_GRACE_S", "HEARTBEAT_INTERVAL_S", "open_storage", "redact", "resolve_url"]

HEARTBEAT_INTERVAL_S = 10
HEARTBEAT_GRACE_S = 30
MAX_RETRY = 3
_SCHEMA_LOCK_KEY = 0x74756E6570726F6F  # "tuneproo": the advisory lock that serializes schema creation


def resolve_url(storage: str | None, run_dir: Path) -> str:
    """The SQLAlchemy URL: the given one, or ``sqlite:///<run_dir>/optuna.db``.

    ``postgresql://`` is mapped to the installed psycopg 3 driver (``postgresql+psycopg://``).
    """
    if not storage:
        run_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{run_dir.resolve() / 'optuna.db'}"
    if storage.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + storage.split("://", 1)[1]
    return storage


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = HEARTBEAT_GRACE_S,
    max_retry: int = MAX_RETRY,
) -> Any:
    """Check that the storage answers, then open it as an Optuna RDB storage with heartbeats.

    Raises:
        TuneproofError: the URL is malformed, its driver is missing, or the server does not
            answer; the message names the URL (without password), the error and the fix.
    """
    import optuna
    import sqlalchemy

    shown = redact(url)
    try:
        kwargs: dict[str, Any] = {}
        if url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 5}
        engine = sqlalchemy.create_engine(url, **kwargs)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TuneproofError(
            f"cannot reach the Optuna storage {shown}: {first}. Fix: check the URL (e.g. "
            "postgresql://user:password@host:5432/db), that the server is running and accepts "
            "connections from this machine, or leave --storage unset for SQLite in the run directory."
        ) from None
    # Optuna creates its tables (and PostgreSQL enum types) when a storage is first opened. Two
    # workers started together on an empty database both try, and the second fails with
    # "duplicate key ... pg_type_typname_nsp_index". A session-level advisory lock held while
    # the storage opens lets one create the schema and the others find it.
    lock = engine.connect() if url.startswith("postgresql") else None
    try:
        if lock is not None:
            lock.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                engine_kwargs={"pool_pre_ping": True} if url.startswith("postgresql") else None,
            )
    except Exception as exc:
        raise disk_error(exc) or TuneproofError(f"cannot open the Optuna storage {shown}: {exc}. Fix: check the URL and database.") from exc
    finally:
        if lock is not None:
            try:
                lock.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            finally:
                lock.close()
        engine.dispose()  # closes the connection, which would release the lock in any case
