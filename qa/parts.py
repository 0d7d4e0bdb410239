"""Tables kept on disk as Parquet parts, so a run's per-object rows need not all be in memory.

A :class:`Parts` is one table written as ``part-00000.parquet``, ``part-00001.parquet``, ... in a folder:
the store inserts it one file at a time (:meth:`qa.store.Store.write_run`), and a reader takes its
first rows (:meth:`Parts.head`), one column (``parts["reason"]``) or the whole table
(:meth:`Parts.read`) without holding more than it asked for.

:func:`run_folder` makes the temporary folder a run writes such tables to; it is removed when the last
table that reads from it is garbage (or when the process exits).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import weakref
from pathlib import Path

__all__ = ["Parts", "RunFolder", "run_folder", "sweep"]


def run_folder(parent=None) -> "RunFolder":
    """A new temporary folder for a run's tables (under ``parent``, or the system's temporary folder:
    ``TMPDIR``); keep the returned object as long as a table in it is read (:attr:`Parts.owner`)."""
    return RunFolder(parent)


PREFIXES = ("qa-run-", "qa-store-")
"""The names of the temporary folders runs make (:class:`RunFolder`): the run's tables, the store's parts."""

_OWNER = ".owner.lock"
"""A file in each :class:`RunFolder` its process holds locked for as long as it lives."""


class RunFolder:
    """A temporary folder (``name``, ``path``) removed when this object is garbage, at :meth:`cleanup` or when the
    process exits, whichever comes first; as ``tempfile.TemporaryDirectory``, but its removal by the
    garbage collector is the intended end, not a leak, so it gives no ``ResourceWarning``.

    A process killed outright (SIGKILL, the OOM killer) cannot remove its folder; its lock on the
    folder's owner file goes with it, so the next folder made under the same parent removes it
    (:func:`sweep`)."""

    __slots__ = ("name", "path", "_finalizer", "__weakref__")

    def __init__(self, parent=None, *, prefix: str = "qa-run-"):
        sweep(parent)
        self.name = tempfile.mkdtemp(prefix=prefix, dir=parent)
        self.path = Path(self.name)
        lock = _hold(self.path)
        self._finalizer = weakref.finalize(self, _remove, self.name, lock)

    def cleanup(self) -> None:
        """Remove the folder now."""
        self._finalizer()

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"RunFolder({self.name!r})"


def _hold(folder: Path):
    """Lock ``folder``'s owner file for this process's lifetime (None where ``fcntl`` is missing). The file
    is locked under another name and then renamed, so a sweep never finds it unlocked."""
    try:
        import fcntl
    except ImportError:
        return None
    tmp = folder / (_OWNER + ".new")
    handle = open(tmp, "wb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    tmp.rename(folder / _OWNER)
    return handle


def _remove(name: str, lock) -> None:
    shutil.rmtree(name, ignore_errors=True)
    if lock is not None:
        lock.close()


def sweep(parent=None) -> list[str]:
    """Remove the run folders under ``parent`` (default: the system's temporary folder) whose process is
    gone: their owner file can be locked. Folders of live runs, and folders without an owner file, are
    left alone. Returns the folders removed."""
    try:
        import fcntl
    except ImportError:
        return []
    removed = []
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    for prefix in PREFIXES:
        for folder in root.glob(prefix + "*"):
            try:
                handle = open(folder / _OWNER, "rb")
            except OSError:  # not a folder of this kind, or one being made
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # its run is alive
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(str(folder))
    return removed


def batches(path, *, rows: int, columns=None):
    """The rows of the Parquet file ``path`` as pyarrow record batches of at most ``rows`` rows (only
    ``columns`` when given), read a row group at a time.

    The file is opened with ``pre_buffer=False``: with pyarrow's default the reader keeps every column
    chunk it has read until the file object is gone, so reading a file in batches held all of it (85 MB
    of a review queue of 1.45 million rows read 10,000 at a time, against 4 MB). The columns are decoded
    in the calling thread: decoded on Arrow's threads, reading six columns of that queue 100,000 rows at a
    time left the process 31 MB larger after everything was freed and given back, against 12 MB."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, pre_buffer=False) as f:
        yield from f.iter_batches(batch_size=rows, columns=columns, use_threads=False)


def read_frame(path, columns=None):
    """One Parquet file (only ``columns`` when given) as a DataFrame, as ``pandas.read_parquet`` reads it.

    The file is read as one file, not as a dataset: ``pandas.read_parquet`` goes through
    ``pyarrow.parquet.read_table``, whose dataset layer made a read of one column of a small part take
    twice as long (2.1 against 1.1 ms, ``benchmarks/bench_parts.py``), and a run with many small parts
    reads each of them a dozen times, a column at a time. With pyarrow older than 19 the text columns
    take pandas' own conversion (``pandas.read_parquet`` itself)."""
    if _pyarrow_before_19():
        import pandas as pd

        return pd.read_parquet(path, engine="pyarrow", columns=columns)
    return read_table(path, columns, use_pandas_metadata=True).to_pandas()


def read_table(path, columns=None, *, use_pandas_metadata: bool = False):
    """One Parquet file (only ``columns`` when given) as a ``pyarrow.Table``, read as one file, not as a
    dataset (:func:`read_frame`); ``use_pandas_metadata`` also reads the columns of a pandas index."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return f.read(columns=columns, use_pandas_metadata=use_pandas_metadata)


@functools.cache
def _pyarrow_before_19() -> bool:
    """Whether pyarrow is older than 19, whose ``to_pandas`` does not make pandas' text dtype by itself."""
    import pyarrow as pa

    return int(pa.__version__.split(".")[0]) < 19


def _concat(frames, *, ignore_index: bool = True):
    """Frames read from parts, one after the other; a categorical column whose categories differ from
    part to part (each part's own values) keeps one categorical with their union, in order of first
    appearance, where ``pandas.concat`` would make it ``object``."""
    import pandas as pd
    from pandas.api.types import union_categoricals

    if len(frames) == 1:
        return frames[0]
    columns = frames[0].columns
    unions = {}
    for name in columns:
        dtypes = [f[name].dtype for f in frames]
        if isinstance(dtypes[0], pd.CategoricalDtype) and any(d != dtypes[0] for d in dtypes[1:]):
            union = union_categoricals([f[name] for f in frames])
            unions[name] = pd.Categorical.from_codes(  # the categories' type of the parts (object or str)
                union.codes, categories=pd.Index(union.categories, dtype=frames[0][name].cat.categories.dtype),
                validate=False)
    if not unions:
        return pd.concat(frames, ignore_index=ignore_index)
    out = pd.concat([f.drop(columns=list(unions)) for f in frames], ignore_index=ignore_index)
    for name, values in unions.items():
        out[name] = pd.Series(values, index=out.index)
    return out[list(columns)]


class Parts:
    """The rows of one table as Parquet files, in order.

    Parameters
    ----------
    paths : list of pathlib.Path
        The files, in row order.
    rows : int
        Their rows in all.
    owner : object, optional
        What keeps the files' folder alive (a :func:`run_folder`): held as long as this object is.
    constants : dict, optional
        Columns with one value in every row that the files leave out (the store's ``run_id``): given
        to the store's insert (:meth:`qa.store.Store.write_run`), not to the readers.
    restore : callable, optional
        ``restore(frame) -> frame``, applied to every frame read: the column types Parquet does not keep
        (pandas' nullable integers of a file written without pandas' metadata).
    """

    __slots__ = ("paths", "rows", "owner", "constants", "restore")

    def __init__(self, paths: list, rows: int, *, owner=None, constants: dict | None = None, restore=None):
        self.paths = list(paths)
        self.rows = int(rows)
        self.owner = owner
        self.constants = dict(constants or {})
        self.restore = restore

    @classmethod
    def of(cls, frames, folder, *, owner=None) -> "Parts":
        """Write each DataFrame of ``frames`` (an iterable, consumed one at a time) to a file in ``folder``
        (made if needed); empty frames are left out."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths, rows = [], 0
        for frame in frames:
            if not len(frame):
                continue
            path = folder / f"part-{len(paths):05d}.parquet"
            frame.to_parquet(path, engine="pyarrow", index=False)
            paths.append(path)
            rows += len(frame)
            del frame
        return cls(paths, rows, owner=owner)

    def __len__(self) -> int:
        return self.rows

    def __repr__(self) -> str:
        return f"Parts({self.rows} rows in {len(self.paths)} files)"

    def columns(self) -> list[str]:
        """The files' column names (without :attr:`constants`)."""
        import pyarrow.parquet as pq

        return list(pq.read_schema(self.paths[0]).names) if self.paths else []

    def read(self, columns=None):
        """The whole table, or only ``columns``, as one DataFrame (its parts in order)."""
        import pandas as pd

        if not self.paths:
            return pd.DataFrame()
        return _concat([self._restored(read_frame(p, columns)) for p in self.paths])

    def pieces(self, columns=None):
        """Each file's rows (or only ``columns``) in order, as ``(first_row, DataFrame)``: the table read
        one part at a time; ``first_row`` is the part's first row in the whole table."""
        first = 0
        for path in self.paths:
            frame = self._restored(read_frame(path, columns))
            yield first, frame
            first += len(frame)

    def _restored(self, frame):
        return frame if self.restore is None else self.restore(frame)

    def __getitem__(self, column: str):
        """One column of every row, as a Series."""
        return self.read([column])[column]

    def head(self, n: int = 5):
        """The first ``n`` rows, reading as few parts (and row groups of them) as hold them."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        kept, left = [], int(n)
        for path in self.paths:
            if left <= 0:
                break
            for batch in batches(path, rows=max(left, 1)):
                kept.append(batch.slice(0, left))
                left -= len(kept[-1])
                if left <= 0:
                    break
        if not kept:  # no rows asked for (or none there): the columns only, nothing read
            return self._restored(pq.read_schema(self.paths[0]).empty_table().to_pandas()) if self.paths \
                else pd.DataFrame()
        return self._restored(pa.Table.from_batches(kept).to_pandas())
