"""Workloads for the engine benchmarks, written by ``qa synth`` and loaded like any batch.

``qa synth`` draws street scenes (stuff regions and about 30 overlapping things, about 35 to 40 panoptic
segments per image at 1024x2048) labelled by three noisy annotators, and writes them as COCO instances
and COCO panoptic exports (see docs/synth.md), and on request as label-map PNGs. The benchmarks load them
and compare them.
"""

from __future__ import annotations

from pathlib import Path


def synth_batches(folder, *, images: int, size=(1024, 2048), seed: int = 0, label_maps: bool = False):
    """``(instance batch, panoptic batch)`` of ``images`` synthetic scenes, three annotators each; with
    ``label_maps``, the same scenes are also written as label-map PNGs (:func:`label_map_batch` loads
    them)."""
    import qa
    from qa.synth import synthesize

    folder = Path(folder)
    formats = ("coco", "coco_panoptic") + (("labelmap",) if label_maps else ())
    synthesize(folder, images=images, size=size, annotators=3, seed=seed, formats=formats, workers=1, force=True)
    return qa.load(manifest=folder / "batch.toml"), qa.load(manifest=folder / "batch_panoptic.toml")


def label_map_batch(folder):
    """The label-map batch :func:`synth_batches` wrote with ``label_maps=True``."""
    import qa

    return qa.load(manifest=Path(folder) / "batch_labelmap.toml")


def category_codes(batch) -> dict[str, int]:
    return {name: k for k, name in enumerate(batch.categories)}


def segments_info(batch, annotator: str, image: str) -> list[dict]:
    """panopticapi's ``segments_info`` of one annotator's image (category ids are category codes)."""
    codes = category_codes(batch)
    return [{"id": o.segment_id, "category_id": codes[o.category], "iscrowd": int(o.iscrowd)}
            for o in batch.objects(annotator, image)]
