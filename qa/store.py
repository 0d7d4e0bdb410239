"""The run store: every run kept in one embedded DuckDB file, written in one transaction per run.

:func:`open` gives a :class:`Store` (read-only by default); :meth:`Store.write_run` adds a run; the
read helpers return pandas DataFrames with the store's column names. The tables are created from
``qa/schema.sql`` and documented in docs/schema.md.

Faults are handled here, and each becomes one :class:`~qa.errors.StoreError` line:

- a second writer (or a reader while a run is being written) retries with backoff until
  ``lock_timeout`` seconds have passed, then names the process holding the lock;
- a file that is not a DuckDB database, a DuckDB database of something else, or a store written by a
  newer version is refused before anything is written;
- a run killed mid-write leaves the store as it was: the rows of one run are inserted in one
  transaction and DuckDB keeps uncommitted rows out of the file.

duckdb and pandas are imported inside the functions that need them, so ``import qa`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from qa import __version__, metric_registry
from qa._commit import interrupts_held
from qa.errors import StoreError
from qa.gate import run_findings, run_scores
from qa.model import new_run_id  # noqa: F401  (re-exported: a run's id, made before it is stored)
from qa.parts import Parts  # a table kept as Parquet parts, inserted one file at a time
from qa.rules.violations import counts_by

SCHEMA_VERSION = 7
"""The version of ``qa/schema.sql``; a store records the versions applied to it in ``qa_schema``."""

APPLICATION = "annotation-qa"
"""The value of ``qa_schema.application`` that marks a DuckDB file as a run store."""

DEFAULT_DB = "qa.duckdb"
"""The store used when none is given (``QA_DB`` in the environment overrides it)."""

DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds a writer or reader waits for another process's lock before giving up."""

RUN_TABLES = ("runs", "annotators", "images", "categories", "objects", "object_matches",
              "image_pair_scores", "scores", "boundary_disagreement", "findings", "gate_results", "review_queue",
              "attribute_confusion")
"""Tables holding run rows, each with a ``run_id`` column, in the order a run is written."""

TABLES = ("qa_schema",) + RUN_TABLES

PAUSE_ENV = "QA_TEST_PAUSE_IN_WRITE"
"""Seconds to sleep inside the write transaction (fault tests kill or interrupt the process there):
``"5"`` pauses after the objects are inserted, ``"5@commit"`` just before ``COMMIT`` (interrupts already
held back) and ``"5@committed"`` just after it, before the run's output files are moved into place."""

def _migrate_to_2(con) -> None:
    """Schema 1 to 2: the ``review_queue`` table (the same as in ``qa/schema.sql``; a test keeps them in step)."""
    con.execute(_REVIEW_QUEUE_SQL)


_REVIEW_QUEUE_SQL = """CREATE TABLE IF NOT EXISTS review_queue (
    run_id VARCHAR NOT NULL, rank INTEGER NOT NULL, kind VARCHAR NOT NULL, image VARCHAR, reason VARCHAR NOT NULL,
    metric VARCHAR NOT NULL, value DOUBLE, score DOUBLE NOT NULL, reasons INTEGER NOT NULL, annotator VARCHAR,
    object_index INTEGER, category VARCHAR, other_annotator VARCHAR, other_object_index INTEGER, area DOUBLE,
    file VARCHAR, source_index INTEGER, source_id VARCHAR, detail VARCHAR NOT NULL, PRIMARY KEY (run_id, rank));"""


def _migrate_to_3(con) -> None:
    """Schema 2 to 3: ``boundary_disagreement`` gains the category-pair boundary and offset columns.

    Columns are appended, in ``schema.sql`` order, so an upgraded store and a new one have the same tables.
    """
    for column, sql_type in (("kind", "VARCHAR DEFAULT 'objects'"), ("tolerance_px", "DOUBLE"),
                             ("beyond_tolerance_share", "DOUBLE"), ("signed_offset_px_median", "DOUBLE"),
                             ("boundary_px", "DOUBLE"), ("gains", "VARCHAR")):
        con.execute(f"ALTER TABLE boundary_disagreement ADD COLUMN {column} {sql_type}")


SCHEMA_4_COLUMNS = {
    "runs": (("gate_pack", "VARCHAR"),),
    "object_matches": (("pair", "VARCHAR"), ("boundary_f_1px", "DOUBLE"), ("boundary_f_2px", "DOUBLE"),
                       ("boundary_f_4px", "DOUBLE"), ("nsd_1px", "DOUBLE"), ("nsd_2px", "DOUBLE"),
                       ("nsd_4px", "DOUBLE"), ("signed_offset_median_px", "DOUBLE")),
    "image_pair_scores": (("image_iou_mean", "DOUBLE"),),
}
"""The columns schema 4 appends, per table, in ``schema.sql`` order."""


def _migrate_to_4(con) -> None:
    """Schema 3 to 4: ``runs.gate_pack`` (``pack`` becomes the pack that checked the rules, gated or not);
    ``object_matches`` gains ``pair`` and real columns for boundary F and NSD at the default tolerances and
    the median offset (filled from each stored row's ``metrics`` JSON); ``image_pair_scores`` gains
    ``image_iou_mean`` (NULL for runs stored before: not computed then)."""
    for table, columns in SCHEMA_4_COLUMNS.items():
        for column, sql_type in columns:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
    con.execute("UPDATE runs SET gate_pack = CASE WHEN verdict IS NOT NULL THEN pack END, "
                "pack = coalesce(settings->>'pack', CASE WHEN verdict IS NOT NULL THEN pack END)")
    moved = [c for c, _ in SCHEMA_4_COLUMNS["object_matches"] if c != "pair"]
    sources = {"signed_offset_median_px": "signed_offset_median"}
    assignments = ", ".join(f"{c} = TRY_CAST(metrics->>'{sources.get(c, c)}' AS DOUBLE)" for c in moved)
    con.execute(f"UPDATE object_matches SET pair = annotator_a || '|' || annotator_b, {assignments}")


def _migrate_to_5(con) -> None:
    """Schema 4 to 5: the ``attribute_confusion`` table (created from ``schema.sql``; runs stored before have
    no rows in it)."""
    con.execute(_create_statement("attribute_confusion"))


def _create_statement(table: str) -> str:
    """The ``CREATE TABLE`` statement of ``table`` in ``schema.sql`` (as the current schema makes it)."""
    sql = _schema_sql()
    start = sql.index(f"CREATE TABLE IF NOT EXISTS {table} (")
    return sql[start:sql.index("\n);", start) + 3]


UNINDEXED_6 = ("objects", "findings", "review_queue")
"""The run tables schema 6 made without a ``PRIMARY KEY``: a row per object, finding or review row."""

UNINDEXED_7 = ("images", "image_pair_scores", "scores")
"""The run tables schema 7 made without a ``PRIMARY KEY``: a row per image, image pair, or figure (a few
per image and category)."""

UNINDEXED = UNINDEXED_6 + UNINDEXED_7
"""Run tables whose rows are unique by construction but carry no ``PRIMARY KEY``: every table whose rows
grow with the batch.

A key in DuckDB is an ART index, and the part of it a write adds must fit in memory until the commit
(about 25 bytes a row measured for ``objects``, 130 for the text keys of ``scores``;
:func:`write_memory_limit`): writing a run took memory in proportion to its objects, findings, review rows,
images and figures. The writer makes these rows unique itself (numbered: ``object_index``,
``finding_index``, ``rank``; or one per image, image pair, or scope, key and metric), so nothing is lost by
not indexing them. (The stored runs' part of the index is not loaded by a write: inserting 30,000 rows into
a keyed table of 15 million took no more memory than into one without a key.)"""


def _without_keys(con, tables, old: int) -> None:
    """Make each of ``tables`` again from ``schema.sql`` (without its primary key: DuckDB cannot drop one)
    and copy its rows, in their order, into it from the table as schema ``old`` left it."""
    for table in tables:
        columns = ", ".join(f'"{c}"' for c in _table_columns(table))
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_schema_{old}")
        con.execute(_create_statement(table))
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_schema_{old}")
        con.execute(f"DROP TABLE {table}_schema_{old}")


def _migrate_to_6(con) -> None:
    """Schema 5 to 6: the :data:`UNINDEXED_6` tables lose their primary key."""
    _without_keys(con, UNINDEXED_6, 5)


def _migrate_to_7(con) -> None:
    """Schema 6 to 7: the :data:`UNINDEXED_7` tables lose their primary key."""
    _without_keys(con, UNINDEXED_7, 6)


MIGRATIONS: dict = {2: _migrate_to_2, 3: _migrate_to_3, 4: _migrate_to_4, 5: _migrate_to_5, 6: _migrate_to_6,
                    7: _migrate_to_7}
"""``{version: function(connection)}`` upgrading a store from ``version - 1`` (inside one transaction).
Each version's changes live in one function."""


def default_db() -> Path:
    """The store path used when none is given: ``$QA_DB``, else ``qa.duckdb`` in the working folder."""
    return Path(os.environ.get("QA_DB") or DEFAULT_DB)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# --- fingerprints -------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    from qa.formats._safe import open_regular

    digest = hashlib.sha256()
    with open_regular(path) as fh:  # a named pipe is refused, never waited on
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _url_fingerprint(path, extra_files) -> dict:
    """:func:`fingerprint` of an export behind an fsspec URL (a file; folders of objects by listing)."""
    from qa.formats._location import location

    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
    lines, total = [], 0
    for file in files:
        size = file.stat().st_size
        total += size
        lines.append(f"{file.name}\t{size}\t{_sha256_file(file)}")
    digest = _sha256_file(path) if len(files) == 1 and files[0] == path else \
        hashlib.sha256("\n".join(lines).encode()).hexdigest()
    extra = sorted({str(p) for p in extra_files})
    if extra:
        listing = [f"{path.name}\t{total}\t{digest}"]
        for name in extra:
            file = location(name)
            size = file.stat().st_size
            total += size
            listing.append(f"{file.name}\t{size}\t{_sha256_file(file)}")
        digest = hashlib.sha256("\n".join(listing).encode()).hexdigest()
    return {"kind": "file" if path.is_file() else "folder", "sha256": digest, "bytes": total,
            "files": len(files) + len(extra)}


def fingerprint(path, extra_files: Iterable = ()) -> dict:
    """The sha256 fingerprint of an export file or folder.

    Parameters
    ----------
    path : str or os.PathLike
        The export as given to the loader.
    extra_files : iterable of path, optional
        Files the export refers to outside ``path`` (panoptic PNGs); folded into the fingerprint.

    Returns
    -------
    dict
        ``kind`` (``"file"`` or ``"folder"``), ``sha256``, ``bytes`` and ``files`` (how many files).

    Notes
    -----
    A file's fingerprint is the sha256 of its bytes. A folder's is the sha256 of its listing: one
    line ``relative/path<TAB>size<TAB>sha256`` per regular file, sorted by path, so renaming, adding or
    changing any file changes it and copying the folder elsewhere does not; named pipes, sockets,
    devices and broken links are left out (no loader reads them, and reading a pipe would wait
    forever). Extra files are listed the same way (by name) after the main entry.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> _ = p.write_text("{}")
    >>> fingerprint(p)["sha256"][:12]
    '44136fa355b3'
    """
    from qa.formats._location import Url, location

    path = location(path)
    lines: list[str] = []
    total = 0
    if isinstance(path, Url):  # an object behind a URL: hashed as it is read
        return _url_fingerprint(path, extra_files)
    if path.is_dir():
        kind = "folder"
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                file = Path(root) / name
                try:
                    info = file.stat()
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                size = info.st_size
                total += size
                lines.append(f"{file.relative_to(path).as_posix()}\t{size}\t{_sha256_file(file)}")
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        count = len(lines)
    else:
        kind = "file"
        digest = _sha256_file(path)
        total = path.stat().st_size
        count = 1
    extra = sorted({Path(p) for p in extra_files}, key=lambda p: p.as_posix())
    if extra:
        listing = [f"{path.name}\t{total}\t{digest}"]
        for file in extra:
            size = file.stat().st_size
            total += size
            listing.append(f"{file.name}\t{size}\t{_sha256_file(file)}")
        digest = hashlib.sha256("\n".join(listing).encode()).hexdigest()
        count += len(extra)
    return {"kind": kind, "sha256": digest, "bytes": total, "files": count}


def input_fingerprints(batch) -> list[dict]:
    """One entry per annotator: ``annotator, path, format`` and the export's :func:`fingerprint`."""
    cache: dict[tuple, dict] = {}
    out = []
    for name in batch.annotators:
        export = batch.exports[name]
        extra = tuple(sorted(str(p) for p in export.id_maps.values()))
        key = (str(export.path), extra)
        if key not in cache:
            cache[key] = fingerprint(export.path, extra)
        out.append({"annotator": name, "path": str(export.path), "format": export.format, **cache[key]})
    return out


def batch_identity(batch) -> dict:
    """What makes two runs runs of the same batch: its name (a manifest's ``name``), else its annotators.

    Returns
    -------
    dict
        ``name`` (None without one) and ``annotators`` (sorted), as :meth:`Store.resolve_baseline` reads them.
    """
    return {"name": getattr(batch, "name", None) or None, "annotators": sorted(batch.annotators)}


def describe_batch(identity: dict) -> str:
    """``batch 'week-12'`` or ``the annotators alice, bob`` (for messages)."""
    if identity.get("name"):
        return f"batch {identity['name']!r}"
    return "the annotators " + ", ".join(identity.get("annotators") or [])


def combined_fingerprint(inputs: list[dict]) -> str:
    """One sha256 over every input's annotator name and fingerprint (same inputs, same value)."""
    text = "\n".join(f"{i['annotator']}\t{i['sha256']}" for i in sorted(inputs, key=lambda i: i["annotator"]))
    return hashlib.sha256(text.encode()).hexdigest()


# --- opening ------------------------------------------------------------------------------------------

_LOCK_RE = re.compile(r"Could not set lock|Conflicting lock", re.IGNORECASE)
_PID_RE = re.compile(r"\(PID (\d+)\)")


def _schema_sql() -> str:
    from importlib import resources

    return (resources.files("qa") / "schema.sql").read_text(encoding="utf-8")


SANDBOX = {
    "enable_external_access": False,  # no file but the store, no URL, no ATTACH, COPY TO, EXPORT, INSTALL
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "lock_configuration": True,  # and no SET or RESET to undo any of it
}
"""DuckDB settings of a :func:`open` with ``sandbox=True``: the connection that runs SQL a user typed
(``qa sql``) reads the store's tables and nothing else (DuckDB docs, "Securing DuckDB")."""


def _connect(path: Path, *, read_only: bool, lock_timeout: float, sandbox: bool = False):
    """Open ``path``, retrying with backoff while another process holds its lock."""
    import duckdb

    deadline = time.monotonic() + max(lock_timeout, 0.0)
    delay = 0.02
    config = dict(SANDBOX) if sandbox else {}
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            text = " ".join(str(exc).split())
            if "not a valid DuckDB database" in text:
                raise StoreError("not a DuckDB database (the file is damaged or of another kind); "
                                 "pass --db with a run store or a new file name", path=path) from None
            if "database does not exist" in text:
                raise StoreError("no such run store; 'qa run --db PATH ...' creates one", path=path) from None
            if not _LOCK_RE.search(text):
                raise StoreError(f"cannot open the store: {text}", path=path) from None
            if time.monotonic() >= deadline:
                pid = _PID_RE.search(text)
                holder = f"process {pid.group(1)}" if pid else "another process"
                raise StoreError(f"locked by {holder} (the DuckDB file lock on {path}); waited "
                                 f"{lock_timeout:g} s; retry when it finishes or raise --lock-timeout",
                                 path=path) from None
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open the store: {' '.join(str(exc).split())}", path=path) from None
    return con


class Store:
    """An open run store. Use :func:`open`; close it (or use ``with``) to release the file lock.

    Attributes
    ----------
    path : Path
        The DuckDB file.
    read_only : bool
        Whether this connection may write.
    """

    def __init__(self, path, *, read_only: bool = True, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 sandbox: bool = False):
        if sandbox and not read_only:
            raise StoreError("a sandboxed store is read-only", path=path)
        self.path = Path(path)
        self.read_only = read_only
        self.sandbox = sandbox
        self.lock_timeout = lock_timeout
        if read_only and not self.path.exists():
            raise StoreError("no such run store; 'qa run --db PATH ...' creates one", path=self.path)
        if not read_only:
            if self.path.is_dir():
                raise StoreError("is a folder; pass a file name for the store", path=self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store's folder: {exc.strerror or exc}", path=self.path) from None
        self._con = _connect(self.path, read_only=read_only, lock_timeout=lock_timeout, sandbox=sandbox)
        try:
            self._check_schema()
        except BaseException:
            self._con.close()
            raise

    # context management
    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and release the file lock."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, read_only={self.read_only})"

    # schema
    def _tables(self) -> set[str]:
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = 'main' AND table_type = 'BASE TABLE'"
        ).fetchall()
        return {r[0] for r in rows}

    def _check_schema(self) -> None:
        tables = self._tables()
        if "qa_schema" not in tables:
            if tables:
                shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
                raise StoreError(f"a DuckDB database but not a qa run store (it has tables {shown} and no "
                                 f"qa_schema); pass --db with a run store or a new file name", path=self.path)
            if self.read_only:
                raise StoreError("an empty DuckDB database, not a qa run store; "
                                 "'qa run --db PATH ...' initialises one", path=self.path)
            self._create()
            return
        rows = self._con.execute("SELECT application, max(schema_version) FROM qa_schema GROUP BY application").fetchall()
        apps = {r[0]: r[1] for r in rows}
        if set(apps) != {APPLICATION}:
            raise StoreError(f"a DuckDB database but not a qa run store (qa_schema names "
                             f"{', '.join(map(repr, sorted(apps))) or 'nothing'})", path=self.path)
        version = apps[APPLICATION]
        if version > SCHEMA_VERSION:
            raise StoreError(f"written by a newer qa (store schema {version}, this qa reads up to "
                             f"{SCHEMA_VERSION}); upgrade annotation-qa", path=self.path)
        if version < SCHEMA_VERSION:
            if self.read_only:
                raise StoreError(f"store schema {version} is older than {SCHEMA_VERSION}; store one run "
                                 f"with this qa to upgrade it", path=self.path)
            self._migrate(version)
        self.schema_version = SCHEMA_VERSION

    def _create(self) -> None:
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(_schema_sql())
            con.execute("INSERT INTO qa_schema VALUES (?, ?, ?, ?)",
                        [APPLICATION, SCHEMA_VERSION, __version__, _utcnow()])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.schema_version = SCHEMA_VERSION

    def _migrate(self, version: int) -> None:
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](con)
                con.execute("INSERT INTO qa_schema VALUES (?, ?, ?, ?)", [APPLICATION, step, __version__, _utcnow()])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # reading
    def _df(self, query: str, params: list | None = None):
        import duckdb

        try:
            rel = self._con.execute(query, params or [])
            with warnings.catch_warnings():
                # duckdb's pandas conversion of TIMESTAMPTZ uses an API pandas 3.1 deprecates
                warnings.filterwarnings("ignore", message=".*inplace keyword.*")
                return rel.df()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {' '.join(str(exc).split())}", path=self.path) from None

    def sql(self, query: str, params: list | None = None):
        """Run one SQL query and return its result as a DataFrame.

        Parameters
        ----------
        query : str
            Any DuckDB SQL; on a read-only store, statements that write fail; on a sandboxed one (see
            :func:`open`), so does anything reaching outside the store.
        params : list, optional
            Values for the query's ``?`` placeholders.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        StoreError
            The query failed (its DuckDB message, on one line).
        """
        return self._df(query, params)

    def resolve(self, ref) -> str:
        """The run id that ``ref`` names.

        ``ref`` is a run id, a unique prefix of one, a sequence number (``7``), ``latest``, or
        ``latest~N`` (N runs before the latest).

        Raises
        ------
        StoreError
            No run, or several runs, match.
        """
        text = str(ref).strip()
        con = self._con
        m = re.fullmatch(r"latest(?:~(\d+))?", text)
        if m:
            back = int(m.group(1) or 0)
            row = _one(con, "SELECT run_id FROM runs ORDER BY seq DESC LIMIT 1 OFFSET ?", [back])
            if row is None:
                have = _one(con, "SELECT count(*) FROM runs")[0]
                raise StoreError(f"no run {text!r}: the store holds {have} run{'s' * (have != 1)}", path=self.path)
            return row[0]
        row = _one(con, "SELECT run_id FROM runs WHERE run_id = ?", [text])
        if row:
            return row[0]
        if text.isdigit():
            row = _one(con, "SELECT run_id FROM runs WHERE seq = ?", [int(text)])
            if row:
                return row[0]
        rows = con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY seq", [text]).fetchall()
        if len(rows) == 1:
            return rows[0][0]
        if rows:
            raise StoreError(f"run {text!r} is ambiguous: {', '.join(r[0] for r in rows[:4])}"
                             f"{', ...' if len(rows) > 4 else ''}; give more of the id", path=self.path)
        raise StoreError(f"no run {text!r}; 'qa runs' lists them", path=self.path)

    def resolve_baseline(self, ref, *, batch: dict) -> str | None:
        """The run a gate's ``--baseline`` names, resolved within the same batch.

        Parameters
        ----------
        ref : str
            ``latest`` or ``latest~N``: the newest run (N runs back) *of the same batch*; ``latest:any``
            or ``latest:any~N``: of any batch; anything else as :meth:`resolve` reads it (an id, a prefix,
            a sequence number: the run named, whatever its batch).
        batch : dict
            The batch's identity (:func:`batch_identity`): ``name`` (the manifest's), and ``annotators``.

        Returns
        -------
        str or None
            The run id; None when ``latest`` finds no run of the batch (or ``latest:any`` none at all).

        Notes
        -----
        Two runs are of the same batch when they carry the same batch name; runs without a name are of
        the same batch when they have the same set of annotators. A store shared by several batches
        then never compares a batch with another one.
        """
        text = str(ref).strip()
        m = re.fullmatch(r"latest(:any)?(?:~(\d+))?", text)
        if not m:
            return self.resolve(text)
        back = int(m.group(2) or 0)
        if m.group(1):
            row = _one(self._con, "SELECT run_id FROM runs ORDER BY seq DESC LIMIT 1 OFFSET ?", [back])
            return None if row is None else row[0]
        if batch.get("name"):
            row = _one(self._con, "SELECT run_id FROM runs WHERE name = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                       [batch["name"], back])
        else:
            row = _one(self._con, """
                SELECT r.run_id FROM runs r
                WHERE r.name IS NULL AND (SELECT list_sort(list(a.annotator)) FROM annotators a
                                          WHERE a.run_id = r.run_id) = ?::VARCHAR[]
                ORDER BY r.seq DESC LIMIT 1 OFFSET ?""", [sorted(batch.get("annotators") or []), back])
        return None if row is None else row[0]

    def batch_of(self, run) -> dict:
        """The batch identity (:func:`batch_identity`) of a stored run."""
        run_id = self.resolve(run)
        name = _one(self._con, "SELECT name FROM runs WHERE run_id = ?", [run_id])[0]
        annotators = [r[0] for r in self._con.execute(
            "SELECT annotator FROM annotators WHERE run_id = ? ORDER BY annotator", [run_id]).fetchall()]
        return {"name": name, "annotators": annotators}

    def runs(self, *, limit: int | None = None):
        """The run history, newest first, one row per run (the ``runs`` table without its JSON)."""
        query = ("SELECT seq, run_id, name, started_at, finished_at, tool_version, n_annotators, n_images, "
                 "n_objects, n_findings, errors, warnings, pack, verdict, checks_evaluated, checks_failed, "
                 "inputs_sha256 FROM runs ORDER BY seq DESC")
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return self._df(query)

    def run(self, ref) -> dict:
        """The ``runs`` row of one run as a dict, with ``settings``, ``inputs`` and ``verdict_json`` parsed."""
        run_id = self.resolve(ref)
        row = self._df("SELECT * FROM runs WHERE run_id = ?", [run_id]).to_dict("records")[0]
        for key in ("settings", "inputs", "verdict_json"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
            elif not isinstance(row.get(key), (dict, list)):
                row[key] = None
        return {k: _plain(v) for k, v in row.items()}

    def table(self, name: str, run=None):
        """One stored table as a DataFrame, all runs or only ``run``'s rows."""
        if name not in TABLES:
            raise StoreError(f"no table {name!r}; tables: {', '.join(TABLES)}", path=self.path)
        if run is None:
            return self._df(f"SELECT * FROM {name}")
        return self._df(f"SELECT * FROM {name} WHERE run_id = ?", [self.resolve(run)])

    def scores(self, run):
        """The long scores table of one run (``scope, key, metric, value, n``; NULL values as NaN)."""
        return self._df("SELECT scope, key, metric, value, n FROM scores WHERE run_id = ? "
                        "ORDER BY scope, key, metric", [self.resolve(run)])

    def findings(self, run):
        """The findings of one run, in run order."""
        return self._df("SELECT * EXCLUDE (run_id) FROM findings WHERE run_id = ? ORDER BY finding_index",
                        [self.resolve(run)])

    def cursor(self) -> "Store":
        """Another connection to this open store's database, for another thread (DuckDB connections are
        not shared between threads); closing it leaves this one open."""
        other = object.__new__(Store)
        other.path, other.read_only, other.lock_timeout = self.path, self.read_only, self.lock_timeout
        other.schema_version = getattr(self, "schema_version", SCHEMA_VERSION)
        other._con = self._con.cursor()
        return other

    # reading for pages and the JSON API (qa serve): one query each, DataFrames out
    def _run_filter(self, *, batch=None, pack=None, verdict=None, since=None, until=None,
                    alias: str = "r") -> tuple[str, list]:
        """A WHERE clause (and its parameters) over the ``runs`` table, for :meth:`runs_page`."""
        clauses, params = [], []
        if batch:
            clauses.append(f"{alias}.name = ?")
            params.append(str(batch))
        if pack:
            # the pack as stored (a file or a built-in name), its file name or its name without .toml
            names = [f"regexp_replace({alias}.{c}, '^.*/|[.]toml$', '', 'g')" for c in ("pack", "gate_pack")]
            clauses.append(f"(? IN ({alias}.pack, {alias}.gate_pack, {names[0]}, {names[1]}))")
            params.append(str(pack).removesuffix(".toml") if "/" not in str(pack) else str(pack))
        if verdict:
            if verdict == "none":
                clauses.append(f"{alias}.verdict IS NULL")
            else:
                clauses.append(f"{alias}.verdict = ?")
                params.append(str(verdict))
        if since:
            clauses.append(f"{alias}.started_at >= ?::TIMESTAMP")
            params.append(str(since))
        if until:  # a date: the whole day
            clauses.append(f"{alias}.started_at < ?::TIMESTAMP + INTERVAL 1 DAY")
            params.append(str(until))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def runs_page(self, *, batch=None, pack=None, verdict=None, since=None, until=None, limit: int = 50,
                  offset: int = 0, figures=("pq", "mask_iou_mean", "boundary_f_2px_mean", "missing_share")):
        """One page of the run history, newest first, with headline batch figures.

        Parameters
        ----------
        batch : str, optional
            Only runs of this batch (the manifest's ``name``).
        pack : str, optional
            Only runs whose rule pack or gate pack is this (a built-in name, a file, or its file name).
        verdict : {"passed", "failed", "none"}, optional
            Only runs with this verdict (``none``: not gated).
        since, until : str, optional
            Only runs started on or after ``since`` and on or before ``until`` (ISO dates, UTC).
        limit, offset : int
            The page.
        figures : sequence of str
            Batch scores shown as columns (metric names; NaN where a run has none).

        Returns
        -------
        (DataFrame, int)
            The page (``seq, run_id, name, started_at, n_annotators, n_images, n_objects, errors, warnings,
            pack, gate_pack, verdict, checks_evaluated, checks_failed`` and one column per figure) and the
            number of runs that match the filters.

        Raises
        ------
        StoreError
            A date is not a date (the query fails).
        """
        where, params = self._run_filter(batch=batch, pack=pack, verdict=verdict, since=since, until=until)
        total = int(self._df(f"SELECT count(*) AS n FROM runs r{where}", params)["n"].iloc[0])
        pivot = ", ".join(f"max(value) FILTER (WHERE metric = ?) AS \"{m}\"" for m in figures) or "NULL AS none"
        page = self._df(f"""
            WITH page AS (
                SELECT r.seq, r.run_id, r.name, r.started_at, r.n_annotators, r.n_images, r.n_objects, r.errors,
                       r.warnings, r.pack, r.gate_pack, r.verdict, r.checks_evaluated, r.checks_failed
                FROM runs r{where} ORDER BY r.seq DESC LIMIT ? OFFSET ?),
            figures AS (
                SELECT run_id, {pivot} FROM scores
                WHERE scope = 'batch' AND key = '' AND run_id IN (SELECT run_id FROM page) GROUP BY run_id)
            SELECT page.*{''.join(f', figures."{m}"' for m in figures)}
            FROM page LEFT JOIN figures USING (run_id) ORDER BY page.seq DESC""",
            params + [max(int(limit), 0), max(int(offset), 0)] + list(figures))
        return page, total

    def run_filters(self) -> dict:
        """The values the runs page filters by: ``batches`` (names), ``packs`` (rule and gate packs)."""
        batches = self._df("SELECT DISTINCT name FROM runs WHERE name IS NOT NULL ORDER BY name")["name"]
        packs = self._df("SELECT DISTINCT p FROM (SELECT pack AS p FROM runs UNION SELECT gate_pack FROM runs) "
                         "WHERE p IS NOT NULL ORDER BY p")["p"]
        return {"batches": [str(b) for b in batches], "packs": [str(p) for p in packs]}

    def annotator_history(self, annotator: str, *, batch=None, last: int | None = None,
                          figures=("mask_iou_mean", "image_iou_mean", "boundary_f_2px_mean", "missing_share",
                                   "extra_share", "signed_offset_px_mean")):
        """One annotator across the stored runs, oldest first: its figures and rule violations per run.

        Returns
        -------
        DataFrame
            ``seq, run_id, name, started_at, verdict``, one column per figure (the run's ``annotator``
            score of this annotator; NaN when the run has none), ``violations``, ``violations_error``,
            ``violations_warning`` (the findings attributed to the annotator: all, errors, warnings) and
            ``n_objects`` (its objects), one row per run the annotator is in (the ``last`` of them
            when given).
        """
        where, params = self._run_filter(batch=batch)
        where = where.replace(" WHERE ", " AND ", 1)
        pivot = ", ".join(f"max(value) FILTER (WHERE metric = ?) AS \"{m}\"" for m in figures)
        return self._df(f"""
            SELECT r.seq, r.run_id, r.name, r.started_at, r.verdict{''.join(f', s."{m}"' for m in figures)},
                   coalesce(f.violations, 0) AS violations, coalesce(f.violations_error, 0) AS violations_error,
                   coalesce(f.violations_warning, 0) AS violations_warning, a.n_objects
            FROM runs r JOIN annotators a ON a.run_id = r.run_id AND a.annotator = ?
            LEFT JOIN (SELECT run_id, {pivot} FROM scores WHERE scope = 'annotator' AND key = ? GROUP BY run_id) s
                   ON s.run_id = r.run_id
            LEFT JOIN (SELECT run_id, count(*) AS violations,
                              count(*) FILTER (WHERE severity = 'error') AS violations_error,
                              count(*) FILTER (WHERE severity = 'warning') AS violations_warning
                       FROM findings WHERE annotator = ? GROUP BY run_id) f ON f.run_id = r.run_id
            WHERE TRUE{where} AND r.seq >= ? ORDER BY r.seq""",
            [annotator] + list(figures) + [annotator, annotator] + params
            + [self._first_seq("annotators", "annotator", annotator, where, params, last)])

    def annotators_seen(self):
        """Every annotator name in the store: ``annotator, runs, last_seq``, by name."""
        return self._df("SELECT annotator, count(*) AS runs, max(r.seq) AS last_seq FROM annotators a "
                        "JOIN runs r USING (run_id) GROUP BY annotator ORDER BY annotator")

    def categories_seen(self):
        """Every category name in the store: ``category, runs, last_seq``, by name."""
        return self._df("SELECT category, count(*) AS runs, max(r.seq) AS last_seq FROM categories c "
                        "JOIN runs r USING (run_id) GROUP BY category ORDER BY category")

    def worst_objects(self, run, annotator: str, *, limit: int = 25):
        """An annotator's review-queue rows of one run (its objects to look at first), worst first."""
        return self._df("SELECT * EXCLUDE (run_id) FROM review_queue WHERE run_id = ? AND annotator = ? "
                        "ORDER BY rank LIMIT ?", [self.resolve(run), annotator, int(limit)])

    def category_history(self, category: str, *, batch=None, last: int | None = None,
                         figures=("mask_iou_mean", "boundary_f_2px_mean", "boundary_iou_mean",
                                  "signed_offset_px_mean")):
        """One category across the stored runs, oldest first: its ``category`` scores per run.

        Returns
        -------
        DataFrame
            ``seq, run_id, name, started_at``, one column per figure and ``n_objects``, one row per run
            that has the category (the ``last`` of them when given).
        """
        where, params = self._run_filter(batch=batch)
        where = where.replace(" WHERE ", " AND ", 1)
        pivot = ", ".join(f"max(value) FILTER (WHERE metric = ?) AS \"{m}\"" for m in figures)
        return self._df(f"""
            SELECT r.seq, r.run_id, r.name, r.started_at{''.join(f', s."{m}"' for m in figures)}, c.n_objects
            FROM runs r JOIN categories c ON c.run_id = r.run_id AND c.category = ?
            LEFT JOIN (SELECT run_id, {pivot} FROM scores WHERE scope = 'category' AND key = ? GROUP BY run_id) s
                   ON s.run_id = r.run_id
            WHERE TRUE{where} AND r.seq >= ? ORDER BY r.seq""", [category] + list(figures) + [category] + params
            + [self._first_seq("categories", "category", category, where, params, last)])

    def category_pair_history(self, category: str, *, batch=None, since_seq: int = 0):
        """The category-pair boundaries of one category across runs, oldest first (long form).

        Returns
        -------
        DataFrame
            ``seq, run_id, started_at, pair, other, metric, value, n``: every ``category_pair`` score
            whose key names the category (``road|sidewalk``), ``other`` being the other category; runs
            from ``since_seq`` on.
        """
        where, params = self._run_filter(batch=batch)
        where = where.replace(" WHERE ", " AND ", 1)
        return self._df(f"""
            SELECT r.seq, r.run_id, r.started_at, s.key AS pair,
                   CASE WHEN split_part(s.key, '|', 1) = ? THEN split_part(s.key, '|', 2)
                        ELSE split_part(s.key, '|', 1) END AS other, s.metric, s.value, s.n
            FROM scores s JOIN runs r USING (run_id)
            WHERE s.scope = 'category_pair' AND (split_part(s.key, '|', 1) = ? OR split_part(s.key, '|', 2) = ?)
                  {where} AND r.seq >= ?
            ORDER BY r.seq, s.key, s.metric""", [category, category, category] + params + [int(since_seq)])

    def run_rows(self, table: str, run, *, where: dict | None = None, order: str | None = None,
                 limit: int | None = None, offset: int = 0):
        """Rows of one run in one table, filtered by equal columns, paginated: ``(DataFrame, total)``.

        Parameters
        ----------
        table : str
            One of :data:`RUN_TABLES`.
        run : str
            The run (see :meth:`resolve`).
        where : dict, optional
            ``{column: value}``: only rows where each column equals its value (columns of ``table`` only).
        order : str, optional
            A column of ``table`` to sort by (default: the table's order of insertion).
        limit, offset : int
            The page (``limit`` None: every row).

        Raises
        ------
        StoreError
            No such run, table or column.
        """
        if table not in RUN_TABLES:
            raise StoreError(f"no table {table!r}; tables: {', '.join(RUN_TABLES)}", path=self.path)
        columns = set(self._df(f"SELECT * FROM {table} LIMIT 0").columns)
        where = dict(where or {})
        unknown = sorted(set(where) - columns) + ([order] if order and order not in columns else [])
        if unknown:
            raise StoreError(f"table {table} has no column {unknown[0]!r}", path=self.path)
        clauses = ["run_id = ?"] + [f'"{c}" = ?' for c in where]
        params = [self.resolve(run)] + list(where.values())
        sql_where = " AND ".join(clauses)
        total = int(self._df(f"SELECT count(*) AS n FROM {table} WHERE {sql_where}", params)["n"].iloc[0])
        query = f"SELECT * EXCLUDE (run_id) FROM {table} WHERE {sql_where}"
        if order:
            query += f' ORDER BY "{order}"'
        if limit is not None:
            query += " LIMIT ? OFFSET ?"
            params += [max(int(limit), 0), max(int(offset), 0)]
        return self._df(query, params), total

    def batches_of(self, annotator: str) -> list[str]:
        """The batch names of the runs an annotator is in, sorted."""
        return self._df("SELECT DISTINCT r.name FROM runs r JOIN annotators a USING (run_id) "
                        "WHERE a.annotator = ? AND r.name IS NOT NULL ORDER BY 1", [annotator])["name"].tolist()

    def seq_of(self, run_id: str) -> int | None:
        """The seq of a stored run id, or None when the store does not hold it (no prefix matching)."""
        df = self._df("SELECT seq FROM runs WHERE run_id = ?", [str(run_id)])
        return int(df["seq"].iloc[0]) if len(df) else None

    def neighbours(self, run) -> tuple[str | None, str | None]:
        """The run ids stored just before and just after ``run`` (None at either end)."""
        seq = self.run(run)["seq"]
        row = self._df("SELECT (SELECT run_id FROM runs WHERE seq < ? ORDER BY seq DESC LIMIT 1) AS prev, "
                       "(SELECT run_id FROM runs WHERE seq > ? ORDER BY seq LIMIT 1) AS next", [seq, seq]).iloc[0]
        return (row["prev"] if isinstance(row["prev"], str) else None,
                row["next"] if isinstance(row["next"], str) else None)

    def image_detail(self, run, image: str) -> dict | None:
        """One image of a run: ``pairs`` (its image_pair_scores rows), ``problems`` (object matches not
        matched, or matched with different labels), ``findings`` and ``review_queue`` rows; None when the
        run has no such image."""
        run_id = self.resolve(run)
        if not len(self._df("SELECT 1 FROM images WHERE run_id = ? AND image = ?", [run_id, image])):
            return None
        return {
            "pairs": self._df("SELECT * EXCLUDE (run_id) FROM image_pair_scores WHERE run_id = ? AND image = ? "
                              "ORDER BY annotator_a, annotator_b", [run_id, image]),
            "problems": self._df("SELECT annotator_a, annotator_b, status, category_a, category_b, iou, best_iou "
                                 "FROM object_matches WHERE run_id = ? AND image = ? AND (status <> 'matched' OR "
                                 "label_disagreement) ORDER BY status, category_a, category_b", [run_id, image]),
            "findings": self._df("SELECT * EXCLUDE (run_id) FROM findings WHERE run_id = ? AND image = ? "
                                 "ORDER BY finding_index", [run_id, image]),
            "review_queue": self._df("SELECT * EXCLUDE (run_id) FROM review_queue WHERE run_id = ? AND image = ? "
                                     "ORDER BY rank", [run_id, image])}

    def history_size(self, table: str, column: str, name: str, *, batch=None) -> int:
        """How many runs have ``name`` in ``table`` (``annotators`` or ``categories``), of ``batch`` when given."""
        if (table, column) not in (("annotators", "annotator"), ("categories", "category")):
            raise StoreError(f"no history of {table}.{column}", path=self.path)
        where, params = self._run_filter(batch=batch)
        where = where.replace(" WHERE ", " AND ", 1)
        return int(self._df(f"SELECT count(*) AS n FROM runs r JOIN {table} x ON x.run_id = r.run_id "
                            f"AND x.{column} = ? WHERE TRUE{where}", [name] + params)["n"].iloc[0])

    def _first_seq(self, table: str, column: str, name: str, where: str, params: list, last: int | None) -> int:
        """The seq of the ``last``-th newest run whose ``table`` has ``name`` (0: every run)."""
        if not last:
            return 0
        seq = self._df(f"""SELECT min(seq) AS seq FROM (
            SELECT r.seq FROM runs r JOIN {table} x ON x.run_id = r.run_id AND x.{column} = ?
            WHERE TRUE{where} ORDER BY r.seq DESC LIMIT ?)""", [name] + params + [int(last)])["seq"].iloc[0]
        return 0 if _plain(seq) is None else int(seq)

    def export_parquet(self, run, folder) -> list[Path]:
        """Write one Parquet file per table (``<table>.parquet``) with ``run``'s rows into ``folder``.

        Returns
        -------
        list of Path
            The files written, in :data:`RUN_TABLES` order.
        """
        import duckdb

        run_id = self.resolve(run)
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder: {exc.strerror or exc}", path=folder) from None
        written = []
        for name in RUN_TABLES:
            target = folder / f"{name}.parquet"
            try:
                self._con.sql(f"SELECT * FROM {name} WHERE run_id = $1", params=[run_id]).write_parquet(str(target))
            except duckdb.Error as exc:
                raise StoreError(f"cannot write Parquet: {' '.join(str(exc).split())}", path=target) from None
            written.append(target)
        return written

    # writing
    def write_run(self, run, *, frames: dict | None = None, on_commit=None) -> int:
        """Store a run (and its verdict) in one transaction; return its sequence number.

        Parameters
        ----------
        run : qa.pipeline.Run
            A finished run. Tables whose source the run does not have (no comparison yet) get no rows.
        frames : dict, optional
            :func:`run_frames` of ``run``, when already built (so the lock is held only to insert).
        on_commit : callable, optional
            Called right after ``COMMIT``, before the lock is released, with interrupts still held back:
            it moves the run's staged output files into place (:meth:`qa._commit.StagedFiles.publish`).

        Returns
        -------
        int
            The run's ``seq``.

        Raises
        ------
        StoreError
            The store is read-only, or the run is already stored.

        Notes
        -----
        Every row of the run is inserted between ``BEGIN`` and ``COMMIT``; on any error the
        transaction is rolled back, and if the process dies DuckDB discards the uncommitted rows, so
        other readers see the whole run or nothing of it. SIGINT is held back from just before
        ``COMMIT`` to the end of ``on_commit`` (:func:`qa._commit.interrupts_held`): one that arrives
        before ``COMMIT`` rolls the run back (KeyboardInterrupt), one that arrives after it cannot undo a
        stored run, so the run's outputs and exit code always agree with the store. While the run is
        written DuckDB's memory is limited (:func:`write_memory_limit`): what it caches of the transaction
        goes to its temporary files beyond that.
        """
        import duckdb

        if self.read_only:
            raise StoreError("opened read-only; cannot store a run", path=self.path)
        frames = run_frames(run) if frames is None else frames
        keys = sum(len(frame) for name, frame in frames.items() if frame is not None and name not in _UNKEYED)
        self._con.execute(f"SET memory_limit = '{write_memory_limit(keys) // 2 ** 20}MB'")
        try:
            return self._write(run, frames, on_commit)
        finally:
            try:
                self._con.execute("RESET memory_limit")
            except duckdb.Error:  # the connection's own failure is the one to report
                pass

    def _write(self, run, frames: dict, on_commit) -> int:
        import duckdb

        con = self._con
        committed = False
        con.execute("BEGIN TRANSACTION")
        try:
            if _one(con, "SELECT 1 FROM runs WHERE run_id = ?", [run.run_id]):
                raise StoreError(f"run {run.run_id} is already stored", path=self.path)
            seq = _one(con, "SELECT coalesce(max(seq), 0) + 1 FROM runs")[0]
            frames["runs"]["seq"] = seq
            frames["runs"]["stored_at"] = _utcnow()
            for name in RUN_TABLES:
                frame = frames.get(name)
                if frame is None or len(frame) == 0:
                    continue
                if isinstance(frame, Parts):
                    names = list(frame.constants) + frame.columns()
                    columns = ", ".join(f'"{c}"' for c in names)
                    selected = ", ".join(["?"] * len(frame.constants) + [f'"{c}"' for c in frame.columns()])
                    for path in frame.paths:
                        con.execute(f"INSERT INTO {name} ({columns}) SELECT {selected} FROM read_parquet(?)",
                                    [*frame.constants.values(), str(path)])
                else:
                    view = f"_qa_insert_{name}"
                    con.register(view, frame)
                    columns = ", ".join(f'"{c}"' for c in frame.columns)
                    con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {view}")
                    con.unregister(view)
                if name == "objects":
                    _pause_for_tests()
            with interrupts_held() as held:
                _pause_for_tests("commit")
                held.raise_pending()  # the last point where an interrupt leaves the store as it was
                con.execute("COMMIT")
                committed = True
                _pause_for_tests("committed")
                if on_commit is not None:
                    on_commit()
            if held.pending:
                print("qa: interrupt received while the run was committed; the run is stored whole",
                      file=sys.stderr, flush=True)
        except duckdb.Error as exc:
            if committed:
                raise StoreError(f"run {run.run_id} was stored, then: {' '.join(str(exc).split())}",
                                 path=self.path) from None
            self._rollback()
            raise StoreError(f"cannot store run {run.run_id}: {' '.join(str(exc).split())}", path=self.path) from None
        except BaseException:
            if not committed:
                self._rollback()
            raise
        return int(seq)

    def _rollback(self) -> None:
        """Abandon the open transaction and drop the insert views (errors here would hide the cause)."""
        import duckdb

        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        for name in RUN_TABLES:
            try:
                self._con.unregister(f"_qa_insert_{name}")
            except duckdb.Error:
                pass


_UNKEYED = ("object_matches", "boundary_disagreement", *UNINDEXED)
"""The run tables without a primary key (schema.sql)."""


def write_memory_limit(keys: int) -> int:
    """DuckDB's memory limit, in bytes, while a run with ``keys`` rows in tables with a primary key is
    written: 64 MB for what DuckDB caches of the open transaction (the rest goes to its temporary files),
    plus 48 bytes per key for the primary keys' ART indexes, which must fit in memory (about 25 bytes a
    key measured for ``objects``; since schema 7 the keyed tables have a few rows per run, the
    :data:`UNINDEXED` tables none). Without a limit DuckDB caches up to 80% of the machine's memory, and
    it fills what it is given: at the commit of a 20,000-image run it held 148 MB with 192 MB allowed (and
    56 MB of keys), 26 MB with 64 (and 59 MB in its temporary files), for a write 3 percent slower.

    Examples
    --------
    >>> write_memory_limit(0) // 2 ** 20, write_memory_limit(4_000_000) // 2 ** 20
    (64, 247)
    """
    return 64 * 2 ** 20 + 48 * int(keys)


def _one(con, query: str, params: list | None = None):
    """The first row of a query, or None (fetching every row, so the connection is free again)."""
    rows = con.execute(query, params or []).fetchall()
    return rows[0] if rows else None


def _pause_for_tests(point: str = "") -> None:
    """Sleep at ``point`` of the write when ``QA_TEST_PAUSE_IN_WRITE`` names it (fault tests only)."""
    value = os.environ.get(PAUSE_ENV)
    if not value:
        return
    seconds, _, at = value.partition("@")
    if at != point:
        return
    where = {"": "inside the write transaction", "commit": "just before COMMIT",
             "committed": "just after COMMIT"}[point]
    print(f"qa: store: pausing {seconds} s {where} ({PAUSE_ENV})", file=sys.stderr, flush=True)
    time.sleep(float(seconds))


def _plain(value):
    """numpy / pandas scalars to plain Python (NaN and NA to None)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if hasattr(value, "tolist") and not isinstance(value, (list, dict, str)):
        return value.tolist()
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def open(path=None, *, read_only: bool = True, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
         sandbox: bool = False) -> Store:
    """Open a run store.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The DuckDB file; :func:`default_db` when None.
    read_only : bool, default True
        Open for reading only (several readers may share the file). A writable open creates the file
        and its tables when they do not exist.
    lock_timeout : float, seconds, default 30
        How long to wait while another process holds the file's lock.
    sandbox : bool, default False
        Open read-only with :data:`SANDBOX`'s settings, for SQL from a user: the store's tables can be
        read, but no other file or URL, no ATTACH, COPY TO, EXPORT, INSTALL or LOAD, and no SET to
        undo that (each fails as a one-line StoreError). :meth:`Store.export_parquet` needs a store
        opened without it.

    Returns
    -------
    Store

    Raises
    ------
    StoreError
        The file is missing (read-only), not a DuckDB database, a DuckDB database of something else,
        written by a newer version, or still locked after ``lock_timeout``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "qa.duckdb"
    >>> with open(db, read_only=False) as store:
    ...     len(store.runs())
    0
    """
    return Store(default_db() if path is None else path, read_only=read_only, lock_timeout=lock_timeout,
                 sandbox=sandbox)


def store_run(run, path=None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, on_commit=None) -> int:
    """Open the store for writing, write ``run`` in one transaction, close it; return the run's seq.

    ``on_commit`` is called right after the commit (see :meth:`Store.write_run`)."""
    from qa.parts import RunFolder

    # built before the file is locked; the object-level tables as Parquet parts in a folder of this call's
    # own, removed when the run is stored or fails (or by the next run, if this process is killed)
    with RunFolder(prefix="qa-store-") as parts_dir:
        frames = run_frames(run, parts_dir=parts_dir)
        with open(path, read_only=False, lock_timeout=lock_timeout) as store:
            return store.write_run(run, frames=frames, on_commit=on_commit)


# --- a run as table rows ------------------------------------------------------------------------------

def _stage(code: str) -> str:
    if code.startswith("ALN"):
        return "align"
    if code.startswith("FMT0"):
        return "load"
    return "rules"


def _json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, allow_nan=False) if value != {} else None


def _finite(value):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


# Incoming column names (from the engine's DataFrames) that map onto a stored column, and columns left out
# because another table has them (an object's source is in `objects`; `pair` is annotator_a|annotator_b).
_ALIASES = {
    "object_matches": {"signed_offset": "signed_offset_px", "assd": "assd_px", "hd95": "hd95_px",
                       "signed_offset_median": "signed_offset_median_px"},
    "image_pair_scores": {},
    "boundary_disagreement": {},  # its columns are named as the metric registry names each mean
}
_LEFT_OUT = {
    "object_matches": {"file_a", "source_index_a", "source_id_a", "file_b", "source_index_b", "source_id_b"},
    "image_pair_scores": {"pair"},
    "boundary_disagreement": {"pair"},
}


def _table_columns(table: str) -> list[str]:
    """Column names of a table, in schema.sql order (parsed from the file, no database needed)."""
    sql = _schema_sql()
    match = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.S)
    columns = []
    for line in match.group(1).splitlines():
        line = line.split("--")[0].strip()
        if line and not line.upper().startswith("PRIMARY KEY"):
            columns.append(line.split()[0])
    return columns


def _frame_from(table: str, df, run_id: str | None):
    """An engine DataFrame as rows of ``table``: known columns kept, the rest packed into ``metrics``;
    without ``run_id`` when it is None (the store's insert adds it)."""
    import pandas as pd

    columns = _table_columns(table)
    df = df.rename(columns=_ALIASES.get(table, {})).reset_index(drop=True)
    df = df[[c for c in df.columns if c not in _LEFT_OUT.get(table, ()) and c != "run_id"]]
    out = pd.DataFrame(index=range(len(df)))
    for c in df.columns:
        if c in columns:
            column = df[c]
            if isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype(object)
            out[c] = column
    if "metrics" in columns:
        extra = [c for c in df.columns if c not in columns]
        if extra:
            out["metrics"] = _json_rows(df[extra])
    if run_id is not None:
        out.insert(0, "run_id", run_id)
    return out


def _json_rows(frame) -> list:
    """Each row of ``frame`` as a JSON object of its columns: the text ``_json({column: _json_value(value)})``
    gives (NaN and infinities as null), made column by column instead of a dict and a ``json.dumps`` per row.

    Examples
    --------
    >>> import pandas as pd
    >>> _json_rows(pd.DataFrame({"f": [0.5, float("nan")], "n": [3, 4], "ok": [True, False]}))
    ['{"f": 0.5, "n": 3, "ok": true}', '{"f": null, "n": 4, "ok": false}']
    """
    import numpy as np

    if not len(frame.columns):
        return [None] * len(frame)
    texts = []
    for name in frame.columns:
        column = frame[name]
        key = json.dumps(str(name)) + ": "
        kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else None  # numpy columns only
        if kind == "f":  # Python's float repr, as json.dumps writes a float
            texts.append([key + (repr(v) if math.isfinite(v) else "null") for v in column.tolist()])
        elif kind in ("i", "u"):
            texts.append([key + str(v) for v in column.tolist()])
        elif kind == "b":
            texts.append([key + ("true" if v else "false") for v in column.tolist()])
        else:  # anything else value by value, as the records of the frame give them
            texts.append([key + json.dumps(_json_value(r[name]), default=str, allow_nan=False)
                          for r in frame[[name]].to_dict("records")])
    return ["{" + ", ".join(row) + "}" for row in zip(*texts)]


_PLAIN_TYPES = (str, int, bool, type(None), list, dict)


def _json_value(value):
    """A value JSON can hold: numpy scalars to Python, NaN and infinities to None (plain values fast)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, _PLAIN_TYPES):
        value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None
    return value


_NOT_AVERAGED = re.compile(r"^(object_index|source_index|intersection|area|best_iou|crowd_share)|_n$|_matched_|"
                           r"^biou_(intersection|union)$|^surface_._length$")


def boundary_summary(object_pairs):
    """Boundary figures of matched pairs averaged per annotator pair and category pair.

    Parameters
    ----------
    object_pairs : pandas.DataFrame
        The engine's object pair table (``status``, ``annotator_a/b``, ``category_a/b`` and per-pair
        figures such as ``boundary_iou``, ``boundary_f_2px``, ``signed_offset``).

    Returns
    -------
    pandas.DataFrame or None
        One row per ``(annotator_a, annotator_b, category_a, category_b)`` with ``n_pairs`` and the
        mean of every per-pair figure (``<name>_mean``, NaN values left out); None when the table has
        no matched pairs or no boundary figures.

    Notes
    -----
    Counts behind a figure (``boundary_a_n``, ``biou_union``, ...) and the pair's areas are not
    averaged. Each mean is named as the metric registry names the mean of that column (``iou`` as
    ``mask_iou_mean``, ``signed_offset`` as ``signed_offset_px_mean``).
    """
    import pandas as pd

    if object_pairs is None or len(object_pairs) == 0 or "status" not in object_pairs:
        return None
    keys = ["annotator_a", "annotator_b", "category_a", "category_b"]
    matched = object_pairs[object_pairs["status"].astype(str) == "matched"]
    figures = [c for c in matched.columns if c not in keys and pd.api.types.is_float_dtype(matched[c])
               and not _NOT_AVERAGED.search(c)]
    if len(matched) == 0 or not any(c not in ("iou",) for c in figures):
        return None
    frame = matched[keys + figures].copy()
    for key in keys:
        frame[key] = frame[key].astype(str)
    grouped = frame.groupby(keys, sort=True)
    out = grouped[figures].mean()
    out.columns = [metric_registry.score_for_column(c) or f"{c}_mean" for c in figures]
    out.insert(0, "n_pairs", grouped.size())
    return out.reset_index()


def _scores_frame(scores, run_id: str):
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({
        "run_id": run_id,
        "scope": scores["scope"].astype(str).to_numpy(),
        "key": scores["key"].fillna("").astype(str).to_numpy(),
        "metric": scores["metric"].astype(str).to_numpy(),
        "value": pd.to_numeric(scores["value"], errors="coerce").astype(float).to_numpy(),
        "n": pd.to_numeric(scores["n"], errors="coerce").fillna(0).astype(np.int64).to_numpy(),
    })
    df.loc[~np.isfinite(df["value"]), "value"] = np.nan
    return df


PART_ROWS = 10_000
"""Rows of an object-level table made (and written to Parquet) at a time by :func:`run_frames` with
``parts_dir``."""


_OBJECT_DTYPES = {"area": float, "bbox_x": float, "bbox_y": float, "bbox_w": float, "bbox_h": float,
                  "occluded": "boolean", "z_order": "Int64", "group_id": "Int64", "source_index": "Int64"}
"""The ``objects`` columns given a fixed dtype (an all-NULL column still inserts as its type)."""


def _object_frames(batch, run_id: str, *, rows: int | None, tally: dict | None = None):
    """The ``objects`` table's rows, ``rows`` objects at a time (all at once when None), as DataFrames made
    a column at a time from each block of objects, so no dict per object is made. ``tally`` gets the
    objects counted on the way (``per_image``, ``per_category``, ``crowd`` per annotator), so they are read
    once."""
    from collections import Counter
    from itertools import islice

    import numpy as np
    import pandas as pd

    tally = {} if tally is None else tally
    per_image, per_category = tally.setdefault("per_image", Counter()), tally.setdefault("per_category", Counter())
    crowd = tally.setdefault("crowd", {})
    parts: list = []  # the blocks of the frame being made
    count = 0
    for name in batch.annotators:
        objects = iter(batch.exports[name].objects)
        crowd[name] = 0
        index = 0
        while True:
            block = list(islice(objects, (rows - count) if rows is not None else 50_000))
            if not block:
                break
            columns = _object_columns(block, run_id, name, np.arange(index, index + len(block)))
            per_image.update(columns["image"])
            per_category.update(columns["category"])
            crowd[name] += int(columns["iscrowd"].sum())
            parts.append(pd.DataFrame(columns))
            index += len(block)
            count += len(block)
            if rows is not None and count == rows:
                yield _typed(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0], _OBJECT_DTYPES)
                parts, count = [], 0
    if rows is None or count:
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts else pd.DataFrame()
        yield _typed(frame, _OBJECT_DTYPES)


def _finite_column(values) -> np.ndarray:
    """Numbers (None allowed) as float64, NaN where not finite (stored as NULL)."""
    import numpy as np

    out = np.array(values, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def _object_columns(block: list, run_id: str | None, annotator: str, object_index) -> dict:
    """The ``objects`` columns of a block of one annotator's objects at their export positions
    ``object_index``; without ``run_id`` when it is None (the store's insert adds it)."""
    import numpy as np

    n = len(block)
    boxes = _finite_column([o.bbox if o.bbox is not None else (None, None, None, None) for o in block]).reshape(n, 4)
    sources = [o.source for o in block]
    attributes = [o.attributes for o in block]
    return {
        **({} if run_id is None else {"run_id": [run_id] * n}),
        "annotator": [annotator] * n, "object_index": np.asarray(object_index, dtype=np.int64),
        "image": [o.image for o in block], "category": [o.category for o in block], "kind": [o.kind for o in block],
        "iscrowd": np.array([bool(o.iscrowd) for o in block], dtype=bool),
        "area": _finite_column([o.area for o in block]),
        "bbox_x": boxes[:, 0], "bbox_y": boxes[:, 1], "bbox_w": boxes[:, 2], "bbox_h": boxes[:, 3],
        "occluded": [o.occluded for o in block], "z_order": [o.z_order for o in block],
        "group_id": [None if not a or a.get("group") is None else int(a["group"]) for a in attributes],
        "file": [src.file for src in sources], "source_section": [src.section for src in sources],
        "source_index": [src.index for src in sources],
        "source_id": [None if src.id is None else str(src.id) for src in sources],
        "attributes": [_json({k: _json_value(v) for k, v in a.items() if k not in ("occluded", "z_order", "group")})
                       if a else None for a in attributes],
    }


def _object_schema():
    """The ``objects`` columns a run's tasks send (:func:`object_rows`), one Arrow schema for every chunk: a
    chunk whose column is all NULL still has the column's type, so the chunks' tables write into one file."""
    import pyarrow as pa

    text, number, whole = pa.string(), pa.float64(), pa.int64()
    return pa.schema([("annotator", text), ("object_index", whole), ("image", text), ("category", text),
                      ("kind", text), ("iscrowd", pa.bool_()), ("area", number), ("bbox_x", number),
                      ("bbox_y", number), ("bbox_w", number), ("bbox_h", number), ("occluded", pa.bool_()),
                      ("z_order", whole), ("group_id", whole), ("file", text), ("source_section", text),
                      ("source_index", whole), ("source_id", text), ("attributes", text)])


def object_rows(objects, positions, annotator: str) -> tuple | None:
    """The ``objects`` table's rows of some of one annotator's objects, as a run's per-image task makes them
    for the store (:class:`ObjectRowParts` keeps them): ``(rows, pyarrow.Table, objects per image, objects
    per category, crowd objects)``, or None without objects.

    ``positions`` are the objects' places in their export (the stored ``object_index``). The rows are
    those :func:`run_frames` makes from the objects, in the objects' order, without ``run_id`` (the insert
    adds it); made in the worker, so the main process does not read every object again to make them.
    """
    from collections import Counter

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    objects = list(objects)
    if not objects:
        return None
    columns = _object_columns(objects, None, annotator, np.asarray(positions, dtype=np.int64))
    table = pa.Table.from_pandas(_typed(pd.DataFrame(columns), _OBJECT_DTYPES), schema=_object_schema(),
                                 preserve_index=False).replace_schema_metadata(None)
    return (len(objects), table, dict(Counter(columns["image"])), dict(Counter(columns["category"])),
            int(columns["iscrowd"].sum()))


class ObjectRowParts:
    """The ``objects`` rows the run's tasks made (:func:`object_rows`), written as they come, each chunk's
    table of an annotator a row group of that annotator's open Parquet file in ``folder`` (the run's, held by
    ``owner``; a new file past :data:`PART_ROWS` rows); :meth:`parts` gives them to the store's insert.
    Call :meth:`finish` after the last chunk.

    Attributes
    ----------
    rows : dict
        Rows per annotator.
    tally : dict
        ``per_image``, ``per_category`` (Counters over every annotator) and ``crowd`` (per annotator): the
        counts :func:`run_frames` would otherwise take from the objects.
    """

    def __init__(self, folder, *, owner=None):
        from collections import Counter

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.owner = owner
        self.files: dict[str, list] = {}  # annotator -> its files, in order
        self.rows: dict[str, int] = {}
        self.tally = {"per_image": Counter(), "per_category": Counter(), "crowd": {}}
        self._open: dict[str, list] = {}  # annotator -> [its open writer, rows written to it]

    def add(self, made: dict) -> None:
        """One task's rows: ``{annotator: object_rows(...)}``."""
        import pyarrow.parquet as pq

        for annotator, part in made.items():
            if part is None:
                continue
            rows, table, per_image, per_category, crowd = part
            self.rows[annotator] = self.rows.get(annotator, 0) + rows
            self.tally["per_image"].update(per_image)
            self.tally["per_category"].update(per_category)
            self.tally["crowd"][annotator] = self.tally["crowd"].get(annotator, 0) + crowd
            if annotator not in self._open:
                path = self.folder / f"part-{sum(len(f) for f in self.files.values()):05d}.parquet"
                self.files.setdefault(annotator, []).append(path)
                self._open[annotator] = [pq.ParquetWriter(path, table.schema), 0]
            opened = self._open[annotator]
            opened[0].write_table(table)  # a row group, written now: nothing of it held here
            opened[1] += rows
            if opened[1] >= PART_ROWS:
                self._open.pop(annotator)[0].close()

    def finish(self) -> "ObjectRowParts":
        """Close the files still open; returns itself."""
        for writer, _rows in self._open.values():
            writer.close()
        self._open = {}
        return self

    def covers(self, batch) -> bool:
        """Whether these are the rows of every object of ``batch`` (each annotator's count), all written."""
        return (not self._open and set(self.rows) <= set(batch.annotators)
                and all(self.rows.get(name, 0) == len(batch.exports[name].objects) for name in batch.annotators))

    def parts(self, run_id: str, annotators) -> Parts:
        """The rows as the store's insert takes them, each annotator's files in turn, ``run_id`` a
        constant."""
        paths = [path for name in annotators for path in self.files.get(name, [])]
        return Parts(paths, sum(self.rows.values()), owner=self.owner, constants={"run_id": run_id})


def match_rows(rows, _settings=None):
    """The store's ``object_matches`` rows of some rows of a comparison's ``object_pairs`` (at most
    :data:`PART_ROWS`), as a pyarrow Table without ``run_id`` (the insert adds it): a task on the run's
    executor (:func:`stored_match_rows`), so the JSON of each row's other figures is made in the workers."""
    import pyarrow as pa

    return pa.Table.from_pandas(_frame_from("object_matches", rows, None), preserve_index=False)


def _match_ranges(comparison):
    """``object_pairs`` of a comparison :data:`PART_ROWS` rows at a time (each part in turn when on disk):
    what the store's ``object_matches`` rows are made from, a range at a time."""
    for _first, piece in comparison.object_pieces():
        for k in range(0, len(piece), PART_ROWS):
            yield piece.iloc[k:k + PART_ROWS]


class MatchRowParts:
    """The ``object_matches`` rows :func:`stored_match_rows` made: Parquet files in the run's folder
    (``paths``, ``rows``; held by ``owner``), and how many rows of ``object_pairs`` they were made from."""

    __slots__ = ("paths", "rows", "source_rows", "owner")

    def __init__(self, paths, rows: int, source_rows: int, owner=None):
        self.paths, self.rows, self.source_rows, self.owner = list(paths), int(rows), int(source_rows), owner

    def parts(self, run_id: str) -> Parts:
        """The rows as the store's insert takes them, ``run_id`` a constant."""
        return Parts(self.paths, self.rows, owner=self.owner, constants={"run_id": run_id})


def stored_match_rows(comparison, folder, *, owner=None, executor=None) -> MatchRowParts | None:
    """The store's ``object_matches`` rows of a comparison kept in parts (None for one in memory), made
    :data:`PART_ROWS` rows of ``object_pairs`` per task on ``executor`` (:func:`match_rows`; in this process
    without one) and written in order to Parquet files in ``folder``: a run that will be stored makes them
    while its workers are there, and :func:`run_frames` uses them instead of making them in the main
    process."""
    import pyarrow.parquet as pq

    from qa.engine._pool import on_executor

    parts = comparison.object_parts() if comparison is not None and hasattr(comparison, "object_parts") else None
    if parts is None:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = _match_ranges(comparison)  # a few in flight, not whole parts
    made = on_executor(match_rows, pieces, None, executor)
    paths, rows = [], 0
    for table in made:
        path = folder / f"part-{len(paths):05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
        rows += table.num_rows
    return MatchRowParts(paths, rows, len(parts), owner=owner)


def _finding_frames(findings: list, run_id: str, *, rows: int | None):
    """The ``findings`` table's rows, ``rows`` findings at a time (all at once when None), as DataFrames made
    from one list per column (no dict per finding)."""
    import pandas as pd

    names = ("run_id", "finding_index", "stage", "code", "severity", "message", "annotator", "image", "file",
             "source_section", "source_index", "source_id", "value", "limit_value")
    dtypes = {"source_index": "Int64", "value": float, "limit_value": float}
    step = len(findings) if rows is None else rows
    for start in range(0, max(len(findings), 1), max(step, 1)):
        columns: dict = {c: [] for c in names}
        for i, f in enumerate(findings[start:start + step], start):
            source = f.source
            for column, value in zip(names, (
                    run_id, i, _stage(f.code), f.code, f.severity, f.message, f.annotator, f.image,
                    source.file if source else None, source.section if source else None,
                    source.index if source else None,
                    None if source is None or source.id is None else str(source.id),
                    _finite(f.value), _finite(f.limit))):
                columns[column].append(value)
        yield _typed(pd.DataFrame(columns) if columns["run_id"] else pd.DataFrame(), dtypes)


def run_frames(run, *, parts_dir=None) -> dict:
    """The rows a run adds to each table, as DataFrames keyed by table name.

    With ``parts_dir`` (a folder that exists), the object-level tables (``objects``, ``object_matches``,
    ``findings``) and ``scores`` are made :data:`PART_ROWS` rows at a time and written there as
    :class:`Parts`, so the run's rows are never all in memory as Python values; what is stored is the same.
    """
    import pandas as pd

    batch = run.batch
    run_id = run.run_id
    findings = run_findings(run)
    verdict = getattr(run, "verdict", None)
    verdict_doc = verdict.to_dict() if verdict is not None else None
    inputs = list(getattr(run, "inputs", None) or input_fingerprints(batch))
    fp = {i["annotator"]: i for i in inputs}
    n_objects = sum(len(e.objects) for e in batch.exports.values())
    severities = counts_by(findings, "severity")  # counted without reading a run's packed violations
    findings_of = counts_by(findings, "annotator")
    frames: dict[str, Any] = {}

    frames["runs"] = pd.DataFrame([{
        "run_id": run_id,
        "seq": 0,
        "name": getattr(batch, "name", None),
        "description": getattr(batch, "description", None),
        "started_at": run.started_at,
        "finished_at": run.finished_at or _utcnow(),
        "stored_at": _utcnow(),
        "tool_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "settings": _json(run.settings or {}) or "{}",
        "inputs": json.dumps(inputs, default=str, sort_keys=True),
        "inputs_sha256": combined_fingerprint(inputs),
        "pack": (run.settings or {}).get("pack") or (verdict_doc or {}).get("meta", {}).get("pack") or None,
        "gate_pack": (verdict_doc or {}).get("meta", {}).get("pack") or None,
        "baseline_run_id": (verdict_doc or {}).get("meta", {}).get("baseline_run_id"),
        "verdict": None if verdict is None else ("passed" if verdict.success else "failed"),
        "checks_evaluated": None if verdict is None else verdict.statistics["evaluated"],
        "checks_failed": None if verdict is None else verdict.statistics["failed"],
        "verdict_json": None if verdict_doc is None else json.dumps(verdict_doc, allow_nan=False, default=str),
        "n_annotators": len(batch.annotators),
        "n_images": len(batch.images),
        "n_objects": n_objects,
        "n_findings": len(findings),
        "errors": severities.get("error", 0),
        "warnings": severities.get("warning", 0),
    }])

    frames["annotators"] = None  # made below, from the counts the objects' rows give (tables in this order)
    made = getattr(run, "object_rows", None)
    if parts_dir is not None and made is not None and made.covers(batch):  # the rows the run's tasks made
        frames["objects"] = made.parts(run_id, batch.annotators)
        tally = {**made.tally, "crowd": {name: made.tally["crowd"].get(name, 0) for name in batch.annotators}}
    else:
        tally = {}  # the objects counted while their rows are made (one read of a streamed run's objects)
        object_frames = _object_frames(batch, run_id, rows=None if parts_dir is None else PART_ROWS, tally=tally)
        frames["objects"] = next(object_frames) if parts_dir is None else Parts.of(
            object_frames, Path(parts_dir) / "objects")
    per_image, per_category = tally["per_image"], tally["per_category"]
    frames["annotators"] = pd.DataFrame([{
        "run_id": run_id, "annotator": name, "path": str(e.path), "format": e.format,
        "sha256": fp.get(name, {}).get("sha256", ""), "n_images": len(e.images), "n_objects": len(e.objects),
        "n_crowd": tally["crowd"][name], "n_findings": findings_of.get(name, 0),
    } for name, e in ((n, batch.exports[n]) for n in batch.annotators)])

    frames["images"] = pd.DataFrame([{
        "run_id": run_id, "image": key, "file_name": img.file_name, "width": int(img.width),
        "height": int(img.height), "n_annotators": len(batch.coverage.get(key, ())),
        "annotators": sorted(batch.coverage.get(key, ())), "n_objects": per_image.get(key, 0),
    } for key, img in batch.images.items()])

    frames["categories"] = pd.DataFrame([{
        "run_id": run_id, "category": name, "isthing": bool(c.isthing), "supercategory": c.supercategory or "",
        "n_objects": per_category.get(name, 0),
    } for name, c in batch.categories.items()])

    finding_frames = _finding_frames(findings, run_id, rows=None if parts_dir is None else PART_ROWS)
    frames["findings"] = next(finding_frames) if parts_dir is None else Parts.of(
        finding_frames, Path(parts_dir) / "findings")

    comparison = getattr(run, "comparison", None)
    scores = run_scores(run)
    if scores is not None and len(scores):  # a few rows per image and category: made a part at a time too
        frames["scores"] = _scores_frame(scores, run_id) if parts_dir is None else Parts.of(
            (_scores_frame(scores.iloc[k:k + PART_ROWS], run_id) for k in range(0, len(scores), PART_ROWS)),
            Path(parts_dir) / "scores")
    for table, attr in (("object_matches", "object_pairs"), ("image_pair_scores", "image_pairs")):
        matches = getattr(run, "match_rows", None) if table == "object_matches" else None
        if (parts_dir is not None and matches is not None
                and matches.source_rows == len(comparison.object_parts() or ())):
            frames[table] = matches.parts(run_id)  # made on the run's executor (stored_match_rows)
            continue
        if parts_dir is not None and table == "object_matches" and hasattr(comparison, "object_pieces"):
            # part by part (the comparison's own parts when it is on disk): the JSON of each row's other
            # figures is made for one part at a time
            frames[table] = Parts.of((_frame_from(table, rows, run_id) for rows in _match_ranges(comparison)),
                                     Path(parts_dir) / table)
            continue
        df = getattr(comparison, attr, None) if comparison is not None else None
        if df is not None and len(df):
            frames[table] = _frame_from(table, df, run_id)
            del df
    boundary = getattr(run, "boundary_disagreement", None)
    if boundary is None and comparison is not None:
        boundary = getattr(comparison, "boundary_disagreement", None)
        if boundary is None:
            boundary = boundary_summary(getattr(comparison, "object_pairs", None))
    if boundary is not None and len(boundary):
        frames["boundary_disagreement"] = _frame_from("boundary_disagreement", boundary, run_id)

    analytics = getattr(run, "analytics", None)
    queue = getattr(analytics, "review_table", None) if analytics is not None else None
    if isinstance(queue, Parts) and len(queue):  # kept on disk: inserted from its files
        frames["review_queue"] = Parts(queue.paths, len(queue), owner=queue.owner, constants={"run_id": run_id})
    elif queue is not None and len(queue):
        frames["review_queue"] = _typed(_frame_from("review_queue", queue, run_id),
                                        {"object_index": "Int64", "other_object_index": "Int64",
                                         "source_index": "Int64", "reasons": "int64", "area": float, "value": float})

    attributes = getattr(run, "attributes", None)
    confusion = getattr(attributes, "confusion", None) if attributes is not None else None
    if confusion is not None and len(confusion):
        frames["attribute_confusion"] = confusion.assign(run_id=run_id)[
            ["run_id", "attribute", "annotator_a", "annotator_b", "value_a", "value_b", "n"]].astype({"n": "int64"})

    if verdict is not None and verdict.results:
        frames["gate_results"] = pd.DataFrame([{
            "run_id": run_id, "check_index": i, "name": r.name, "metric": r.metric, "scope": r.scope,
            "key": r.key, "op": r.op, "bound": float(r.bound), "observed": _finite(r.observed),
            "n": r.n, "baseline_value": _finite(r.baseline), "passed": bool(r.passed), "message": r.message,
        } for i, r in enumerate(verdict.results)])
        frames["gate_results"] = _typed(frames["gate_results"], {"observed": float, "n": "Int64",
                                                                 "baseline_value": float})
    return frames


def _typed(df, dtypes: dict):
    """Give nullable columns a fixed dtype so an all-NULL column still inserts as its type."""
    if len(df) == 0:
        return df
    for column, dtype in dtypes.items():
        if column in df:
            df[column] = df[column].astype(dtype)
    return df


# --- comparing two runs -------------------------------------------------------------------------------

DIFF_SCOPES = ("batch", "annotator", "category", "annotator_pair")
"""Scopes :func:`diff` compares by default (image-level figures are left to SQL)."""


def diff(store: Store, a, b, *, scopes: Iterable[str] = DIFF_SCOPES) -> dict:
    """What changed between two stored runs.

    Parameters
    ----------
    store : Store
    a, b : str
        Run references (see :meth:`Store.resolve`); ``a`` is the earlier or reference run.
    scopes : iterable of str, default batch, annotator, category, annotator_pair
        Which score scopes to compare.

    Returns
    -------
    dict
        ``runs`` (the two runs' ids and headline counts), ``inputs`` (each annotator's fingerprint
        in a and b and whether it changed), ``counts`` (objects per annotator and category, images,
        findings per severity and code: ``what, scope, key, a, b, delta``) and ``scores``
        (``scope, key, metric, a, b, delta``; a figure present in one run only has NaN on the other
        side). DataFrames, sorted so the largest changes come first within each group.
    """
    run_a, run_b = store.resolve(a), store.resolve(b)
    params = [run_a, run_b]
    runs = store._df(
        "SELECT run_id, seq, name, started_at, n_annotators, n_images, n_objects, n_findings, errors, "
        "warnings, verdict, inputs_sha256 FROM runs WHERE run_id IN (?, ?) "
        "ORDER BY CASE WHEN run_id = ? THEN 0 ELSE 1 END", params + [run_a])
    inputs = store._df("""
        WITH a AS (SELECT annotator, sha256, format, n_objects FROM annotators WHERE run_id = ?),
             b AS (SELECT annotator, sha256, format, n_objects FROM annotators WHERE run_id = ?)
        SELECT coalesce(a.annotator, b.annotator) AS annotator, a.sha256 AS sha256_a, b.sha256 AS sha256_b,
               CASE WHEN a.annotator IS NULL THEN 'added' WHEN b.annotator IS NULL THEN 'removed'
                    WHEN a.sha256 = b.sha256 THEN 'same' ELSE 'changed' END AS status
        FROM a FULL OUTER JOIN b ON a.annotator = b.annotator ORDER BY annotator""", params)
    counts = store._df("""
        WITH c AS (
            SELECT run_id, 'objects' AS what, 'annotator' AS scope, annotator AS key, count(*) AS n
              FROM objects WHERE run_id IN (?, ?) GROUP BY ALL
            UNION ALL SELECT run_id, 'objects', 'category', category, count(*)
              FROM objects WHERE run_id IN (?, ?) GROUP BY ALL
            UNION ALL SELECT run_id, 'images', 'batch', '', count(*)
              FROM images WHERE run_id IN (?, ?) GROUP BY ALL
            UNION ALL SELECT run_id, 'findings', 'severity', severity, count(*)
              FROM findings WHERE run_id IN (?, ?) GROUP BY ALL
            UNION ALL SELECT run_id, 'findings', 'code', code, count(*)
              FROM findings WHERE run_id IN (?, ?) GROUP BY ALL
        ),
        a AS (SELECT * FROM c WHERE run_id = ?), b AS (SELECT * FROM c WHERE run_id = ?)
        SELECT coalesce(a.what, b.what) AS what, coalesce(a.scope, b.scope) AS scope,
               coalesce(a.key, b.key) AS key, coalesce(a.n, 0) AS a, coalesce(b.n, 0) AS b,
               coalesce(b.n, 0) - coalesce(a.n, 0) AS delta
        FROM a FULL OUTER JOIN b ON a.what = b.what AND a.scope = b.scope AND a.key = b.key
        ORDER BY what DESC, scope, abs(delta) DESC, key""", params * 5 + params)
    scope_list = list(scopes)
    marks = ", ".join("?" for _ in scope_list)
    scores = store._df(f"""
        WITH a AS (SELECT scope, key, metric, value FROM scores WHERE run_id = ? AND scope IN ({marks})),
             b AS (SELECT scope, key, metric, value FROM scores WHERE run_id = ? AND scope IN ({marks}))
        SELECT coalesce(a.scope, b.scope) AS scope, coalesce(a.key, b.key) AS key,
               coalesce(a.metric, b.metric) AS metric, a.value AS a, b.value AS b, b.value - a.value AS delta
        FROM a FULL OUTER JOIN b ON a.scope = b.scope AND a.key = b.key AND a.metric = b.metric
        ORDER BY scope, metric, abs(delta) DESC NULLS FIRST, key""",
        [run_a, *scope_list, run_b, *scope_list])
    return {"a": run_a, "b": run_b, "runs": runs, "inputs": inputs, "counts": counts, "scores": scores}


def diff_changes(d: dict) -> dict:
    """:func:`diff` keeping only what changed: counts with a delta, figures that moved (or are in one run
    only), inputs not the same. ``qa diff`` prints this unless ``--all``; the service shows it."""
    counts, scores, inputs = d["counts"], d["scores"], d["inputs"]
    changed = scores["delta"].isna() & ~(scores["a"].isna() & scores["b"].isna())
    return {**d, "counts": counts[counts["delta"] != 0], "scores": scores[changed | (scores["delta"].abs() > 1e-12)],
            "inputs": inputs[inputs["status"] != "same"]}
