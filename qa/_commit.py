"""A run's effects all or nothing: output files staged beside their targets, and interrupts held back
while the run is committed.

A run that fails (exit 2) must leave nothing behind: no stored run, and no report, JSON or JUnit file
that describes it. A run that is stored must have its outputs and the exit code its verdict gives.

- :class:`StagedFiles` writes each output under a temporary name in its target's folder
  (``.report.html.<random>.tmp``): the folder is proved writable, and the disk large enough, before the
  store is touched. :meth:`StagedFiles.publish` renames them into place (``os.replace``, atomic within
  a folder) right after the commit; :meth:`StagedFiles.discard` removes them when the run fails.
- :func:`interrupts_held` holds SIGINT back while the run is committed and its files published: an
  interrupt that arrives before ``COMMIT`` is raised there (the transaction is rolled back, the run is
  not stored); one that arrives after it is recorded and does not undo a finished run.

This module imports nothing from ``qa`` but :mod:`qa.errors`.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from qa.errors import ConfigError


class StagedFiles:
    """Output files written now under temporary names, moved into place by :meth:`publish`.

    Use as a context manager: leaving it with an exception discards every staged file.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with StagedFiles() as staged:
    ...     _ = staged.write(folder / "out.json", "{}")
    ...     sorted(p.name.startswith(".out.json.") for p in folder.iterdir()), (folder / "out.json").exists()
    ...     _ = staged.publish()
    ([True], False)
    >>> [p.name for p in folder.iterdir()]
    ['out.json']
    """

    def __init__(self):
        self._files: list[tuple[Path, Path]] = []
        self.published = False

    def __enter__(self) -> "StagedFiles":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.published:
            self.discard()

    def write(self, path, content: str | bytes | Callable[[Path], None]) -> Path:
        """Stage ``content`` (text as UTF-8, bytes, or a function writing the file it is given) for ``path``.

        Raises
        ------
        ConfigError
            ``path`` is a folder, or its folder cannot be made or written (one line naming it).
        """
        path = Path(path)
        if path.is_dir():
            raise ConfigError("is a folder; pass a file name", path=path)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                # created first (honouring the umask, failing if taken), then written by the function
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                self._files.append((tmp, path))
                content(tmp)
            else:
                data = content.encode("utf-8") if isinstance(content, str) else content
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                self._files.append((tmp, path))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
        except OSError as exc:
            raise ConfigError(f"cannot write: {exc.strerror or exc}", path=path) from None
        return path

    @property
    def targets(self) -> list[Path]:
        """The files :meth:`publish` puts in place, in the order they were staged."""
        return [target for _, target in self._files]

    def publish(self) -> list[Path]:
        """Move every staged file into place; return the targets."""
        for tmp, target in self._files:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise ConfigError(f"cannot move {tmp.name} into place: {exc.strerror or exc}", path=target) from None
        self.published = True
        return self.targets

    def discard(self) -> None:
        """Remove every staged file (the targets are left as they were)."""
        for tmp, _ in self._files:
            try:
                tmp.unlink()
            except OSError:
                pass
        self._files = []


class _Held:
    """The state of :func:`interrupts_held`: whether a SIGINT came while held."""

    def __init__(self):
        self.pending = False

    def __call__(self, signum, frame) -> None:
        self.pending = True

    def raise_pending(self) -> None:
        """Raise the held interrupt now (before the point of no return)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextmanager
def interrupts_held():
    """Hold SIGINT back inside the block; the caller checks ``held.pending`` (or calls
    ``held.raise_pending()``) where an interrupt may still stop the work.

    Only the main thread receives signals; elsewhere the block runs as it is. The previous handler is
    restored on the way out, and a held interrupt is not raised again.
    """
    held = _Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.signal(signal.SIGINT, held)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
