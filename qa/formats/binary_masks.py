"""Binary masks: a folder of PNGs per annotator, one foreground mask per image or per instance.

A pixel is foreground when its grey value is on the foreground side of a threshold. The threshold is a
fraction of the file's full scale (0.5 by default: 128 of 255, 32768 of 65535, 1 of 1), so 1-bit, 8-bit and
16-bit masks are read alike; colour and palette masks are turned to grey first (ITU-R 601 luma, as Pillow
does), and fully transparent pixels are background. The foreground is white by default; many datasets
(BU-BIL among them) draw it black.

One file per image gives one object. Several files per image give one object each when their names say
so: the stem pattern (option ``instance_pattern``, by default ``<image>_obj<number>``, as in
``img_001_obj2.png``) names the image, the instance and optionally the category. Images pair across
annotators by (image) stem, case-insensitively, as for label maps (:mod:`qa.formats.labelmap`, which also
describes the folder layout). An image whose mask is empty is kept, with no object.

Options (per export, ``[exports.options]`` in the manifest)
-----------------------------------------------------------
``foreground`` : "white", "black" or "auto", default "auto"
    Which side of the threshold is foreground. ``"auto"`` looks at the border of the export's first
    eight masks: background is what covers the image border, when at least 95 % of it is one side; the
    choice is reported as an info finding (``FMT021``), and when the border does not decide, white is
    taken with a warning (``FMT022``). A colour set here that looks inverted (it covers more than half
    of the image on most masks and at least 95 % of their border) is reported once per export with
    the fix (``FMT022``, a warning); the masks are read as told.
``threshold`` : float in (0, 1), default 0.5
    The threshold as a fraction of the full scale; foreground is ``value >= threshold x max`` (white)
    or ``value < threshold x max`` (black).
``category`` : str, default "foreground"
    The category of every mask (unless the pattern has a ``category`` group).
``instance_pattern`` : str, default ``^(?P<image>.+)_obj(?P<instance>\\d+)$``
    A regular expression matched against each file stem; groups ``image`` (required), ``instance`` and
    ``category``. Files whose stem does not match are one mask of the image named by the whole stem.
    An empty string turns instances off.
``bit_depth`` : 8 or 16
    Report (``FMT020``) and leave out files of the other depth.
``glob`` : str, default ``"*.png"`` (any case)
    Which files of the folder to read.

A folder given a class table (the manifest's ``[[classes]]`` or ``options.classes``) is read as a label
map instead, even when its PNGs are black and white.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from qa.errors import ConfigError, InputError
from qa.formats._findings import finding
from qa.formats.labelmap import (
    annotator_folders, check_options, decode_png, depth_class, mask_rle, pair_files, png_header,
    rle_bbox, sample_files, string_option,
)
from qa.model import Category, Export, Image, Limits, Object, Source

NAME = "binary_masks"

DEFAULT_INSTANCE_PATTERN = r"^(?P<image>.+)_obj(?P<instance>\d+)$"
OPTIONS = {"foreground", "threshold", "category", "instance_pattern", "bit_depth", "glob"}
_POLARITY_SAMPLE = 8
_POLARITY_SHARE = 0.95


def looks_binary(files: list[Path]) -> bool:
    """Whether every file is a black-and-white mask: 1-bit, or only pure black and pure white pixels."""
    from qa.model import Limits

    for png in files:
        try:
            _w, _h, depth, kind = png_header(png)
            if depth == 1 and kind == "grey":
                continue
            if depth == 16:
                return False
            rgba = decode_png(png, Limits(), "RGBA")
        except InputError:
            return False
        rgb = rgba[..., :3]
        grey = rgb[..., 0]
        if not (np.array_equal(grey, rgb[..., 1]) and np.array_equal(grey, rgb[..., 2])):
            return False
        values = np.flatnonzero(np.bincount(grey.ravel(), minlength=256))
        if not set(values.tolist()) <= {0, 255}:
            return False
    return bool(files)


def sniff(path: Path) -> bool:
    """A folder (or folder of folders) of black-and-white PNG masks."""
    from qa.formats._location import location

    return looks_binary(sample_files(location(path)))


def _grey(png: Path, kind: str, depth: int, limits: Limits):
    """``(grey values, full-scale value, opaque mask or None)`` of one mask file."""
    if kind == "grey" and depth == 16:
        return decode_png(png, limits), 65535, None
    if kind == "grey":
        return decode_png(png, limits, "L"), 255, None
    # Colour, palette and grey+alpha: Pillow's ITU-R 601-2 luma, alpha kept.
    grey_alpha = decode_png(png, limits, "LA")
    alpha = grey_alpha[..., 1]
    return grey_alpha[..., 0], 255, (alpha != 0) if (alpha == 0).any() else None


def _threshold_value(threshold: float, full_scale: int) -> int:
    return math.ceil(threshold * full_scale)


def _parse_options(options: dict, path: Path):
    check_options(options, OPTIONS, NAME, path)
    foreground = string_option(options, "foreground", "auto", path)
    if foreground not in ("white", "black", "auto"):
        raise ConfigError(f"option 'foreground' must be 'white', 'black' or 'auto', got {foreground!r}", path=path)
    threshold = options.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ConfigError(f"option 'threshold' must be a number between 0 and 1 (a fraction of the full "
                          f"scale), got {threshold!r}", path=path)
    category = string_option(options, "category", "foreground", path)
    if not category.strip():
        raise ConfigError("option 'category' must not be empty", path=path)
    pattern_text = string_option(options, "instance_pattern", DEFAULT_INSTANCE_PATTERN, path)
    pattern = None
    if pattern_text:
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            raise ConfigError(f"option 'instance_pattern' is not a valid regular expression: {exc}",
                              path=path) from None
        if "image" not in pattern.groupindex:
            raise ConfigError("option 'instance_pattern' needs a group named 'image', as in "
                              f"{DEFAULT_INSTANCE_PATTERN!r}", path=path)
    bit_depth = options.get("bit_depth")
    if bit_depth is not None and (isinstance(bit_depth, bool) or bit_depth not in (8, 16)):
        raise ConfigError(f"option 'bit_depth' must be 8 or 16, got {bit_depth!r}", path=path)
    glob = string_option(options, "glob", None, path)
    return foreground, float(threshold), category.strip(), pattern, bit_depth, glob


def read(path: Path, *, limits: Limits, options: dict) -> list[Export]:
    """Read a folder of binary masks (or a folder of such folders) into one export per annotator.

    Takes the arguments of :func:`qa.formats.labelmap.read` and raises the same errors; the options
    are listed in the module docstring.
    """
    from qa.formats._location import location

    path = location(path)
    if "classes" in options:  # a folder given a class table is a label map, black-and-white or not
        from qa.formats import labelmap

        return labelmap.read(path, limits=limits, options=options)
    settings = _parse_options(options, path)
    folders = annotator_folders(path, settings[-1])
    if not folders:
        raise InputError("no PNG files here or in its sub-folders; is this a folder of masks?", path=path)
    return [_read_folder(name, folder, settings, limits) for name, folder in folders]


def _key_of(pattern, default_category):
    def key_of(stem: str):
        m = pattern.fullmatch(stem) if pattern is not None else None
        if m is None:
            return (stem.casefold(), None, default_category)
        instance = m.groupdict().get("instance")
        category = m.groupdict().get("category") or default_category
        return (m.group("image").casefold(), instance, category)
    return key_of


def _read_folder(annotator, folder, settings, limits) -> Export:
    foreground, threshold, category, pattern, bit_depth, glob = settings
    export = Export(annotator=annotator, path=folder, format=NAME)
    files = pair_files(folder, glob, export.findings, _key_of(pattern, category))
    headers = {key: png_header(p) for key, (_rel, p) in files.items()}

    # Decode each file once; the first few are kept until the polarity is known.
    pending: list = []
    white = None if foreground == "auto" else foreground == "white"
    border_high = border_total = 0
    all_border_high = all_border_total = 0  # over every mask: a forced polarity is checked against it
    high_shares: list[float] = []
    for key, (rel, png) in files.items():
        width, height, depth, kind = headers[key]
        if bit_depth is not None and depth_class(depth) != bit_depth:
            export.findings.append(finding(
                "FMT020", f"{depth}-bit PNG where the export's masks are {bit_depth}-bit; image left out",
                Source(str(png)), image=key[0]))
            continue
        grey, full_scale, opaque = _grey(png, kind, depth, limits)
        high = grey >= _threshold_value(threshold, full_scale)
        border = np.concatenate([high[0], high[-1], high[1:-1, 0], high[1:-1, -1]])
        all_border_high += int(border.sum())
        all_border_total += border.size
        high_shares.append(float(np.count_nonzero(high)) / max(high.size, 1))
        if white is None:
            border_high += int(border.sum())
            border_total += border.size
            pending.append((key, rel, png, high, opaque))
            if len(pending) < _POLARITY_SAMPLE:
                continue
            white = _decide_polarity(export, folder, border_high, border_total, len(pending))
            for item in pending:
                _add_mask(export, *item, white)
            pending = []
            continue
        _add_mask(export, key, rel, png, high, opaque, white)
    if pending:
        white = _decide_polarity(export, folder, border_high, border_total, len(pending))
        for item in pending:
            _add_mask(export, *item, white)
    if foreground != "auto":
        _check_forced_polarity(export, folder, foreground, all_border_high, all_border_total, high_shares)
    for obj in export.objects:
        export.categories.setdefault(obj.category, Category(name=obj.category, isthing=True))
    if not export.categories:
        export.categories[category] = Category(name=category, isthing=True)
    return export


def _decide_polarity(export, folder, border_high, border_total, n) -> bool:
    share_white = border_high / border_total if border_total else 1.0
    src = Source(str(folder))
    if share_white >= _POLARITY_SHARE:
        export.findings.append(finding(
            "FMT021", f"foreground taken as black: {100 * share_white:.1f}% of the border of the first {n} "
                      "masks is white; set option foreground to override", src))
        return False
    if share_white <= 1 - _POLARITY_SHARE:
        export.findings.append(finding(
            "FMT021", f"foreground taken as white: {100 * (1 - share_white):.1f}% of the border of the first "
                      f"{n} masks is black; set option foreground to override", src))
        return True
    export.findings.append(finding(
        "FMT022", f"cannot tell the foreground colour: the border of the first {n} masks is "
                  f"{100 * share_white:.1f}% white; white taken, set option foreground", src))
    return True


def _check_forced_polarity(export, folder, foreground, border_high, border_total, high_shares) -> None:
    """One ``FMT022`` warning when a forced ``foreground`` looks inverted: the foreground covers most of
    the image on most masks and (nearly) all of the masks' border, where objects are drawn on a
    background that surrounds them."""
    if not high_shares or not border_total:
        return
    white = foreground == "white"
    shares = np.asarray(high_shares) if white else 1.0 - np.asarray(high_shares)
    border_share = border_high / border_total if white else 1.0 - border_high / border_total
    mostly = int(np.count_nonzero(shares > 0.5))
    if border_share < _POLARITY_SHARE or 2 * mostly <= len(shares):
        return
    other = "black" if white else "white"
    export.findings.append(finding(
        "FMT022", f"foreground = {foreground!r} looks inverted: {foreground} covers more than half of the image "
                  f"on {mostly} of {len(shares)} masks (median {100 * float(np.median(shares)):.0f}%) and "
                  f"{100 * border_share:.1f}% of their border, where objects are drawn on a background that "
                  f"surrounds them; set foreground = {other!r} (or 'auto' to sniff it from the border)",
        Source(str(folder))))


def _add_mask(export, key, rel, png, high, opaque, white) -> None:
    image_key, instance, category = key
    height, width = high.shape
    src = Source(str(png))
    image = export.images.get(image_key)
    if image is None:
        image = Image(key=image_key, file_name=rel, width=width, height=height, source=src)
        export.images[image_key] = image
    elif (image.height, image.width) != (height, width):
        export.findings.append(finding(
            "FMT003", f"mask is {width}x{height} but {image.file_name} of the same image is "
                      f"{image.width}x{image.height}; mask left out", src, image=image_key))
        return
    mask = high if white else ~high
    if opaque is not None:
        mask &= opaque
    mask_f = np.asfortranarray(mask)
    area = int(np.count_nonzero(mask_f))
    if area == 0:
        return
    rle = mask_rle(mask_f)
    export.objects.append(Object(
        annotator="", image=image_key, category=category, kind="rle", rle=rle,
        source=Source(str(png), None, int(instance) if instance is not None and instance.isdigit() else instance,
                      "masks"),
        bbox=rle_bbox(rle), area=float(area),
    ))
