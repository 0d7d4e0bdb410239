"""Synthetic street-scene batches with known annotator noise: the workload and ground truth for ``qa``.

:func:`synthesize` draws one street scene per image (stuff regions tiling the image, about 30
overlapping things in a true depth order), derives K annotators from it with switchable noise models
and planted faults, and writes every annotator's export (COCO instances, COCO panoptic, CVAT for
images 1.1, semantic label maps), the noise-free ``truth/``, batch manifests and ``planted.json``,
which lists every planted fault with the rule it should trigger. The same seed gives byte-identical
files.

The fault table and the placeholder rule ids are :data:`FAULTS` and :data:`RULES`
(in :mod:`qa.synth._faults`). ``docs/synth.md`` documents every model.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from pathlib import Path

from qa.errors import ConfigError
from qa.synth._faults import (FAULTS, RULE_FAULTS, RULES, FaultSpec, annotator_names, default_faults,
                              parse_faults)

__all__ = ["synthesize", "parse_size", "FAULTS", "RULES", "RULE_FAULTS", "FORMATS", "annotator_names",
           "parse_faults", "default_faults", "FaultSpec"]

FORMATS = ("coco", "coco_panoptic", "cvat", "labelmap")
"""Export formats ``synthesize`` can write; COCO instances are always written."""
MAX_IMAGES = 16_000
"""Object ids are ``image * 1000 + k``; panoptic ids must stay below 2**24."""
_OUTPUTS = ("coco", "panoptic", "cvat", "labelmap", "truth", "batch.toml", "batch_panoptic.toml",
            "batch_cvat.toml", "batch_labelmap.toml", "batch_with_truth.toml", "planted.json")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HEIGHTxWIDTH`` (rows x columns, Cityscapes' ``1024x2048``).

    Examples
    --------
    >>> parse_size("1024x2048")
    (1024, 2048)
    """
    h, sep, w = str(text).lower().partition("x")
    if not sep or not h.strip().isdigit() or not w.strip().isdigit():
        raise ConfigError(f"--size {text!r} is not HEIGHTxWIDTH (for example 1024x2048)")
    return int(h), int(w)


def _size_class(area: float) -> str:
    return "small" if area < 32 ** 2 else ("medium" if area < 96 ** 2 else "large")


def _image_job(job: tuple) -> dict:
    """Everything for one image: scene, annotators, PNGs written; JSON pieces returned."""
    import numpy as np

    from qa.synth._noise import annotate
    from qa.synth._scene import generate_scene
    from qa.synth._writers import cvat_image, image_outputs, instance_annotations

    index, height, width, seed, names, faults, out_dir, formats = job
    out = Path(out_dir)
    scene = generate_scene(np.random.default_rng([seed, index]), index, height, width)
    stem = Path(scene.key).stem
    image = {"id": index + 1, "file_name": scene.key, "width": width, "height": height}
    sets = [("truth", [o.copy() for o in scene.objects], {}, [])]
    for k, name in enumerate(names):
        objects, records, declared = annotate(scene, name, k, [f for f in faults if f.annotator == name], seed)
        sets.append((name, objects, declared, records))
    result = {"index": index, "image": image, "sets": {}, "records": [], "facts": []}
    for name, objects, declared, records in sets:
        base = out / "truth" if name == "truth" else out
        entry = {"coco": instance_annotations(objects, image["id"], height, width, declared),
                 "ids": [o.id for o in objects]}
        if "coco_panoptic" in formats or "labelmap" in formats:
            png = (base / "panoptic" / stem).with_suffix(".png") if name == "truth" else \
                out / "panoptic" / name / f"{stem}.png"
            lmap = (base / "labelmap" / f"{stem}.png") if name == "truth" else out / "labelmap" / name / f"{stem}.png"
            segments = image_outputs(objects, height, width,
                                     png_path=png if "coco_panoptic" in formats else None,
                                     labelmap_path=lmap if "labelmap" in formats else None)
            entry["panoptic"] = {"image_id": image["id"], "file_name": f"{stem}.png", "segments_info": segments}
        if "cvat" in formats:
            entry["cvat"] = cvat_image(index, image, objects)
        result["sets"][name] = entry
        result["records"].extend(records)
    for o in scene.objects:
        result["facts"].append({
            "image": scene.key, "object_id": o.id, "category": o.category, "isthing": int(o.isthing),
            "z_order": o.z_order, "occluded": int(o.occluded), "area_px": scene.area[o.id],
            "visible_px": scene.visible[o.id], "covered_share": round(scene.covered.get(o.id, 0.0), 4),
            "size": _size_class(scene.area[o.id]), "vertices": int(sum(len(p) for p in o.parts)),
            "parts": len(o.parts)})
    return result


def _prepare(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise ConfigError(f"{out_dir} is not empty; choose an empty or new folder, or pass --force "
                              "to replace an earlier qa synth output there")
        for name in _OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def synthesize(out_dir, *, images: int = 10, size: tuple[int, int] = (1024, 2048), annotators: int = 3,
               seed: int = 0, faults: list[str] | None = None,
               formats=("coco", "coco_panoptic"), workers: int | None = None, force: bool = False,
               progress=None) -> dict:
    """Write a synthetic batch of street scenes, K noisy annotators and the manifest of planted faults.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder; created, and required to be empty unless ``force``.
    images : int, default 10
        Number of images (at most 16,000, so panoptic ids fit in 24 bits).
    size : (int, int), default (1024, 2048)
        Image height and width in pixels.
    annotators : int, default 3
        Number of annotators (named alice, bob, carol, ... up to eight, then annotator01, ...).
    seed : int, default 0
        Everything written depends on this seed only (not on ``workers``).
    faults : list of str, optional
        ``ANNOTATOR:FAULT[=VALUE][,KEY=VALUE...]`` items (see :func:`qa.synth.parse_faults`); ``["none"]``
        plants nothing; None plants :func:`qa.synth.default_faults`.
    formats : iterable of str, default ("coco", "coco_panoptic")
        Any of :data:`FORMATS`; COCO instances are always written.
    workers : int, optional
        Processes to use (default: the CPU count, at most 8; 1 runs in this process).
    force : bool, default False
        Replace an earlier ``qa synth`` output in ``out_dir``.
    progress : callable, optional
        ``progress("synth", done, total)``.

    Returns
    -------
    dict
        A summary: paths written, objects per annotator, planted faults per type.

    Raises
    ------
    ConfigError
        On a bad argument, an unknown fault or annotator, or a non-empty ``out_dir``.

    Notes
    -----
    Object ids are ``image_index * 1000 + k`` and are shared: an annotator's object derived from a
    truth object keeps its id (so planted faults and truth pair up by id); objects a fault adds get
    ``k >= 900``. Polygon areas and bboxes are those of the pycocotools raster (what ``qa`` measures),
    except where the ``bbox_area`` fault plants a mismatch.

    Examples
    --------
    >>> summary = synthesize(tmp / "batch", images=2, size=(128, 256), seed=1, workers=1)  # doctest: +SKIP
    """
    height, width = (int(v) for v in size)
    if not 1 <= images <= MAX_IMAGES:
        raise ConfigError(f"--images must lie in 1..{MAX_IMAGES}, got {images}")
    if not 1 <= annotators <= 99:
        raise ConfigError(f"--annotators must lie in 1..99, got {annotators}")
    if height < 64 or width < 64:
        raise ConfigError(f"--size {height}x{width} is too small; each side needs at least 64 px")
    if height * width > 100_000_000:
        raise ConfigError(f"--size {height}x{width} exceeds 100,000,000 pixels, the loaders' default limit")
    formats = tuple(dict.fromkeys(["coco", *formats]))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown format {unknown[0]!r}; known formats: {', '.join(FORMATS)}")
    names = annotator_names(annotators)
    specs = default_faults(names) if faults is None else parse_faults(list(faults), names)
    for spec in specs:
        if spec.fault == "shift":
            from qa.synth._scene import ISTHING

            for cat in spec.params["pair"].split("/"):
                if ISTHING.get(cat, True):
                    raise ConfigError(f"--faults {spec}: shift moves a boundary between two stuff categories "
                                      f"(road, sidewalk, building, vegetation, sky), got {cat!r}")
        if spec.fault == "swap":
            from qa.synth._scene import ISTHING

            for cat in spec.params["pair"].split("/"):
                if not ISTHING.get(cat, False):
                    raise ConfigError(f"--faults {spec}: swap exchanges two thing categories "
                                      f"(car, person, bicycle, traffic sign), got {cat!r}")
    out = Path(out_dir)
    _prepare(out, force)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    workers = max(1, min(int(workers), images))

    jobs = [(i, height, width, int(seed), names, specs, str(out), formats) for i in range(images)]
    results = []
    if workers == 1:
        for done, job in enumerate(jobs):
            results.append(_image_job(job))
            if progress:
                progress("synth", done + 1, images)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done, res in enumerate(pool.map(_image_job, jobs, chunksize=max(1, images // (4 * workers)))):
                results.append(res)
                if progress:
                    progress("synth", done + 1, images)
    return _assemble(out, results, names, specs, formats, height, width, seed, images)


def _assemble(out: Path, results, names, specs, formats, height, width, seed, n_images) -> dict:
    from qa import __version__
    from qa.synth._scene import CATEGORIES
    from qa.synth._writers import (coco_document, cvat_document, manifest_text, panoptic_document,
                                   write_json)

    images = [r["image"] for r in results]
    files: dict[str, dict[str, str]] = {}
    objects_per_set: dict[str, int] = {}
    positions: dict[str, dict[int, tuple[int, int]]] = {}
    for name in ["truth", *names]:
        anns = [a for r in results for a in r["sets"][name]["coco"]]
        positions[name] = {}
        for r in results:
            for k, oid in enumerate(r["sets"][name]["ids"]):
                positions[name][oid] = (len(positions[name]), k)
        objects_per_set[name] = len(anns)
        desc = f"qa synth seed {seed}: {'noise-free truth' if name == 'truth' else 'annotator ' + name}"
        coco_path = out / "truth" / "coco.json" if name == "truth" else out / "coco" / f"{name}.json"
        write_json(coco_path, coco_document(images, anns, desc))
        files.setdefault(name, {})["coco"] = str(coco_path.relative_to(out))
        if "coco_panoptic" in formats:
            pan_path = out / "truth" / "panoptic.json" if name == "truth" else out / "panoptic" / f"{name}.json"
            pan = [r["sets"][name]["panoptic"] for r in results]
            pan_images = [dict(im) for im in images]
            write_json(pan_path, panoptic_document(pan_images, pan, desc))
            files[name]["coco_panoptic"] = str(pan_path.relative_to(out))
        if "cvat" in formats:
            cvat_path = out / "truth" / "cvat.xml" if name == "truth" else out / "cvat" / f"{name}.xml"
            cvat_path.parent.mkdir(parents=True, exist_ok=True)
            cvat_path.write_text(cvat_document([r["sets"][name]["cvat"] for r in results], desc), encoding="utf-8")
            files[name]["cvat"] = str(cvat_path.relative_to(out))
        if "labelmap" in formats:
            files[name]["labelmap"] = "truth/labelmap" if name == "truth" else f"labelmap/{name}"
    # The label-map loader's class table (docs/labelmaps.md): one entry per class id, 0 (unpainted) is void.
    classes = [{"id": cid, "name": cname, "isthing": thing, "colour": list(color)}
               for cid, cname, thing, color in CATEGORIES]
    classes.append({"id": 0, "name": "unlabeled", "void": True})
    if "labelmap" in formats:
        write_json(out / "labelmap" / "classes.json", {"classes": classes})

    category_names = [c[1] for c in CATEGORIES]
    batch_name = f"synth-seed{seed}"
    manifests = {"batch.toml": [(n, files[n]["coco"], "coco", {}) for n in names],
                 "batch_with_truth.toml": [(n, files[n]["coco"], "coco", {}) for n in ["truth", *names]]}
    if "coco_panoptic" in formats:
        manifests["batch_panoptic.toml"] = [
            (n, files[n]["coco_panoptic"], "coco_panoptic", {"png_dir": f"panoptic/{n}"}) for n in names]
    if "cvat" in formats:
        manifests["batch_cvat.toml"] = [(n, files[n]["cvat"], "cvat", {}) for n in names]
    if "labelmap" in formats:
        manifests["batch_labelmap.toml"] = [(n, files[n]["labelmap"], "labelmap", {}) for n in names]
    for fname, entries in manifests.items():
        table = classes if fname == "batch_labelmap.toml" else None
        declared = category_names + (["unlabeled"] if table else [])
        (out / fname).write_text(manifest_text(batch_name, entries, declared, classes=table), encoding="utf-8")

    # planted.json: annotator-wide noise first, then per-object faults in annotator, image, object order.
    from qa.synth._noise import record

    noise = [record(s.fault, s.annotator, None, params=dict(s.params),
                    category=s.params.get("pair") or s.params.get("categories"))
             for s in specs if FAULTS[s.fault].kind == "noise"]
    per_object = [rec for r in results for rec in r["records"]]
    order = {n: i for i, n in enumerate(names)}
    per_object.sort(key=lambda rec: (order[rec["annotator"]], rec["image"], rec["object_id"] or 0, rec["fault"]))
    for rec in noise + per_object:
        pos = positions[rec["annotator"]].get(rec["object_id"]) if rec["object_id"] is not None else None
        rec["coco_index"], rec["shape_index"] = pos if pos else (None, None)
    by_fault = Counter(rec["fault"] for rec in per_object)
    by_rule = Counter(rec["rule"] for rec in per_object if rec["rule"])
    planted = {
        "schema": 1,
        "generator": {"tool": "qa synth", "version": __version__, "seed": int(seed), "images": n_images,
                      "height": height, "width": width, "annotators": names, "formats": list(formats),
                      "faults": [str(s) for s in specs]},
        "rules": RULES,
        "fault_types": {k: {"kind": f.kind, "rule": f.rule, "also": list(f.also), "params": f.params,
                            "doc": f.doc} for k, f in FAULTS.items()},
        "files": files,
        "faults": noise + per_object,
        "counts": {
            "by_fault": dict(sorted(by_fault.items())),
            "by_rule": dict(sorted(by_rule.items())),
            "by_annotator": {n: dict(sorted(Counter(rec["fault"] for rec in per_object
                                                    if rec["annotator"] == n).items())) for n in names},
        },
    }
    write_json(out / "planted.json", planted, indent=1)
    with open(out / "truth" / "objects.csv", "w", encoding="utf-8", newline="") as fh:
        rows = [row for r in results for row in r["facts"]]
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {
        "out_dir": str(out),
        "images": n_images,
        "size": [height, width],
        "annotators": names,
        "formats": list(formats),
        "objects": objects_per_set,
        "files": files,
        "manifests": sorted(manifests),
        "noise": [str(s) for s in specs if FAULTS[s.fault].kind == "noise"],
        "planted": dict(sorted(by_fault.items())),
        "planted_by_annotator": planted["counts"]["by_annotator"],
    }
