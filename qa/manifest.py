"""Batch manifests: a TOML file naming the annotators' exports, their formats and category aliases.

.. code-block:: toml

    name = "nodules-2026-11"          # optional batch name
    description = "what the batch is" # optional; shown at the top of the summary
    categories = ["nodule"]           # optional declared category list
    max_pixels = 100_000_000          # optional size bound

    [[exports]]
    annotator = "alice"
    path = "exports/alice.json"       # relative to the manifest's folder
    format = "coco"                   # optional; detected from content when omitted

    [[exports]]
    annotator = "bob"
    path = "exports/bob_panoptic.json"
    format = "coco_panoptic"
    options = { png_dir = "exports/bob_png" }

    [aliases]                         # canonical name = [exact names, globs, "re:" regexes]
    car = ["car_*", "re:^a?car_\\\\d+$", "auto"]

A reference (a gold set, a senior annotator) is an export with ``role = "reference"``; every other export
is scored against it (``pairs = "all"`` at the top also compares the annotators with each other). An
export at another resolution of the same images has ``rescale = true``. Object attributes are agreed on
at a declared level of measurement:

.. code-block:: toml

    pairs = "reference"               # or "all"

    [[exports]]
    annotator = "gold"
    path = "GoldStandard"
    role = "reference"

    [[exports]]
    annotator = "crowd1"
    path = "crowd/1.json"
    rescale = true                    # labelled on a resized copy: scaled into the reference's frame

    [attributes]                      # name = "nominal" or "ordinal" (default: inferred)
    calcification = "nominal"
    malignancy = "ordinal"
"""

from __future__ import annotations

import os
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import ConfigError, InputError
from qa.formats import FORMATS


@dataclass(slots=True)
class ExportSpec:
    """One export to load: who labelled it, where it is, and how to read it."""

    annotator: str | None
    path: Path
    format: str | None = None
    options: dict = field(default_factory=dict)
    role: str | None = None
    """``"reference"`` for the export every other is scored against; None for an annotator."""
    rescale: bool = False
    """Whether the export labels the images at another resolution (scaled into the reference's frame)."""


@dataclass(slots=True)
class Manifest:
    """A batch as a manifest describes it."""

    exports: list[ExportSpec]
    name: str | None = None
    description: str | None = None
    aliases: dict = field(default_factory=dict)
    categories: list[str] | None = None
    max_pixels: int | None = None
    path: Path | None = None
    pairs: str | None = None
    attributes: dict = field(default_factory=dict)

    @property
    def reference(self) -> str | None:
        """The annotator of the export whose role is ``"reference"``, if any."""
        return next((e.annotator for e in self.exports if e.role == "reference"), None)


def _read_classes(doc: dict, path: Path) -> list[dict] | None:
    """The top-level ``[[classes]]`` table (label maps' class ids and colours; see
    :func:`qa.formats.labelmap.parse_classes`), checked. It becomes the ``classes`` option of every
    export whose format is ``labelmap``, or is not given and whose path is a folder."""
    if "classes" not in doc:
        return None
    from qa.formats.labelmap import parse_classes

    parse_classes(doc["classes"], path=path)  # raises ConfigError naming the entry
    return doc["classes"]


def parse_spec(text: str) -> ExportSpec:
    """Parse ``NAME=PATH`` (or a bare ``PATH``, named after the file or from inside it).

    Examples
    --------
    >>> parse_spec("alice=exports/a.json")
    ExportSpec(annotator='alice', path=PosixPath('exports/a.json'), format=None, options={}, role=None, rescale=False)
    """
    from qa.formats._location import location

    name, sep, path = str(text).partition("=")
    if sep and name and "/" not in name and "\\" not in name:
        return ExportSpec(annotator=name.strip(), path=location(path))
    return ExportSpec(annotator=None, path=location(text))


def _beside(manifest, value: str) -> str:
    """An option's path as an absolute path or URL (relative ones are relative to the manifest's folder)."""
    from qa.formats._location import Url, is_url

    if is_url(value):
        return value
    if isinstance(manifest, Url):
        return str(manifest.parent / value)
    return os.path.abspath(manifest.parent / value)


_TOP_KEYS = {"name", "description", "categories", "max_pixels", "exports", "aliases", "pairs", "attributes"}
_EXPORT_KEYS = {"annotator", "path", "format", "options", "role", "rescale"}
ROLES = ("reference", "annotator")
LEVELS = ("nominal", "ordinal")
"""Levels of measurement an attribute may be declared at."""


def read_manifest(path) -> Manifest:
    """Read a batch manifest; paths inside it are relative to its folder.

    Raises
    ------
    InputError
        When the file cannot be read or is not valid TOML.
    ConfigError
        When a key is unknown or a value has the wrong type; the message names the key.
    """
    from qa.formats._location import is_url, location

    path = location(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read manifest: {exc.strerror or exc}", path=path) from None
    except UnicodeDecodeError:
        raise InputError("manifest is not UTF-8 text", path=path) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", path=path) from None
    unknown = sorted(set(doc) - _TOP_KEYS - {"classes"})
    if unknown:
        known = sorted(_TOP_KEYS | {"classes"})
        raise ConfigError(f"unknown key {unknown[0]!r}; known keys: {', '.join(known)}", path=path)
    classes = _read_classes(doc, path)
    exports_raw = doc.get("exports")
    if not isinstance(exports_raw, list) or not exports_raw:
        raise ConfigError("needs at least one [[exports]] table", path=path)
    exports = []
    for index, raw in enumerate(exports_raw):
        where = f"exports[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError("each export must be a table with 'path' (write [[exports]])", path=path, where=where)
        unknown = sorted(set(raw) - _EXPORT_KEYS)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}", path=path, where=where)
        if not isinstance(raw.get("path"), str):
            raise ConfigError("'path' must be a string", path=path, where=where)
        for key in ("annotator", "format"):
            if key in raw and not isinstance(raw[key], str):
                raise ConfigError(f"{key!r} must be a string", path=path, where=where)
        if "format" in raw and raw["format"] not in FORMATS:
            raise ConfigError(f"unknown format {raw['format']!r}; known formats: {', '.join(sorted(FORMATS))}",
                              path=path, where=where)
        options = raw.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError("'options' must be a table", path=path, where=where)
        # absolute, so a loader that resolves a relative folder against its export file does not do it twice
        options = {k: (_beside(path, v) if k.endswith(("_dir", "_file")) and isinstance(v, str)
                       else v) for k, v in options.items()}
        export_path = location(raw["path"]) if is_url(raw["path"]) else path.parent / raw["path"]
        if classes is not None and (raw.get("format") == "labelmap" or (
                raw.get("format") is None and export_path.is_dir())):
            options.setdefault("classes", classes)  # folders of PNGs given a class table are label maps
        role = raw.get("role")
        if role is not None and role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(map(repr, ROLES))}, got {role!r}", path=path,
                              where=where)
        if role == "reference" and not isinstance(raw.get("annotator"), str):
            raise ConfigError("the reference export needs an 'annotator' name", path=path, where=where)
        if "rescale" in raw and not isinstance(raw["rescale"], bool):
            raise ConfigError("'rescale' must be true or false", path=path, where=where)
        exports.append(ExportSpec(annotator=raw.get("annotator"), path=export_path,
                                  format=raw.get("format"), options=options,
                                  role=None if role == "annotator" else role, rescale=bool(raw.get("rescale"))))
    references = [e.annotator for e in exports if e.role == "reference"]
    if len(references) > 1:
        raise ConfigError(f"{len(references)} exports have role = 'reference' ({', '.join(references)}); give "
                          "one", path=path)
    pairs = doc.get("pairs")
    if pairs is not None and pairs not in ("reference", "all"):
        raise ConfigError(f"'pairs' must be 'reference' or 'all', got {pairs!r}", path=path)
    attributes = doc.get("attributes", {})
    if not isinstance(attributes, dict) or not all(v in LEVELS for v in attributes.values()):
        raise ConfigError("'attributes' must be a table of name = \"nominal\" or \"ordinal\"", path=path)
    aliases = doc.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ConfigError("'aliases' must be a table of name = [patterns]", path=path)
    for canonical, patterns in aliases.items():
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(f"aliases.{canonical} must be a pattern or a list of patterns (strings)", path=path)
    categories = doc.get("categories")
    if categories is not None and (not isinstance(categories, list)
                                   or not all(isinstance(c, str) for c in categories)):
        raise ConfigError("'categories' must be a list of names", path=path)
    max_pixels = doc.get("max_pixels")
    if max_pixels is not None and (not isinstance(max_pixels, int) or isinstance(max_pixels, bool)
                                   or max_pixels <= 0):
        raise ConfigError("'max_pixels' must be a positive integer", path=path)
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise ConfigError(f"{key!r} must be a string", path=path)
    return Manifest(exports=exports, name=doc.get("name"), description=doc.get("description"), aliases=aliases,
                    categories=categories, max_pixels=max_pixels, path=path, pairs=pairs,
                    attributes=dict(attributes))
