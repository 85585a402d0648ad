"""Counters and jobs in one SQLite file that every gunicorn worker process shares.

The workers are separate processes, so nothing kept in memory would be shared: a counter
bumped through one worker must read back the same through the other. SQLite's own locking
makes the increments atomic across processes.

Each call opens its own short-lived connection: a connection must not cross a `fork()`
(gunicorn forks the workers after importing the app), and a local SQLite query takes well under
a millisecond, so the calls run on the event loop directly instead of in a thread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from typing_extensions import TypedDict

__all__ = ["Job", "JobStatus", "Store"]

JobStatus = Literal["queued", "running", "done"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    seconds REAL NOT NULL,
    status TEXT NOT NULL,
    accepted_by INTEGER NOT NULL,
    finished_by INTEGER,
    accepted_at TEXT NOT NULL,
    finished_at TEXT
);
"""


class Job(TypedDict):
    id: int
    label: str
    seconds: float
    status: JobStatus
    accepted_by: int
    finished_by: int | None
    accepted_at: str
    finished_at: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """The demo's data: named counters and background jobs, in the SQLite file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # `closing` closes the connection; the connection as a context manager commits (or
        # rolls back) the transaction. The timeout lets a writer wait for the other worker's.
        with closing(sqlite3.connect(self.path, timeout=5.0)) as connection, connection:
            connection.row_factory = sqlite3.Row
            yield connection

    def create(self) -> None:
        """Create the file and its tables unless they exist (each worker does, at startup)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    def counter(self, name: str) -> int:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT value FROM counters WHERE name = ?", (name,)
            ).fetchone()
        return 0 if row is None else int(row["value"])

    def increment(self, name: str) -> int:
        with self._connect() as connection:
            row = connection.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                (name,),
            ).fetchone()
        return int(row["value"])

    def add_job(self, label: str, seconds: float) -> Job:
        with self._connect() as connection:
            row = connection.execute(
                "INSERT INTO jobs (label, seconds, status, accepted_by, accepted_at) "
                "VALUES (?, ?, 'queued', ?, ?) RETURNING *",
                (label, seconds, os.getpid(), _now()),
            ).fetchone()
        return _job(row)

    def set_status(self, job_id: int, status: JobStatus) -> None:
        finished = status == "done"
        with self._connect() as connection:
            connection.execute(
                "UPDATE jobs SET status = ?, finished_by = ?, finished_at = ? WHERE id = ?",
                (
                    status,
                    os.getpid() if finished else None,
                    _now() if finished else None,
                    job_id,
                ),
            )

    def job(self, job_id: int) -> Job | None:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        label=row["label"],
        seconds=row["seconds"],
        status=row["status"],
        accepted_by=row["accepted_by"],
        finished_by=row["finished_by"],
        accepted_at=row["accepted_at"],
        finished_at=row["finished_at"],
    )
