"""Seeded synthetic scenes for the engine benchmarks: one truth, several noisy annotators.

- :func:`panoptic_scene`: an ``H x W`` id map of stuff bands with wavy borders and thing ellipses drawn on
  top (about 40 segments at the default settings), with ``segments_info``.
- :func:`instance_scene`: about 30 overlapping thing ellipses as COCO polygons.

Each annotator redraws the truth with its own noise: shifted and resized outlines (a few pixels), some
small objects missed, some labels swapped. Everything is a function of the seed.
"""

from __future__ import annotations

import numpy as np

STUFF = ("road", "sidewalk", "building", "vegetation", "sky", "terrain", "wall", "fence")
THINGS = ("person", "car", "truck", "bicycle", "rider")
CATEGORIES = [{"id": k + 1, "name": n, "isthing": 0} for k, n in enumerate(STUFF)] + \
    [{"id": len(STUFF) + k + 1, "name": n, "isthing": 1} for k, n in enumerate(THINGS)]


def _truth(rng, height, width, n_things):
    bands = []
    for k in range(len(STUFF) - 1):
        bands.append(dict(base=(k + 1) * height / len(STUFF), amp=rng.uniform(5, 40),
                          freq=rng.uniform(0.002, 0.01), phase=rng.uniform(0, 2 * np.pi)))
    things = []
    for _ in range(n_things):
        r = rng.uniform(10, 140) if rng.random() < 0.7 else rng.uniform(6, 20)
        things.append(dict(cx=rng.uniform(0, width), cy=rng.uniform(0, height), rx=r * rng.uniform(0.5, 1.5),
                           ry=r * rng.uniform(0.5, 1.5), cat=int(rng.integers(len(THINGS)))))
    return bands, things


def _annotator_view(rng, bands, things, *, jitter):
    """The truth as one annotator draws it: jittered geometry, misses and label swaps."""
    bands = [dict(b, base=b["base"] + rng.normal(0, jitter), phase=b["phase"] + rng.normal(0, 0.02))
             for b in bands]
    view = []
    for t in things:
        if min(t["rx"], t["ry"]) < 12 and rng.random() < 0.3:
            view.append(None)  # missed small object
            continue
        cat = t["cat"] if rng.random() > 0.05 else int(rng.integers(len(THINGS)))
        grow = rng.normal(0, jitter)
        view.append(dict(cx=t["cx"] + rng.normal(0, jitter), cy=t["cy"] + rng.normal(0, jitter),
                         rx=max(t["rx"] + grow, 2.0), ry=max(t["ry"] + grow, 2.0), cat=cat))
    return bands, view


def _ellipse_box(t, height, width):
    x0 = max(int(t["cx"] - t["rx"]) - 1, 0)
    x1 = min(int(t["cx"] + t["rx"]) + 2, width)
    y0 = max(int(t["cy"] - t["ry"]) - 1, 0)
    y1 = min(int(t["cy"] + t["ry"]) + 2, height)
    return x0, y0, x1, y1


def _ellipse_mask(t, box):
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return ((xx + 0.5 - t["cx"]) / t["rx"]) ** 2 + ((yy + 0.5 - t["cy"]) / t["ry"]) ** 2 <= 1.0


def panoptic_scene(seed: int, *, height=1024, width=2048, n_things=32, annotators=3, jitter=1.5):
    """``annotators`` panoptic views of one scene: a list of ``(id_map int32, segments_info)``."""
    rng = np.random.default_rng(seed)
    bands, things = _truth(rng, height, width, n_things)
    out = []
    for k in range(annotators):
        arng = np.random.default_rng([seed, k])
        b, view = _annotator_view(arng, bands, things, jitter=jitter)
        x = np.arange(width)
        stuff = np.zeros((height, width), np.int32)
        ys = np.arange(height)[:, None]
        for band in b:
            border = band["base"] + band["amp"] * np.sin(band["freq"] * x + band["phase"])
            stuff += (ys >= border[None, :]).astype(np.int32)
        id_map = np.zeros((height, width), np.int32)
        segments = []
        used = set()

        def new_id():
            while True:
                sid = int(arng.integers(1, 256 ** 3))
                if sid not in used:
                    used.add(sid)
                    return sid

        for s in range(len(STUFF)):
            sid = new_id()
            id_map[stuff == s] = sid
            segments.append({"id": sid, "category_id": s + 1, "iscrowd": 0})
        for t in view:
            if t is None:
                continue
            box = _ellipse_box(t, height, width)
            if box[0] >= box[2] or box[1] >= box[3]:
                continue
            sid = new_id()
            x0, y0, x1, y1 = box
            id_map[y0:y1, x0:x1][_ellipse_mask(t, box)] = sid
            segments.append({"id": sid, "category_id": len(STUFF) + t["cat"] + 1, "iscrowd": 0})
        present = set(np.unique(id_map).tolist())
        out.append((id_map, [s for s in segments if s["id"] in present]))
    return out


def instance_scene(seed: int, *, height=1024, width=2048, n_things=30, annotators=3, jitter=1.5, vertices=48):
    """``annotators`` instance views of one scene: lists of ``(category name, polygon (N, 2))``.

    Objects overlap freely (each is a whole ellipse, as instance annotations are drawn).
    """
    rng = np.random.default_rng(seed)
    _, things = _truth(rng, height, width, n_things)
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    out = []
    for k in range(annotators):
        arng = np.random.default_rng([seed, k])
        _, view = _annotator_view(arng, [], things, jitter=jitter)
        objects = []
        for t in view:
            if t is None:
                continue
            xs = np.clip(t["cx"] + t["rx"] * np.cos(angles) + arng.normal(0, jitter / 2, vertices), 0, width)
            ys = np.clip(t["cy"] + t["ry"] * np.sin(angles) + arng.normal(0, jitter / 2, vertices), 0, height)
            if xs.max() - xs.min() < 1 or ys.max() - ys.min() < 1:
                continue
            objects.append((THINGS[t["cat"]], np.stack([xs, ys], axis=1)))
        out.append(objects)
    return out


def id_map_to_png(id_map: np.ndarray, path) -> None:
    """Write an id map as panopticapi's RGB PNG (id = R + 256 G + 256^2 B)."""
    from PIL import Image

    rgb = np.stack([id_map & 255, (id_map >> 8) & 255, (id_map >> 16) & 255], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, mode="RGB").save(path)


def write_panoptic_exports(folder, scenes, names):
    """COCO panoptic exports (JSON + PNG folder) for annotators ``names``; ``scenes`` is a list of
    :func:`panoptic_scene` results. Returns ``{name: json path}``."""
    import json
    from pathlib import Path

    folder = Path(folder)
    paths = {}
    for k, name in enumerate(names):
        png_dir = folder / f"{name}_panoptic"
        png_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i, views in enumerate(scenes):
            id_map, segments = views[k]
            file_name = f"scene{i:05d}.png"
            id_map_to_png(id_map, png_dir / file_name)
            images.append({"id": i + 1, "file_name": f"scene{i:05d}.jpg", "height": id_map.shape[0],
                           "width": id_map.shape[1]})
            annotations.append({"image_id": i + 1, "file_name": file_name, "segments_info": segments})
        path = folder / f"{name}_panoptic.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
        paths[name] = path
    return paths


def write_instance_exports(folder, scenes, names, *, height=1024, width=2048):
    """COCO instance exports (polygons) for annotators ``names``; returns ``{name: json path}``."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cats = [c for c in CATEGORIES if c["isthing"]]
    cat_id = {c["name"]: c["id"] for c in cats}
    paths = {}
    for k, name in enumerate(names):
        images, annotations = [], []
        for i, views in enumerate(scenes):
            images.append({"id": i + 1, "file_name": f"scene{i:05d}.jpg", "height": height, "width": width})
            for cat, poly in views[k]:
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cat_id[cat],
                                    "segmentation": [poly.ravel().round(2).tolist()], "iscrowd": 0})
        path = folder / f"{name}_instances.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
        paths[name] = path
    return paths
