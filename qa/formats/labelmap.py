"""Semantic label maps: a folder of PNGs per annotator, one PNG per image, a class per pixel.

Three encodings are read, each file by its own PNG colour type:

- **id**: single-channel PNGs (8 or 16 bit) whose pixel value is the class id (Cityscapes ``labelIds``);
- **palette**: palette PNGs whose palette index is the class id (Pascal VOC ``SegmentationClass``); when the
  class table gives colours only, the palette colour is looked up instead;
- **rgb**: colour maps (RGB or RGBA) whose colour names the class through the class table (ADE20K-style
  colour maps, Cityscapes ``_color``). Fully transparent pixels are unlabelled.

The class table comes from the batch manifest (a top-level ``[[classes]]`` array, or ``classes`` in an
export's ``options``); see :func:`parse_classes`. Without one, classes are named by their id (``"7"``) or
their colour (``"#804080"``).

Layout: a folder holding PNGs is one annotator's export; a folder holding only sub-folders of PNGs is one
export per sub-folder, named after it. Images pair across annotators by file stem, case-insensitively
(``Seg_B18.png`` and ``seg_B18.png`` are one image); two files of one annotator whose stems differ only
in case are a name collision (``FMT005``) and the first in sorted order is kept.

How a label map enters the model
--------------------------------
Each image becomes one object of kind ``"rle"`` per class present: the class's pixels as COCO RLE, with
``area`` the exact pixel count and ``bbox`` the tight box. The PNG is decoded once, at load, and never
again: RLE is what every later stage reads (:func:`qa.decode`, the engine's crop kernels), so no stage needs
to know where the pixels came from, and the classes of one image, being disjoint, rebuild the label map
exactly when a stage wants it whole (the semantic comparison does). Keeping the PNG as a panoptic-style id
map instead (``"segment"`` objects) would need a second decode at comparison time, plus a format-specific
decoding rule at every place that reads id maps. RLE is compact for label maps (its size grows with the
boundary length, not the area), comparable to the PNG itself.

Void (ignore) classes become objects too, with ``iscrowd=True`` and ``attributes["void"] = True``: they are
regions the annotator chose not to label, which the comparison ignores on both sides, as COCO ignores
crowd regions.

Options (per export, ``[exports.options]`` in the manifest)
-----------------------------------------------------------
``classes``
    The class table (list of tables, as the manifest's ``[[classes]]``); the manifest's top-level table
    is used when this is absent.
``bit_depth`` : 8 or 16
    The depth every PNG must have; a file of the other depth is reported (``FMT020``) and left out.
    When absent, the depth most files of the export have is expected.
``void_ids`` : list of int
    Ids to treat as void when there is no class table (with a table, mark classes ``void = true``).
``glob`` : str, default ``"*.png"`` (any case)
    Which files of the folder to read, relative to it (``"**/*_labelIds.png"`` for Cityscapes).
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.errors import ConfigError, InputError
from qa.formats._findings import finding
from qa.formats._safe import is_regular, open_png_checked, open_regular, resolve_inside
from qa.model import Category, Export, Image, Limits, Object, Source

NAME = "labelmap"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grey", 2: "rgb", 3: "palette", 4: "grey_alpha", 6: "rgba"}
_TRANSPARENT = np.uint32(1 << 24)  # above every 24-bit colour: marks fully transparent pixels
_CLASS_KEYS = {"id", "name", "colour", "color", "isthing", "void"}
OPTIONS = {"classes", "bit_depth", "void_ids", "glob"}


# --- class table --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ClassEntry:
    """One row of a class table: an id and/or a colour naming a class."""

    name: str
    id: int | None = None
    colour: tuple[int, int, int] | None = None
    isthing: bool = False
    void: bool = False


@dataclass(slots=True)
class ClassTable:
    """A class table: which id or colour is which class, whether it is a thing, which are void.

    Several ids or colours may name one class (their pixels form one object per image).
    """

    entries: list[ClassEntry]
    by_id: dict[int, str] = field(default_factory=dict)
    by_colour: dict[int, str] = field(default_factory=dict)  # packed 0xRRGGBB -> name
    categories: dict[str, Category] = field(default_factory=dict)
    void: set[str] = field(default_factory=set)

    @property
    def has_ids(self) -> bool:
        return bool(self.by_id)

    @property
    def has_colours(self) -> bool:
        return bool(self.by_colour)


def _parse_colour(value) -> tuple[int, int, int] | None:
    if isinstance(value, str):
        m = re.fullmatch(r"#?([0-9a-fA-F]{6})", value.strip())
        if not m:
            return None
        n = int(m.group(1), 16)
        return (n >> 16) & 255, (n >> 8) & 255, n & 255
    if isinstance(value, list) and len(value) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
        return tuple(value)
    return None


def colour_hex(packed: int) -> str:
    """``0xRRGGBB`` as ``"#rrggbb"``.

    Examples
    --------
    >>> colour_hex(0x804080)
    '#804080'
    """
    return f"#{int(packed):06x}"


def parse_classes(raw, *, path=None, where: str = "classes") -> ClassTable:
    """Read a class table from a manifest's ``[[classes]]`` array (or an export's ``options.classes``).

    Parameters
    ----------
    raw : list of dict
        One table per id or colour: ``id`` (int, 0-65535) and/or ``colour`` (``[r, g, b]`` or
        ``"#rrggbb"``; ``color`` is accepted too), ``name`` (str; ``"void"`` by default for void
        entries), ``isthing`` (bool, default false: semantic classes are stuff unless said otherwise),
        ``void`` (bool, default false: pixels to ignore, as Cityscapes' ``unlabeled`` or VOC's 255).
    path : str or os.PathLike, optional
        The file the table came from, for error messages.
    where : str, default "classes"
        The table's place in that file, for error messages.

    Returns
    -------
    ClassTable

    Raises
    ------
    ConfigError
        On an unknown key, a bad value, an entry with neither id nor colour, an id or colour given
        twice, or one name given as both a thing and a stuff class. The message names the entry.

    Examples
    --------
    >>> table = parse_classes([{"id": 7, "name": "road", "colour": "#804080"},
    ...                        {"id": 0, "void": True}])
    >>> table.by_id, sorted(table.void)
    ({7: 'road', 0: 'void'}, ['void'])
    """
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where!r} must be a non-empty array of tables ([[classes]])", path=path)
    table = ClassTable(entries=[])
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"a class must be a table, got {type(item).__name__}", path=path, where=at)
        unknown = sorted(set(item) - _CLASS_KEYS)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}; known keys: id, name, colour, isthing, void",
                              path=path, where=at)
        if "colour" in item and "color" in item:
            raise ConfigError("give 'colour' or 'color', not both", path=path, where=at)
        void = item.get("void", False)
        isthing = item.get("isthing", False)
        for key, value in (("void", void), ("isthing", isthing)):
            if not isinstance(value, bool):
                raise ConfigError(f"{key!r} must be true or false", path=path, where=at)
        class_id = item.get("id")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, int)
                                     or not 0 <= class_id <= 65535):
            raise ConfigError(f"'id' must be an integer from 0 to 65535, got {class_id!r}", path=path, where=at)
        raw_colour = item.get("colour", item.get("color"))
        colour = None
        if raw_colour is not None:
            colour = _parse_colour(raw_colour)
            if colour is None:
                raise ConfigError(f"colour {raw_colour!r} is not [r, g, b] (0-255) or '#rrggbb'",
                                  path=path, where=at)
        if class_id is None and colour is None:
            raise ConfigError("a class needs an 'id' or a 'colour'", path=path, where=at)
        name = item.get("name", "void" if void else None)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("a class needs a non-empty string 'name'", path=path, where=at)
        name = name.strip()
        if class_id is not None:
            if class_id in table.by_id:
                raise ConfigError(f"id {class_id} is given twice (first as {table.by_id[class_id]!r})",
                                  path=path, where=at)
            table.by_id[class_id] = name
        if colour is not None:
            packed = (colour[0] << 16) | (colour[1] << 8) | colour[2]
            if packed in table.by_colour:
                raise ConfigError(f"colour {colour_hex(packed)} is given twice (first as "
                                  f"{table.by_colour[packed]!r})", path=path, where=at)
            table.by_colour[packed] = name
        known = table.categories.get(name)
        if known is not None and (known.isthing != isthing or (name in table.void) != void):
            raise ConfigError(f"class {name!r} is given twice with different 'isthing' or 'void'",
                              path=path, where=at)
        table.categories.setdefault(name, Category(name=name, isthing=isthing and not void))
        if void:
            table.void.add(name)
        table.entries.append(ClassEntry(name=name, id=class_id, colour=colour, isthing=isthing, void=void))
    return table


# --- folders and PNG files (shared with binary_masks) ------------------------------------------------

def png_header(path: Path) -> tuple[int, int, int, str]:
    """``(width, height, bit depth, colour type)`` from a PNG's IHDR chunk, without decoding it.

    Raises :class:`~qa.errors.InputError` when the file cannot be read or is not a PNG.
    """
    try:
        with open_regular(path) as fh:
            head = fh.read(33)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR" or len(head) < 29:
        raise InputError("not a PNG file: no PNG signature and IHDR header", path=path)
    width, height, depth, colour_type = struct.unpack(">IIBB", head[16:26])
    kind = _COLOUR_TYPES.get(colour_type)
    if kind is None or depth not in (1, 2, 4, 8, 16):
        raise InputError(f"PNG header is corrupt (bit depth {depth}, colour type {colour_type})", path=path)
    return width, height, depth, kind


def decode_png(path: Path, limits: Limits, mode: str | None = None) -> np.ndarray:
    """Decode a PNG to a numpy array (optionally converted to a Pillow ``mode`` first).

    Raises :class:`~qa.errors.InputError` with one line naming the file when it cannot be opened or
    decoded, or is larger than ``limits``.
    """
    image = open_png_checked(path, limits)
    with image:
        if image.format != "PNG":
            raise InputError(f"not a PNG file (Pillow reads it as {image.format})", path=path)
        try:
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.asarray(image)
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"cannot decode PNG: {exc}", path=path) from None


def annotator_folders(path: Path, glob: str | None = None) -> list[tuple[str, Path]]:
    """The annotators in a folder: ``[("", path)]`` when it holds PNGs itself, else one per sub-folder
    holding PNGs (named after the sub-folder), else an empty list."""
    from qa.formats._location import Url, location

    path = location(path)
    if isinstance(path, Url) or not path.is_dir():
        return []  # folders of PNGs are read from a filesystem path
    if _has_pngs(path, glob):
        return [("", path)]
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [(p.name, p) for p in subs if _has_pngs(p, glob)]


def _is_png_name(p: Path) -> bool:
    return p.suffix.lower() == ".png" and not p.name.startswith(".")


def _has_pngs(folder: Path, glob: str | None) -> bool:
    try:
        candidates = folder.glob(glob) if glob else folder.iterdir()
        return any(p.is_file() and _is_png_name(p) for p in candidates)
    except OSError:
        return False


def list_pngs(folder: Path, glob: str | None, *, special: list | None = None) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of each PNG in ``folder`` (non-recursive unless ``glob`` says so),
    sorted by relative name. Only regular files (or links to them) are listed: a named pipe, socket or
    device with a PNG's name would block or never end when read; those go to ``special`` when given."""
    candidates = folder.glob(glob) if glob else folder.iterdir()
    out = []
    for p in candidates:
        if not _is_png_name(p) or p.is_dir():
            continue
        if is_regular(p):
            out.append((p.relative_to(folder).as_posix(), p))
        elif special is not None and (p.exists() or p.is_symlink()):
            special.append((p.relative_to(folder).as_posix(), p))
    return sorted(out)


def pair_files(folder: Path, glob: str | None, findings: list, key_of=None) -> dict:
    """Group a folder's PNGs by image key (the stem, case-folded; or ``key_of(stem)``).

    ``key_of(stem)`` returns a hashable key, or None to skip the file. Files whose path resolves outside
    the folder are reported (``FMT007``); two files with one key are reported (``FMT005``) and the first
    in sorted order is kept; a PNG name that is not a regular file (a named pipe) is reported (``FMT009``
    warning) and never opened. Returns ``{key: (relative name, path)}`` in sorted order.
    """
    key_of = key_of or (lambda stem: stem.casefold())
    chosen: dict = {}
    special: list = []
    files = list_pngs(folder, glob, special=special)
    for rel, p in sorted(special):
        what = "a broken link" if not p.exists() else "not a regular file (a named pipe, socket or device)"
        findings.append(finding("FMT015", f"{rel} is {what}; left out", Source(str(p))))
    for rel, p in files:
        if resolve_inside(folder, rel) is None:
            findings.append(finding("FMT007", f"{rel} resolves outside the export's folder; left out",
                                    Source(str(p))))
            continue
        key = key_of(Path(rel).stem)
        if key is None:
            continue
        if key in chosen:
            first = chosen[key][0]
            findings.append(finding("FMT005", f"{rel} and {first} name the same image (names are paired "
                                              f"case-insensitively by stem); {first} is kept",
                                    Source(str(p)), image=_key_image(key)))
            continue
        chosen[key] = (rel, p)
    return chosen


def _key_image(key) -> str:
    return key[0] if isinstance(key, tuple) else key


def depth_class(depth: int) -> int:
    """8 for PNGs of 1 to 8 bits per sample, 16 for 16-bit ones."""
    return 16 if depth == 16 else 8


def expected_depth(headers: dict, option, path: Path) -> int:
    """The bit depth an export's PNGs should have: the ``bit_depth`` option, else the most common one."""
    if option is not None:
        if option not in (8, 16) or isinstance(option, bool):
            raise ConfigError(f"option 'bit_depth' must be 8 or 16, got {option!r}", path=path)
        return option
    counts = Counter(depth_class(h[2]) for h in headers.values())
    return max(sorted(counts), key=lambda d: counts[d]) if counts else 8


def check_options(options: dict, known: set, fmt: str, path: Path) -> None:
    """Raise ConfigError on an option this format does not know."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} for format {fmt}; known options: "
                          f"{', '.join(sorted(known))}", path=path)


def string_option(options: dict, key: str, default, path: Path):
    value = options.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"option {key!r} must be a string, got {value!r}", path=path)
    return value


def mask_rle(mask_f: np.ndarray) -> dict:
    """Compressed COCO RLE of a Fortran-ordered boolean or uint8 ``(height, width)`` mask."""
    from pycocotools import mask as mask_utils

    if mask_f.dtype == np.bool_:
        mask_f = mask_f.view(np.uint8)
    return mask_utils.encode(np.asfortranarray(mask_f))


def rle_bbox(rle: dict) -> tuple[float, float, float, float]:
    from pycocotools import mask as mask_utils

    return tuple(float(v) for v in mask_utils.toBbox(rle))


# --- sniffing ----------------------------------------------------------------------------------------

_ANNOTATION_SUFFIXES = {".json", ".xml"}


def sample_files(path: Path, n: int = 3) -> list[Path]:
    """Up to ``n`` PNGs of the first annotator folder under ``path`` (for sniffing).

    Empty when the folder also holds JSON or XML files: PNGs next to annotation files are the images
    of another format (LabelMe, CVAT), not label maps.
    """
    folders = annotator_folders(path)
    if not folders:
        return []
    try:
        if any(p.suffix.lower() in _ANNOTATION_SUFFIXES for p in folders[0][1].iterdir()):
            return []
    except OSError:
        return []
    return [p for _, p in list_pngs(folders[0][1], None)[:n]]


def sniff(path: Path) -> bool:
    """A folder (or folder of folders) of PNGs that are not black-and-white masks."""
    from qa.formats.binary_masks import looks_binary

    files = sample_files(path)
    return bool(files) and not looks_binary(files)


# --- reading -----------------------------------------------------------------------------------------

def read(path: Path, *, limits: Limits, options: dict) -> list[Export]:
    """Read a folder of label maps (or a folder of such folders) into one export per annotator.

    Parameters
    ----------
    path : pathlib.Path
        The folder.
    limits : Limits
        Size bounds; a PNG above ``limits.max_pixels`` raises InputError.
    options : dict
        See the module docstring; unknown keys raise ConfigError.

    Returns
    -------
    list of Export
        ``annotator`` is empty for a single folder and the sub-folder's name otherwise.

    Raises
    ------
    InputError
        When the folder has no PNGs, or a PNG cannot be read or decoded (one line naming the file).
    ConfigError
        On an unknown option or a bad class table.
    """
    from qa.formats._location import location

    path = location(path)
    check_options(options, OPTIONS, NAME, path)
    table = None
    if options.get("classes") is not None:
        table = parse_classes(options["classes"], path=path, where="options.classes")
    void_ids = options.get("void_ids", [])
    if not isinstance(void_ids, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in void_ids):
        raise ConfigError("option 'void_ids' must be a list of integers from 0 to 65535", path=path)
    if void_ids and table is not None:
        raise ConfigError("option 'void_ids' is for exports without a class table; mark the classes "
                          "'void = true' instead", path=path)
    glob = string_option(options, "glob", None, path)
    folders = annotator_folders(path, glob)
    if not folders:
        raise InputError("no PNG files here or in its sub-folders; is this a folder of label maps?", path=path)
    return [_read_folder(name, folder, table, set(void_ids), glob, options.get("bit_depth"), limits)
            for name, folder in folders]


def _read_folder(annotator, folder, table, void_ids, glob, bit_depth, limits) -> Export:
    export = Export(annotator=annotator, path=folder, format=NAME)
    files = pair_files(folder, glob, export.findings)
    headers = {key: png_header(p) for key, (_rel, p) in files.items()}
    depth = expected_depth(headers, bit_depth, folder)
    if table is not None:
        export.categories = dict(table.categories)
    for key, (rel, png) in files.items():
        width, height, file_depth, kind = headers[key]
        src = Source(str(png))
        if depth_class(file_depth) != depth:
            export.findings.append(finding(
                "FMT020", f"{file_depth}-bit PNG where the export's label maps are {depth}-bit; "
                          "ids cannot be trusted, image left out (set option bit_depth to choose)",
                src, image=key))
            continue
        decoded = _decode_classes(png, kind, file_depth, table, void_ids, limits, export.findings, key)
        if decoded is None:
            continue
        image = Image(key=key, file_name=rel, width=width, height=height, source=src)
        export.images[key] = image
        for name, class_value, mask_f, area in decoded:
            rle = mask_rle(mask_f)
            is_void = name in (table.void if table is not None else set()) or (
                table is None and class_value in void_ids)
            if name not in export.categories:
                export.categories[name] = Category(name=name, isthing=False)
            export.objects.append(Object(
                annotator="", image=key, category=name, kind="rle", rle=rle, iscrowd=is_void,
                source=Source(str(png), None, class_value, "classes"), bbox=rle_bbox(rle), area=float(area),
                attributes={"void": True} if is_void else {},
            ))
    return export


def _decode_classes(png, kind, file_depth, table, void_ids, limits, findings, key):
    """``[(class name, id or colour, Fortran mask, area)]`` for one label map, or None when it is left out."""
    src = Source(str(png))
    if file_depth == 16 and kind not in ("grey", "grey_alpha"):
        findings.append(finding("FMT020", f"16-bit {kind} PNGs are not supported as label maps; image left out",
                                src, image=key))
        return None
    use_colours = kind in ("rgb", "rgba") or (kind == "palette" and table is not None and not table.has_ids)
    if use_colours:
        if table is not None and not table.has_colours:
            findings.append(finding("FMT020", f"{kind} PNG but the class table gives ids only; give the classes "
                                              "a 'colour', image left out", src, image=key))
            return None
        arr = decode_png(png, limits, "RGBA")
        return _classes_from_colours(arr, table, findings, src, key)
    if table is not None and not table.has_ids:
        findings.append(finding("FMT020", f"{kind} PNG but the class table gives colours only; give the classes "
                                          "an 'id', image left out", src, image=key))
        return None
    if kind == "palette":
        arr = decode_png(png, limits, "P")
    elif file_depth == 16:
        arr = decode_png(png, limits)  # Pillow reads 16-bit grey as I;16 (uint16); grey+alpha is not expected
        if arr.dtype != np.uint16:
            findings.append(finding("FMT020", "16-bit grey PNG with alpha is not supported; image left out",
                                    src, image=key))
            return None
    else:
        arr = decode_png(png, limits, "L")
    return _classes_from_ids(arr, table, void_ids, findings, src, key)


def _classes_from_ids(ids, table, void_ids, findings, src, key):
    ids_f = np.asfortranarray(ids)
    counts = np.bincount(ids_f.ravel(order="K"))
    present = np.flatnonzero(counts)
    groups: dict[str, list[int]] = {}
    unknown = []
    for value in present.tolist():
        if table is None:
            groups[str(value)] = [value]
        elif value in table.by_id:
            groups.setdefault(table.by_id[value], []).append(value)
        else:
            unknown.append(value)
    if unknown:
        shown = ", ".join(f"{v} ({counts[v]} px)" for v in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        findings.append(finding("FMT004", f"class id {shown}{more} not in the class table; those pixels are "
                                          "left unlabelled", src, image=key,
                                value=float(sum(counts[v] for v in unknown))))
    order = _table_order(table, groups) if table is not None else sorted(groups, key=lambda n: groups[n][0])
    out = []
    for name in order:
        values = groups[name]
        mask = ids_f == values[0] if len(values) == 1 else np.isin(ids_f, values)
        out.append((name, values[0], mask, int(sum(counts[v] for v in values))))
    return out


def _classes_from_colours(rgba, table, findings, src, key):
    # One little-endian uint32 per RGBA pixel: R | G << 8 | B << 16 | A << 24.
    words = np.ascontiguousarray(rgba).view("<u4")[..., 0]
    opaque_any = words >= (1 << 24)
    packed = np.where(opaque_any, words & 0xFFFFFF, _TRANSPARENT)
    values, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
    inverse_f = np.asfortranarray(inverse.reshape(packed.shape))
    # Back to 0xRRGGBB for the table and the names.
    colours = ((values & 0xFF) << 16) | (values & 0xFF00) | ((values >> 16) & 0xFF)
    groups: dict[str, list[int]] = {}
    unknown = []
    for k, colour in enumerate(colours.tolist()):
        if values[k] == _TRANSPARENT:
            continue
        if table is None:
            groups[colour_hex(colour)] = [k]
        elif colour in table.by_colour:
            groups.setdefault(table.by_colour[colour], []).append(k)
        else:
            unknown.append(k)
    if unknown:
        shown = ", ".join(f"{colour_hex(colours[k])} ({counts[k]} px)" for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        findings.append(finding("FMT004", f"colour {shown}{more} not in the class table; those pixels are "
                                          "left unlabelled", src, image=key,
                                value=float(sum(counts[k] for k in unknown))))
    order = _table_order(table, groups) if table is not None else sorted(groups)
    out = []
    for name in order:
        ks = groups[name]
        mask = inverse_f == ks[0] if len(ks) == 1 else np.isin(inverse_f, ks)
        out.append((name, colour_hex(colours[ks[0]]), mask, int(sum(counts[k] for k in ks))))
    return out


def _table_order(table: ClassTable, groups: dict) -> list[str]:
    return [name for name in table.categories if name in groups]
