"""Where the per-image pass of a run spends its CPU: each part of :func:`qa.task.run_chunk`, in one process.

``.venv/bin/python -m benchmarks.bench_task [--images 100] [--size 512x1024] [--repeat 3]``

Setup (not timed): the ``qa synth`` batch of :mod:`benchmarks.bench_run` (three annotators, COCO
instance polygons, about 30 overlapping objects per image), reused from ``--folder``, indexed as
``qa run`` indexes it (a streamed batch), cut into the run's chunks of images; one warm-up chunk so
the compiled kernels are loaded.

Timed, in this process, CPU seconds (``time.process_time``) per image of each part, in the order
:func:`qa.task.run_chunk` runs them, each part given what the parts before it made:

- ``read``: the chunk's objects read from the exports (``chunk.load()``) and grouped by image;
- ``rasterise``: each annotator's objects painted into tight crops (``Decoded.crops``: polygons to RLE
  by pycocotools, RLEs painted);
- ``outlines``: each object's outline listed (``Decoded.outlines``: row runs, boundary pixels, band,
  surface elements);
- ``compare: boundary``: every boundary figure of every matched pair (boundary F, boundary IoU, NSD,
  ASSD, HD95, signed offsets at every tolerance; :func:`qa.engine.boundary.outline_columns`);
- ``compare: category runs``: each annotator's categories as row runs (for the image-level IoU);
- ``compare: rest``: intersections, matching, image-level IoU, PQ and the rows of every pair;
- ``semantic``: class maps (label-map and panoptic exports only);
- ``alpha``: pixel alpha's counts (:func:`qa.analytics.alpha.alpha_image`);
- ``consensus``: :func:`qa.analytics.consensus.consensus_image`, of which ``consensus: boundary`` is the
  consensus outlines and every member's boundary figures against them;
- ``rules``: the default pack over the chunk (:func:`qa.rules.check._check_chunk`), and what
  :func:`qa.task.run_chunk` adds after the loop (objects' facts, the comparison's columns);

then the whole of :func:`qa.task.run_chunk` on the same chunks (the sum of the parts should be close to
it) and the baseline of :mod:`benchmarks.bench_run`: every object of the first ``--baseline-images``
images rasterised to a full-image mask with pycocotools. Each figure is the median over ``--repeat``
rounds; a round times the parts and ``run_chunk`` one after the other, so a change in the machine's
load reaches both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

from benchmarks._common import machine, rasterise_baseline, synth_batch, versions

PARTS = ("read", "rasterise", "outlines", "compare: boundary", "compare: category runs", "compare: rest",
         "semantic", "alpha", "consensus", "consensus: boundary", "rules")


class _Clock:
    """CPU seconds per named part."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, part: str, fn, *args, **kwargs):
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[part] += time.process_time() - t

    def wrap(self, part: str, fn):
        return lambda *args, **kwargs: self.timed(part, fn, *args, **kwargs)


def _parts(chunks, options, clock: _Clock) -> None:
    """:func:`qa.task.run_chunk` over ``chunks``, each part timed into ``clock`` (the same calls, in the
    same order)."""
    from qa.analytics import consensus as consensus_module
    from qa.engine._decoded import grouped_objects, image_labels
    from qa.engine.compare import _boundary_function, chunk_columns, comparable, compare_image

    cfg = options.compare
    codes = {c: k for k, c in enumerate(options.categories)}
    pair_names = list(cfg.pairs)
    outline_pairs = clock.wrap("compare: boundary", _boundary_function())
    score = consensus_module._Image._score_boundaries
    consensus_module._Image._score_boundaries = lambda *a, **k: clock.timed("consensus: boundary", score, *a, **k)
    try:
        for chunk in chunks:
            batch, grouped = clock.timed("read", lambda: (lambda b: (b, grouped_objects(b)))(chunk.load()))
            compared, decoded, intersections = [], {}, {}
            for position, key in enumerate(chunk.keys):
                if len(batch.coverage.get(key, ())) < 2:
                    continue
                labels = image_labels(batch, key, codes, options.max_pixels, grouped)
                decoded[key] = labels
                for d in labels.values():
                    clock.timed("rasterise", d.crops)
                    clock.timed("outlines", d.outlines)
                    clock.timed("compare: category runs", d.category_runs)
                both = comparable(labels)
                t = time.process_time()
                results = compare_image(both, cfg, outline_pairs)
                clock.seconds["compare: rest"] += time.process_time() - t
                compared.extend((position, code, res) for code, res in results)
                for code, res in results:
                    intersections[(key, *pair_names[code])] = res.pop("intersections")
                if options.semantic is not None:
                    from qa.engine.semantic import semantic_image, semantic_labels

                    t = time.process_time()
                    classes = semantic_labels(labels, options.semantic)
                    if len(classes) >= 2:
                        semantic_image(key, classes, options.semantic)
                    clock.seconds["semantic"] += time.process_time() - t
                if options.alpha is not None:
                    from qa.analytics.alpha import alpha_image

                    clock.timed("alpha", alpha_image, key, labels, options.alpha)
                if options.consensus is not None:
                    edges = consensus_module.edges_of(results, pair_names)
                    clock.timed("consensus", consensus_module.consensus_image, key, both, edges, options.consensus)
                for d in labels.values():
                    d.release_outlines()
            t = time.process_time()
            if options.pack is not None:
                from qa.rules.check import _check_chunk

                _check_chunk(batch, options.pack, decoded=decoded, intersections=intersections)
            from qa.analytics.boundaries import object_facts

            for export in batch.exports.values():
                object_facts(export.objects)
            chunk_columns(chunk.keys, compared)
            clock.seconds["rules"] += time.process_time() - t
    finally:
        consensus_module._Image._score_boundaries = score
    # the timed wrapper of compare_image's boundary call counted inside "compare: rest" too
    clock.seconds["compare: rest"] -= clock.seconds["compare: boundary"]
    clock.seconds["consensus"] -= clock.seconds["consensus: boundary"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", default="512x1024", help="HxW of the scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-images", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_run"))
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    manifest = synth_batch(args.folder / f"{args.images}-{h}x{w}-{args.seed}", args.images, (h, w), args.seed)

    import qa
    from qa.engine import _pool
    from qa.engine.chunks import chunks_of
    from qa.pipeline import _load
    from qa.rules.check import images_per_chunk
    from qa.rules.packs import read
    from qa.task import run_chunk, task_options

    batch = _load(manifest=manifest, streamed=True)[0]
    options = task_options(batch, pack=read("default"))
    keys = list(batch.images)
    size, _ = _pool.plan(len(keys), 2, None)
    chunks = list(chunks_of(batch, _pool.chunks(keys, min(size, images_per_chunk(batch)))))
    run_chunk(chunks[0], options)  # warm-up: the kernels compiled or loaded from the cache
    whole = qa.load(manifest=manifest)
    objects = sum(len(e.objects) for e in whole.exports.values())

    rounds: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeat):
        clock = _Clock()
        _parts(chunks, options, clock)
        for part in PARTS:
            rounds[part].append(clock.seconds.get(part, 0.0) / len(keys))
        rounds["(sum of the parts)"].append(sum(clock.seconds.values()) / len(keys))
        t = time.process_time()
        for chunk in chunks:
            run_chunk(chunk, options)
        rounds["run_chunk"].append((time.process_time() - t) / len(keys))
        rounds["baseline"].append(rasterise_baseline(whole, keys[:args.baseline_images])[1])

    base = statistics.median(rounds["baseline"])
    print(f"# {machine()}")
    print(f"# {versions()}")
    print(f"# {len(keys)} images at {h}x{w}, 3 annotators, {objects} objects; {len(chunks)} chunks; one process; "
          f"median of {args.repeat} rounds; CPU ms per image")
    print(f"{'part':<24} {'ms/image':>9} {'x baseline':>11}")
    for part in (*PARTS, "(sum of the parts)", "run_chunk", "baseline"):
        value = statistics.median(rounds[part])
        print(f"{part:<24} {1000 * value:9.1f} {value / base:11.2f}")


if __name__ == "__main__":
    main()
