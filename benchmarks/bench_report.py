"""Report size and render time for a 1,000-image run; overlay drawing against decoding the inputs.

``.venv/bin/python -m benchmarks.bench_report [--images 1000] [--size 1024x2048] [--workers 2]``

Setup (not timed): ``qa synth`` writes the batch (three annotators, COCO instances: polygons, so every
picture rasterises its objects like the comparison does) into ``--folder`` (reused when it already holds
the same batch), and ``qa.run`` compares and checks it without storing it. The comparison's boundary
metrics are switched off for the setup only: they take about a second per 1024x2048 image pair (see
"Engine" in benchmarks/README.md), the report only reads their means, and the figures below do not depend
on them beyond a few table columns.

Timed, in this process, on the same run:

1. the whole report from the run in memory (:func:`qa.report.from_run` and rendering), with the default
   100 pictures and with a picture for every image; the size of each file;
2. per picture, the time to decode the masks with the engine's crop kernels (the "inputs" of a picture),
   the time to draw and encode it, and the baseline: decoding the same objects as full-image masks with
   pycocotools (``maskUtils.decode``), which the overlays avoid.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks._common import machine, synth_batch, timed, versions


def _run(manifest: Path, workers: int):
    import qa
    from qa.engine import compare

    original = compare._boundary_function
    compare._boundary_function = lambda: None  # setup only: see the module docstring
    try:
        return qa.run(manifest=manifest, store=False, workers=workers)
    finally:
        compare._boundary_function = original


def _decode_full(batch, key: str) -> None:
    """Baseline: every object of the image as a full-image mask (pycocotools)."""
    from pycocotools import mask as mask_utils

    from qa.engine._masks import object_rle

    image = batch.images[key]
    for obj in batch.objects(image=key):
        mask_utils.decode(object_rle(obj, image.height, image.width))


def _decode_crops(batch, key: str) -> None:
    """The overlay's own decoding: each annotator's objects into bbox crops (engine kernels)."""
    from qa.overlay import annotator_crops

    image = batch.images[key]
    for name in batch.annotators:
        annotator_crops([o for o in batch.objects(name, key) if not o.iscrowd], image.height, image.width)


def main(argv=None) -> int:
    from qa.report import from_run, picture, rank_images, render_html
    from qa.synth import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", default="1024x2048", help="HxW (default 1024x2048, Cityscapes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_report"))
    parser.add_argument("--sample", type=int, default=12, help="pictures timed one by one (default 12)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)

    t0 = time.perf_counter()
    manifest = synth_batch(args.folder / f"{args.images}_{size[0]}x{size[1]}_{args.seed}", args.images, size, args.seed)
    run = _run(manifest, args.workers)
    batch = run.batch
    n_objects = sum(len(e.objects) for e in batch.exports.values())
    print(f"setup: {args.images} images of {size[0]}x{size[1]}, 3 annotators, {n_objects} objects, "
          f"{len(run.violations)} rule violations ({time.perf_counter() - t0:.0f} s, not timed)")
    print(f"machine: {machine()}; {versions()}")

    from_run(run, pictures=2)  # warm-up: numba kernels (cache), jinja2, Pillow's WebP encoder

    rows = []
    for pictures in (100, args.images):
        t = time.perf_counter()
        data = from_run(run, pictures=pictures)
        html = render_html(data)
        elapsed = time.perf_counter() - t
        decode = sum(g["timing"]["decode"] for g in data.gallery)
        draw = sum(g["timing"]["draw"] for g in data.gallery)
        size_mb = len(html.encode("utf-8")) / 1e6
        pics_mb = sum(len(g["uri"]) for g in data.gallery) / 1e6
        rows.append((pictures, len(data.gallery), elapsed, decode, draw, size_mb, pics_mb))
    print()
    print("whole report (from_run + render_html), one run each:")
    print(f"  {'pictures':>8} {'drawn':>6} {'render s':>9} {'decode s':>9} {'draw s':>7} {'size MB':>8} "
          f"{'pictures MB':>12} {'KB/picture':>11}")
    for pictures, drawn, elapsed, decode, draw, size_mb, pics_mb in rows:
        print(f"  {pictures:>8} {drawn:>6} {elapsed:>9.1f} {decode:>9.1f} {draw:>7.1f} {size_mb:>8.2f} "
              f"{pics_mb:>12.2f} {1000 * pics_mb / max(drawn, 1):>11.1f}")

    ranked = rank_images(run.comparison.image_pairs, batch.images)
    sample = list(ranked["image"][: args.sample])
    crops, draws, fulls = [], [], []
    for key in sample:
        crops.append(timed(lambda: _decode_crops(batch, key), repeat=3))
        draws.append(timed(lambda: picture(batch, key), repeat=3))  # decode + draw + encode
        fulls.append(timed(lambda: _decode_full(batch, key), repeat=3))
    crop_ms = statistics.median(crops) * 1e3
    picture_ms = statistics.median(draws) * 1e3
    draw_ms = statistics.median(p - c for p, c in zip(draws, crops)) * 1e3
    full_ms = statistics.median(fulls) * 1e3
    objects = statistics.median(len(batch.objects(image=k)) for k in sample)
    print()
    print(f"per picture, median of {len(sample)} images (median of 3 calls each; {objects:.0f} objects per image, "
          f"all annotators):")
    print(f"  decode the masks into bbox crops (engine kernels):   {crop_ms:8.1f} ms")
    print(f"  draw and encode the picture (the rest):              {draw_ms:8.1f} ms")
    print(f"  whole picture:                                       {picture_ms:8.1f} ms")
    print(f"  baseline, full-image pycocotools decodes:            {full_ms:8.1f} ms")
    print(f"  drawing / decoding the inputs:                       {draw_ms / crop_ms:8.2f}")
    print(f"  full-image decodes / crop decodes:                   {full_ms / crop_ms:8.1f}x")
    _photo_sizes(batch, sample)
    return 0


def _photo_sizes(batch, sample) -> None:
    """Picture sizes over a photograph (lossy WebP) instead of the flat drawing (lossless WebP).

    qa synth writes no image files, so a real photograph stands in for every image: COCO val2017 image
    139 from the shared test data (``QA_TEST_DATA``), resized to the picture.
    """
    import os

    import numpy as np
    from PIL import Image

    from qa.overlay import annotator_crops, encode_image, picture_shape, render_overlay

    root = Path(os.environ.get("QA_TEST_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    photo = root / "coco139_coconut_vs_coco" / "000000000139.jpg"
    if not photo.is_file():
        print(f"\n(no photograph at {photo}: picture sizes over a photograph not measured)")
        return
    codes = {c: k + 1 for k, c in enumerate(sorted(batch.categories))}
    sizes = []
    for key in sample:
        image = batch.images[key]
        rows, cols, _, _ = picture_shape(image.height, image.width, 640)
        background = np.asarray(Image.open(photo).convert("RGB").resize((cols, rows)))
        layers = [[(c, off, codes[o.category]) for c, off, o in
                   annotator_crops([o for o in batch.objects(name, key) if not o.iscrowd], image.height, image.width)]
                  for name in batch.annotators]
        sizes.append(len(encode_image(render_overlay(image.height, image.width, layers, background=background))))
    kb = statistics.median(sizes) / 1e3
    print()
    print(f"picture over a photograph (lossy WebP, quality 72), median of {len(sizes)}: {kb:.1f} KB, "
          f"{kb * 4 / 3:.1f} KB as a data URI; 100 pictures {kb * 4 / 3 * 100 / 1e3:.1f} MB, "
          f"1,000 pictures {kb * 4 / 3 * 1000 / 1e3:.1f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
