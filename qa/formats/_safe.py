"""Keep paths from exports inside their folder and image sizes within bounds.

Every file name an export mentions goes through :func:`normalise_name` (to pair images) and, before
anything on disk is opened, through :func:`resolve_inside`.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from qa.errors import InputError
from qa.model import Limits


def normalise_name(name: str) -> str:
    """Normalise an image file name into the key used to pair images across exports.

    Unicode is NFC-normalised, backslashes become slashes, ``./`` prefixes and repeated slashes go.
    The result is not checked for safety: see :func:`unsafe_reason`.

    Examples
    --------
    >>> normalise_name(".\\\\images\\\\a.jpg")
    'images/a.jpg'
    >>> normalise_name("images//./b.png")
    'images/b.png'
    """
    text = unicodedata.normalize("NFC", str(name)).replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    prefix = "/" if text.startswith("/") else ""
    return prefix + "/".join(parts)


def unsafe_reason(name: str) -> str | None:
    """Why a file name from an export may not be used, or None when it is safe.

    A name is unsafe when it is absolute (``/etc/passwd``, ``C:\\x``, ``\\\\server\\share``) or when a
    ``..`` part would climb out of the export's folder.

    Examples
    --------
    >>> unsafe_reason("a/b.jpg") is None
    True
    >>> unsafe_reason("../secret.png")
    "file name '../secret.png' climbs out of the export's folder with '..'"
    """
    raw = str(name)
    if raw == "" or raw.strip() == "":
        return "empty file name"
    if "\x00" in raw:
        return f"file name {raw!r} contains a NUL byte"
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).is_absolute() or PureWindowsPath(raw).drive:
        return f"file name {raw!r} is an absolute path"
    if ".." in raw.replace("\\", "/").split("/"):
        return f"file name {raw!r} climbs out of the export's folder with '..'"
    return None


def resolve_inside(root: Path, name: str) -> Path | None:
    """The path of ``name`` under ``root``, or None when it would leave ``root``.

    Symbolic links are resolved before the check, so a link pointing outside is refused too. Under a
    URL (:class:`qa.formats._location.Url`) the name is joined to it, and only when it is safe.
    """
    if unsafe_reason(name) is not None:
        return None
    from qa.formats._location import Url

    if isinstance(root, Url):
        candidate = root / normalise_name(name)
        prefix = root.url.rstrip("/") + "/"
        return candidate if candidate.url.startswith(prefix) else None
    base = Path(root).resolve()
    candidate = (base / normalise_name(name)).resolve()
    if candidate != base and base not in candidate.parents:
        return None
    return candidate


def size_problem(width, height, limits: Limits) -> str | None:
    """Why a declared image size is unacceptable, or None.

    Examples
    --------
    >>> size_problem(640, 480, Limits()) is None
    True
    >>> size_problem(20000, 20000, Limits())
    'image size 20000x20000 (400000000 pixels) exceeds the limit of 100000000 pixels; raise it with --max-pixels or max_pixels in the manifest'
    """
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                continue
            return f"{label} {value!r} is not an integer"
        if value <= 0:
            return f"{label} {value} is not positive"
    pixels = int(width) * int(height)
    if pixels > limits.max_pixels:
        return (
            f"image size {int(width)}x{int(height)} ({pixels} pixels) exceeds the limit of "
            f"{limits.max_pixels} pixels; raise it with --max-pixels or max_pixels in the manifest"
        )
    return None


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def open_regular(path):
    """Open a regular file for reading bytes; anything else (a named pipe, a device, a socket, a folder)
    is refused without blocking.

    The file is opened non-blocking, so a named pipe with no writer does not hang the run, and its type
    is checked on the open descriptor, so the check and the read see the same file.

    Raises
    ------
    InputError
        ``file not found``, ``cannot open: ...``, or ``not a regular file (a named pipe); only regular
        files are read``.
    """
    from qa.formats._location import Url

    if isinstance(path, Url):  # an object behind an fsspec URL: a seekable file fsspec reads in ranges
        try:
            if not path.is_file():
                raise InputError("file not found" if not path.exists() else "not a file", path=path)
            return path.open()
        except InputError:
            raise
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot open: {exc}", path=path) from None
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "a special file")
            raise InputError(f"not a regular file ({kind}); only regular files are read", path=path)
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_regular(path) -> bool:
    """Whether ``path`` is a regular file (following symbolic links), without opening it."""
    from qa.formats._location import Url

    if isinstance(path, Url):
        return path.is_file()
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's header, read without decoding anything.

    Raises
    ------
    InputError
        When the file cannot be opened or does not start with a PNG signature and IHDR chunk.
    """
    try:
        with open_regular(path) as fh:
            head = fh.read(24)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise InputError("not a PNG file: no PNG signature and IHDR header", path=path)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def open_image_unguarded(path, formats=None):
    """``PIL.Image.open`` with Pillow's decompression-bomb guard off: the caller bounds the size itself,
    from the header (``image.size``), before anything is decoded.

    Pillow warns above 89 megapixels and raises above 179, whatever limit the run was given; ours
    (``Limits.max_pixels``, ``--max-pixels``) is the one that applies.
    """
    import warnings

    from PIL import Image as PILImage

    from qa.formats._location import Url

    saved = PILImage.MAX_IMAGE_PIXELS
    try:
        PILImage.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            return PILImage.open(open_regular(path) if isinstance(path, Url) else path, formats=formats)
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


def open_png_checked(path: Path, limits: Limits):
    """Open a PNG with Pillow after checking its header size against ``limits``.

    Returns the opened (not yet decoded) ``PIL.Image.Image``. Raises :class:`InputError` when the file
    is not a PNG, cannot be opened or is larger than the limit, so callers can turn it into a finding.
    Pillow's own decompression-bomb guard is replaced by ``limits`` (checked from the header before
    Pillow sees the file).
    """
    width, height = png_size(path)
    if width * height > limits.max_pixels:
        raise InputError(
            f"image size {width}x{height} ({width * height} pixels) exceeds the limit of {limits.max_pixels} "
            "pixels; raise it with --max-pixels or max_pixels in the manifest",
            path=path,
        )
    try:
        image = open_image_unguarded(path, formats=["PNG"])  # the bound above applies instead
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image: {exc}", path=path) from None
    if image.size != (width, height):
        image.close()
        raise InputError(f"PNG header says {width}x{height} but Pillow reads {image.size[0]}x{image.size[1]}",
                         path=path)
    return image
