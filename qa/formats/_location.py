"""Exports behind an fsspec URL (``s3://``, ``gs://``, ``file://``, ...): a small path-like :class:`Url`.

A :class:`Url` answers what the readers ask of a :class:`pathlib.Path` (name, suffix, parent, joining,
``exists``, ``is_file``, ``open``) through `fsspec <https://filesystem-spec.readthedocs.io>`_, so the same
reader reads a local file and an object in a bucket. It pickles as its URL: a worker opens the same URL
itself, with the credentials of its own environment (fsspec's and each backend's usual variables, for
example ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for S3, or
``GOOGLE_APPLICATION_CREDENTIALS`` for ``gs://``).

Paths named inside an export stay inside its folder here as on a disk: :func:`qa.formats._safe.resolve_inside`
joins them to the folder's URL only when they neither are absolute nor climb with ``..``, so a file name
cannot reach another bucket or prefix.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")


def is_url(value) -> bool:
    """Whether ``value`` is a URL with a scheme of two letters or more (``C:\\x`` is a path).

    Examples
    --------
    >>> is_url("s3://bucket/a.json"), is_url("exports/a.json"), is_url("C://x")
    (True, False, False)
    """
    return isinstance(value, (str, Url)) and bool(_SCHEME.match(str(value))) and len(
        _SCHEME.match(str(value)).group(1)) > 1


def location(value):
    """A :class:`Url` for a URL (or a :class:`Url`), else a :class:`pathlib.Path`."""
    from pathlib import Path

    if isinstance(value, Url):
        return value
    if is_url(value):
        return Url(str(value))
    return Path(value)


@dataclass(frozen=True)
class _Stat:
    st_size: int
    st_mtime_ns: int
    version: str


class Url:
    """An object or folder behind an fsspec URL, with the part of :class:`pathlib.Path` the readers use."""

    __slots__ = ("url", "_fs")

    def __init__(self, url: str):
        url = str(url)
        scheme, rest = url.split("://", 1)
        rest = posixpath.normpath(rest) if rest not in ("", "/") else rest
        self.url = f"{scheme}://{rest.lstrip('/') if scheme != 'file' else rest}"
        self._fs = None

    # --- what a Path is ---------------------------------------------------------------------------------

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Url({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Url) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __reduce__(self):
        return Url, (self.url,)

    def __truediv__(self, name) -> "Url":
        return Url(posixpath.join(self.url, str(name).replace("\\", "/")))

    joinpath = __truediv__

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def name(self) -> str:
        return posixpath.basename(self.url.split("://", 1)[1].rstrip("/"))

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self) -> "Url":
        scheme, rest = self.url.split("://", 1)
        return Url(f"{scheme}://{posixpath.dirname(rest.rstrip('/'))}")

    @property
    def parents(self):
        out, here = [], self.parent
        while here != here.parent:
            out.append(here)
            here = here.parent
        out.append(here)
        return out

    def with_suffix(self, suffix: str) -> "Url":
        scheme, rest = self.url.split("://", 1)
        return Url(f"{scheme}://{posixpath.splitext(rest)[0]}{suffix}")

    def is_absolute(self) -> bool:
        return True

    def resolve(self) -> "Url":
        return self

    def as_posix(self) -> str:
        return self.url

    # --- the filesystem ---------------------------------------------------------------------------------

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            self._fs = fsspec.core.url_to_fs(self.url)[0]
        return self._fs

    @property
    def fs_path(self) -> str:
        return self.fs._strip_protocol(self.url)

    def exists(self) -> bool:
        try:
            return bool(self.fs.exists(self.fs_path))
        except (OSError, ValueError):
            return False

    def is_file(self) -> bool:
        try:
            return bool(self.fs.isfile(self.fs_path))
        except (OSError, ValueError):
            return False

    def is_dir(self) -> bool:
        try:
            return bool(self.fs.isdir(self.fs_path))
        except (OSError, ValueError):
            return False

    def iterdir(self):
        for entry in sorted(self.fs.ls(self.fs_path, detail=False)):
            yield Url(f"{self.scheme}://{str(entry).lstrip('/') if self.scheme != 'file' else entry}")

    def stat(self) -> _Stat:
        """Size, modification time (ns, 0 when the store gives none) and a version tag (ETag or mtime)."""
        info = self.fs.info(self.fs_path)
        mtime = info.get("mtime") or info.get("LastModified") or info.get("updated") or 0
        if hasattr(mtime, "timestamp"):
            mtime = mtime.timestamp()
        try:
            mtime_ns = int(float(mtime) * 1e9)
        except (TypeError, ValueError):
            mtime_ns = 0
        version = str(info.get("ETag") or info.get("etag") or info.get("generation") or mtime_ns)
        return _Stat(int(info.get("size") or 0), mtime_ns, version)

    def open(self, mode: str = "rb"):
        """A seekable binary file (fsspec's, reading ranges as they are asked for)."""
        if mode != "rb":
            raise ValueError("URLs are opened for reading only")
        return self.fs.open(self.fs_path, "rb")

    def read_bytes(self) -> bytes:
        with self.open() as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)
