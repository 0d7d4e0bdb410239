"""What a submitted batch may be: checks on uploaded zips and on manifests named by path.

A batch reaches the service in one of two ways, and each is checked like any input before a job is queued:

- **A manifest path** (``{"manifest": "/data/b7/batch.toml"}``): the manifest, every export it names and
  every ``*_dir`` / ``*_file`` option must lie under one of the server's roots (``qa serve --root``),
  after symbolic links are resolved. A server without roots accepts no manifest path.
- **A zip of exports** (the request body, ``Content-Type: application/zip``): at most
  :attr:`Limits.upload_bytes` received (the body is counted as it streams, never trusted from
  ``Content-Length``), at most :attr:`Limits.entries` entries, no absolute path, no ``..``, no symbolic
  link, no entry unpacking to more than :attr:`Limits.ratio` times its compressed size and no more than
  :attr:`Limits.unpacked_bytes` in all (counted while unpacking, so a lying header changes nothing). The
  zip holds a manifest (``batch.toml``, or the only ``*.toml``) at its top or in its only folder, or else
  one export per top-level file or folder (the annotator named after it, as ``qa run PATH`` names it).
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qa.errors import QAError


class UploadError(QAError):
    """A submission that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400, **kw):
        super().__init__(message, **kw)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Bounds on one uploaded zip (defaults suit batches of a few thousand images' labels)."""

    upload_bytes: int = 512 * 2**20
    """Largest request body, bytes (512 MiB)."""
    unpacked_bytes: int = 2 * 2**30
    """Most bytes all entries may unpack to (2 GiB)."""
    entries: int = 20_000
    """Most entries (files and folders) in the zip."""
    ratio: int = 200
    """Largest unpacked / compressed size of one entry (a decompression bomb has thousands)."""


MANIFEST_NAME = "batch.toml"


def inside(path, roots) -> bool:
    """Whether ``path``, symbolic links resolved, lies in one of ``roots`` (also resolved).

    Examples
    --------
    >>> inside("/data/b7/../b7/x.json", ["/data"]), inside("/data/../etc/passwd", ["/data"])
    (True, False)
    >>> inside("s3://bucket/x.json", ["/data"])  # a URL (qa run reads fsspec URLs) is under no root
    False
    """
    from qa.formats._location import is_url

    if is_url(path):
        return False
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return False
    for root in roots:
        base = Path(os.path.realpath(root))
        if real == base or base in real.parents:
            return True
    return False


def check_manifest(path, roots) -> Path:
    """The manifest at ``path`` once it and every path it names lie under ``roots``.

    Returns
    -------
    Path
        The manifest, resolved.

    Raises
    ------
    UploadError
        No roots are configured (403), or a path lies outside them (403); the manifest cannot be read (400).
    """
    from qa.manifest import read_manifest

    if not roots:
        raise UploadError("this server reads no manifest paths: start qa serve with --root DIR (the folders "
                          "batches may be read from), or upload the exports as a zip", status=403)
    text = str(path)
    if not text or "\x00" in text or not os.path.isabs(text):
        raise UploadError("the manifest must be an absolute path on the server", status=400)
    if not inside(text, roots):
        raise UploadError(f"{text}: outside the server's roots; manifests must lie under "
                          f"{', '.join(str(r) for r in roots)}", status=403)
    resolved = Path(os.path.realpath(text))
    if not resolved.is_file():
        raise UploadError(f"{text}: no such manifest on the server", status=400)
    try:
        manifest = read_manifest(resolved)
    except QAError as exc:
        raise UploadError(str(exc), status=400) from None
    for index, spec in enumerate(manifest.exports):
        named = [("path", spec.path)] + [(f"options.{k}", v) for k, v in spec.options.items()
                                         if k.endswith(("_dir", "_file")) and isinstance(v, str)]
        for key, value in named:
            if not inside(value, roots):
                raise UploadError(f"{resolved}: exports[{index}].{key}: {value} lies outside the server's roots",
                                  status=403)
    return resolved


async def receive(request, target: Path, limits: Limits) -> int:
    """Stream a request body into ``target``, refusing it (413) past ``limits.upload_bytes``; return its size."""
    size = 0
    with open(target, "wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.upload_bytes:
                out.close()
                target.unlink(missing_ok=True)
                raise UploadError(f"the upload is larger than {limits.upload_bytes:,} bytes (the server's "
                                  "--max-upload)", status=413)
            out.write(chunk)
    if size == 0:
        target.unlink(missing_ok=True)
        raise UploadError("the request has no body: send the zip as the body (Content-Type: application/zip)")
    return size


def _entry_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The entry's path inside the target folder, refusing anything that could leave it."""
    name = info.filename
    if "\x00" in name or "\\" in name:
        raise UploadError(f"zip entry {name!r}: a name with a backslash or NUL is refused")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UploadError(f"zip entry {name!r}: an absolute path is refused")
    if ".." in path.parts:
        raise UploadError(f"zip entry {name!r}: a path with '..' would leave the upload's folder")
    if not path.parts or path.parts == (".",):
        raise UploadError(f"zip entry {name!r}: an empty name")
    return path


def check_zip(path: Path, limits: Limits) -> list[zipfile.ZipInfo]:
    """The zip's entries, once every entry passes the checks in the module's notes.

    Raises
    ------
    UploadError
        Not a zip, too many entries, an unsafe name, a symbolic link, an encrypted entry, a compression
        ratio above ``limits.ratio`` or more than ``limits.unpacked_bytes`` declared.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UploadError(f"the upload is not a zip file ({exc})") from None
    with archive:
        infos = archive.infolist()
    if len(infos) > limits.entries:
        raise UploadError(f"the zip has {len(infos):,} entries, more than {limits.entries:,}", status=413)
    total = 0
    for info in infos:
        _entry_path(info)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadError(f"zip entry {info.filename!r}: a symbolic link is refused")
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
            raise UploadError(f"zip entry {info.filename!r}: only files and folders are accepted")
        if info.flag_bits & 0x1:
            raise UploadError(f"zip entry {info.filename!r}: encrypted entries are refused")
        if info.file_size > limits.ratio * max(info.compress_size, 1) and info.file_size > 2**20:
            raise UploadError(f"zip entry {info.filename!r}: unpacks {info.file_size:,} bytes from "
                              f"{info.compress_size:,} (more than {limits.ratio}:1; a decompression bomb?)",
                              status=413)
        total += info.file_size
        if total > limits.unpacked_bytes:
            raise UploadError(f"the zip unpacks to more than {limits.unpacked_bytes:,} bytes", status=413)
    return infos


def extract(path: Path, folder: Path, limits: Limits) -> Path:
    """Unpack a checked zip into ``folder`` (created), counting bytes as they are written; return it.

    Entries are written one by one through :func:`check_zip`'s names, never with ``extractall``, and
    the bytes written are counted against the entry's declared size and ``limits.unpacked_bytes``: a
    header that under-declares a size stops the unpacking there.
    """
    infos = check_zip(path, limits)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder.resolve()
    written = 0
    with zipfile.ZipFile(path) as archive:
        for info in infos:
            relative = _entry_path(info)
            target = base.joinpath(*relative.parts)
            if base not in target.parents:
                raise UploadError(f"zip entry {info.filename!r}: would leave the upload's folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent.resolve() != target.parent or target.exists():
                raise UploadError(f"zip entry {info.filename!r}: written twice or through a link")
            count = 0
            with archive.open(info) as source, open(target, "xb") as out:
                while True:
                    chunk = source.read(1 << 20)
                    if not chunk:
                        break
                    count += len(chunk)
                    written += len(chunk)
                    if count > info.file_size or written > limits.unpacked_bytes:
                        raise UploadError(f"zip entry {info.filename!r}: unpacks to more than it declares",
                                          status=413)
                    out.write(chunk)
    return folder


def batch_of(folder: Path) -> dict:
    """How to run an unpacked upload: ``{"manifest": path}`` or ``{"exports": [path, ...]}``.

    A manifest (``batch.toml``, or the only ``*.toml``) at the top or in the only top-level folder is
    used as it is, and every path it names must lie inside the upload. Without one, each top-level file
    or folder (hidden ones and ``__MACOSX`` left out) is one annotator's export.

    Raises
    ------
    UploadError
        The zip is empty, or its manifest names a path outside the upload.
    """
    top = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and p.name != "__MACOSX"]
    dirs = [p for p in top if p.is_dir()]
    base = dirs[0] if len(top) == 1 and dirs else folder
    tomls = sorted(base.glob("*.toml"))
    manifest = base / MANIFEST_NAME if (base / MANIFEST_NAME).is_file() else (tomls[0] if len(tomls) == 1 else None)
    if manifest is not None:
        check_manifest(manifest, [folder])
        return {"manifest": str(manifest)}
    exports = [p for p in sorted(base.iterdir()) if not p.name.startswith(".") and p.name != "__MACOSX"]
    if not exports:
        raise UploadError("the zip holds no export and no manifest")
    return {"exports": [str(p) for p in exports]}


def remove(folder: Path) -> None:
    """Delete an upload's folder (a failed or cancelled job's; a stored run keeps its inputs for
    ``qa report RUN``'s pictures)."""
    shutil.rmtree(folder, ignore_errors=True)
