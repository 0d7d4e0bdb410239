"""Read annotation exports into the shared model.

``detect(path)`` names the format of a file or folder from its content; ``load(path, annotator)`` reads
it into one :class:`~qa.model.Export` per annotator found. Each format is one module exposing

- ``NAME``: the format's name as users type it (``--format coco``);
- ``sniff(path) -> bool``: whether the file or folder is in this format (cheap, never raises);
- ``read(path, *, limits, options) -> list[Export]``: the exports in it, one per annotator named inside
  the file (``annotator`` left empty when the file does not name one).

A file that cannot be read raises :class:`~qa.errors.InputError`; a bad object inside a readable file
becomes a :class:`~qa.model.Finding` on its export and loading goes on. Whatever the format, every
object then meets the same bounds (:func:`qa.formats._bounds.check_export`: vertices near the image,
RLE of the image's size, attributes of their type) before :func:`load` returns it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from qa.errors import InputError
from qa.formats._bounds import check_export
from qa.formats._location import location
from qa.model import Export, Limits

# Detection order matters: the more specific formats come first (panoptic JSON is also COCO-shaped).
_MODULES = {
    "coco_panoptic": "qa.formats.coco_panoptic",
    "coco": "qa.formats.coco",
    "cvat": "qa.formats.cvat",
    "label_studio": "qa.formats.label_studio",
    "labelme": "qa.formats.labelme",
    "binary_masks": "qa.formats.binary_masks",  # folders of PNGs only: black-and-white masks first,
    "labelmap": "qa.formats.labelmap",  # then any other PNGs
}

FORMATS = tuple(_MODULES)


def _module(name: str):
    try:
        return importlib.import_module(_MODULES[name])
    except KeyError:
        known = ", ".join(sorted(_MODULES))
        raise InputError(f"unknown format {name!r}; known formats: {known}") from None


def detect(path) -> str:
    """Name the format of an export from its content.

    Parameters
    ----------
    path : str or os.PathLike
        A file or a folder, or an fsspec URL of one (``s3://bucket/alice.json``).

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    InputError
        When the path does not exist or matches no known format.
    """
    path = location(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    for name in _MODULES:
        if _module(name).sniff(path):
            return name
    if path.is_file() and path.suffix.lower() == ".json":
        from qa.formats._json import read_json

        read_json(path)  # a JSON syntax error says more than "unknown format"
    known = ", ".join(_MODULES)
    raise InputError(f"cannot tell the export format (known: {known}); pass --input-format NAME "
                     "or set 'format' in the manifest", path=path)


def load(path, annotator: str | None = None, *, format: str | None = None,
         limits: Limits | None = None, options: dict[str, Any] | None = None,
         format_options: dict[str, dict] | None = None) -> list[Export]:
    """Read one export into one :class:`~qa.model.Export` per annotator.

    Parameters
    ----------
    path : str or os.PathLike
        The export: a file or a folder, as its format expects.
    annotator : str, optional
        The annotator's name. When the file names its annotators itself (a COCO ``annotator`` field,
        Label Studio's ``completed_by``), each becomes ``"<annotator>/<name in file>"``; when it does
        not, this name is used, or the file's stem when no name is given.
    format : str, optional
        One of :data:`FORMATS`; detected from the content when omitted.
    limits : Limits, optional
        Size bounds (100 megapixels per image by default).
    options : dict, optional
        Format-specific settings from a batch manifest (for example ``png_dir`` for COCO panoptic).
    format_options : dict, optional
        ``{format: {option: value}}``: settings for whichever format the export turns out to be (given
        or detected), over ``options`` (the command line's ``--foreground`` for binary masks).

    Returns
    -------
    list of Export
        Never empty: a readable file with no annotator names gives one export.

    Raises
    ------
    InputError
        When the file cannot be read or parsed; its message names the file.
    """
    path = location(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    name = format or detect(path)
    module = _module(name)
    options = {**(options or {}), **(format_options or {}).get(name, {})}
    exports = module.read(path, limits=limits or Limits(), options=options)
    if not exports:
        exports = [Export(annotator="", path=path, format=name)]
    for e in exports:
        check_export(e)
    return name_exports(exports, annotator, path)


def name_exports(exports: list[Export], annotator: str | None, path: Path) -> list[Export]:
    """Name each export as :func:`load` says (``annotator``, ``"<annotator>/<name in file>"`` or the
    file's stem), and its objects and findings after it."""
    default = annotator or location(path).stem
    named_inside = [e for e in exports if e.annotator]
    if not named_inside:
        for e in exports:
            e.annotator = default
    elif annotator:
        for e in exports:
            e.annotator = f"{annotator}/{e.annotator}" if e.annotator else annotator
    for e in exports:
        for obj in e.objects:
            obj.annotator = e.annotator
        for finding in e.findings:
            finding.annotator = e.annotator
    return exports
