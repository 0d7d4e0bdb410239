"""Error classes and exit codes.

Library code raises these; only :func:`qa.cli.main` catches them, prints one line and returns
:data:`EXIT_ERROR`. ``str(err)`` is always a single line of the form
``<file>: <where>: <what is wrong>[; <what to do>]``.
"""

from __future__ import annotations

EXIT_OK = 0
"""The gate passed, or there was no gate."""
EXIT_GATE_FAILED = 1
"""The run finished and the gate failed."""
EXIT_ERROR = 2
"""The run could not finish: bad input, bad configuration or an internal error."""


class QAError(Exception):
    """Root of every error this package raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong, and what to do where there is a fix.
    path : str or os.PathLike, optional
        The file concerned.
    index : int, optional
        Position of the offending object inside the file (for example ``annotations[17]``).
    id : int or str, optional
        The offending object's own id.
    where : str, optional
        Overrides the location text built from ``index`` and ``id`` (for example ``images[3]``).
    """

    def __init__(self, message, *, path=None, index=None, id=None, where=None):
        self.message = " ".join(str(message).split())  # one line, always
        self.path = None if path is None else str(path)
        self.index = index
        self.id = id
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        where = self.where
        if where is None and (self.index is not None or self.id is not None):
            where = " ".join(
                p for p in (
                    f"[{self.index}]" if self.index is not None else "",
                    f"id={self.id}" if self.id is not None else "",
                ) if p
            )
        if where:
            parts.append(where)
        parts.append(self.message)
        return ": ".join(parts)


class InputError(QAError):
    """A file cannot be read or parsed (invalid JSON, missing file, unknown format)."""


class ConfigError(QAError):
    """A bad rule pack, manifest, threshold or option value."""


class StoreError(QAError):
    """The run store is locked, unreadable or not a store of this tool."""


class WorkerError(QAError):
    """Work sent to worker processes or a cluster was lost (a worker died, the scheduler went away) and
    could not be retried; the run stops and nothing is stored."""
