"""The whole comparison of one image pair vs decoding its two PNG inputs; peak memory vs batch size.

Run: ``.venv/bin/python -m benchmarks.bench_compare [--scenes N] [--sizes 100,1000,10000]``

1. Time per image pair, on ``qa synth`` 1024x2048 street scenes with three annotators
   (``benchmarks/_scenes.py``), exported both as COCO panoptic and as COCO instances:

   - panoptic (about 35 to 40 segments): everything the engine computes for an image pair from the two decoded
     id maps (pair-area count, PQ, all-pairs IoU, matching, boundary metrics of every matched pair when
     ``qa.engine.boundary`` is installed), against decoding the pair's two panoptic PNGs
     (``qa.formats.coco_panoptic.read_id_map``: PNG decode and RGB to id);
   - instance (the same scenes' objects as overlapping COCO polygons): rasterising both annotators'
     polygons into crops plus everything above except PQ, against decoding the same two annotators'
     1024x2048 panoptic PNGs of that scene;
   - label map (the same scenes as single-channel label-map PNGs, compared by
     ``qa.engine.semantic``): building the three annotators' class maps from the loaded batch, class IoU
     and boundary F of every class, category interfaces and their displacement, for all three pairs of
     the image, divided by three; against decoding the pair's two label-map PNGs as the loader does.

2. Peak memory against batch size: ``compare_batch`` on batches of 100 to 10,000 images (three panoptic
   annotators, ``qa synth`` scenes at 256x512, the PNGs of 8 distinct scenes reused by building the
   batch in memory), each batch in a fresh subprocess, with the result tables held in memory or spilled
   to Parquet parts (``compare_batch(..., spill_dir=...)``). Serial runs report the process's peak RSS
   (``resource.getrusage``); parallel runs
   (two workers) the largest sum of RSS over the process tree, sampled every 20 ms from ``/proc``. The
   batch itself (the model objects) and the result tables grow with the batch; the working memory of the
   comparison ("working MB": the main process's peak minus its size after loading minus the tables) is
   what is left.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine, timed, versions
from benchmarks._scenes import label_map_batch, synth_batches


# --- 1. time per image pair ---------------------------------------------------------------------------

def _config():
    from qa.engine.compare import _boundary_function, _Config

    boundary = _boundary_function()
    return _Config(pairs={}, tolerances=(1, 2, 4), iou_threshold=0.5, max_pixels=10 ** 8,
                   boundary=boundary is not None), boundary


def _entries(batch):
    """``{image: {annotator: entry}}`` as the engine sends them to its workers."""
    from qa.engine.compare import _tasks

    codes = {name: k for k, name in enumerate(batch.categories)}
    return {t.image: {e.annotator: e for e in t.entries} for t in _tasks(batch, codes)}


def time_image_pairs(n_scenes: int, repeat: int) -> dict:
    from qa.engine.compare import _compare_pair, _Decoded, _image_iou
    from qa.formats.coco_panoptic import read_id_map
    from qa.model import Limits

    cfg, boundary = _config()
    limits = Limits()
    rows = {"panoptic": [], "instance": [], "labelmap": []}
    with tempfile.TemporaryDirectory() as tmp:
        instances, panoptic = synth_batches(tmp, images=n_scenes, label_maps=True)
        rows["labelmap"] = _time_label_maps(label_map_batch(tmp), Path(tmp) / "labelmap", limits, repeat)
        pan_entries, inst_entries = _entries(panoptic), _entries(instances)
        names = sorted(panoptic.annotators)
        for image, image_info in panoptic.images.items():
            h, w = image_info.height, image_info.width
            decoded = {n: _Decoded(pan_entries[image][n], h, w, cfg.max_pixels) for n in names}
            for i, j in ((0, 1), (0, 2), (1, 2)):
                a, b = decoded[names[i]], decoded[names[j]]
                png_a, png_b = Path(a.entry.png), Path(b.entry.png)

                def compare(a=a, b=b):
                    for d in (a, b):  # no cached boxes, crops or outlines from the previous call
                        d._boxes = None
                        d._crops = None
                        d._outlines = None
                        d._category_runs = None
                    return _compare_pair(a, b, cfg, boundary)

                def decode(png_a=png_a, png_b=png_b):
                    read_id_map(png_a, limits)
                    read_id_map(png_b, limits)

                def compare_instance(ea=inst_entries[image][names[i]], eb=inst_entries[image][names[j]]):
                    return _compare_pair(_Decoded(ea, h, w, cfg.max_pixels), _Decoded(eb, h, w, cfg.max_pixels),
                                         cfg, boundary)

                def image_iou(ea=inst_entries[image][names[i]], eb=inst_entries[image][names[j]]):
                    from qa.engine._kernels_iou import _run_intersections

                    da, db = _Decoded(ea, h, w, cfg.max_pixels), _Decoded(eb, h, w, cfg.max_pixels)
                    inter, area_a, area_b = _run_intersections(*da.outlines().runs, *db.outlines().runs)
                    start = time.perf_counter()
                    _image_iou(da, db, inter, area_a, area_b)
                    return time.perf_counter() - start

                compare()
                compare_instance()
                rows.setdefault("image_iou", []).append(float(np.median([image_iou() for _ in range(repeat)])))
                t_decode = timed(decode, repeat=repeat)
                rows["panoptic"].append((timed(compare, repeat=repeat), t_decode, len(a.entry.geometry)))
                rows["instance"].append((timed(compare_instance, repeat=repeat), t_decode,
                                         len(inst_entries[image][names[i]].geometry)))
    return rows


def _time_label_maps(batch, folder: Path, limits, repeat: int) -> list:
    """``(engine s per pair, decode s of two PNGs, classes per annotator)`` per image pair of a label-map
    batch; the engine compares an image's three annotators at once, so a pair is a third of it."""
    from qa.engine.semantic import _compare_image, _Config, _tasks, category_codes
    from qa.formats.labelmap import decode_png

    names = category_codes(batch)
    cfg = _Config(n=len(names), names=names, tolerances=(1.0, 2.0, 4.0), max_pixels=limits.max_pixels)
    rows = []
    for task in _tasks(batch, {c: k for k, c in enumerate(names)}):
        pngs = {e.annotator: folder / e.annotator / f"{Path(task.image).stem}.png" for e in task.entries}
        _compare_image(task, cfg)
        t_image = timed(lambda task=task: _compare_image(task, cfg), repeat=repeat)
        classes = np.mean([len(e.classes) for e in task.entries])
        for a, b in itertools.combinations(sorted(pngs), 2):
            t_decode = timed(lambda a=pngs[a], b=pngs[b]: (decode_png(a, limits), decode_png(b, limits)),
                             repeat=repeat)
            rows.append((t_image / 3, t_decode, classes))
    return rows


# --- 2. peak memory against batch size ----------------------------------------------------------------

def _memory_batch(n_images: int, folder: Path, distinct: int = 8):
    """A batch of ``n_images`` images and three panoptic annotators, built in memory from the exports of
    ``distinct`` synthetic scenes (their PNGs are reused)."""
    from dataclasses import replace

    from qa.align import align
    from qa.model import Export

    source = folder / "scenes"
    if not (source / "batch_panoptic.toml").exists():
        synth_batches(source, images=distinct, size=(256, 512), seed=1)
    import qa

    base = qa.load(manifest=source / "batch_panoptic.toml")
    keys = list(base.images)
    exports = []
    ids = itertools.count(1)
    for name in sorted(base.annotators):
        old = base.exports[name]
        export = Export(annotator=name, path=old.path, format=old.format, categories=dict(old.categories))
        by_image = {k: old_objects for k, old_objects in ((k, base.objects(name, k)) for k in keys)}
        for i in range(n_images):
            key = keys[i % len(keys)]
            new_key = f"img{i:06d}.jpg"
            export.images[new_key] = replace(old.images[key], key=new_key, file_name=new_key)
            export.id_maps[new_key] = old.id_maps[key]
            # a distinct id per object, as in a real export (the engine keeps no batch-wide table of them)
            export.objects.extend(replace(o, image=new_key, source=replace(o.source, id=next(ids)))
                                  for o in by_image[key])
        exports.append(export)
    return align(exports)


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_child(n_images: int, workers: int, folder: str, spill: bool = False) -> None:
    """Run in a subprocess: build the batch, compare it (holding the tables, or spilling them to Parquet
    parts), print peak figures as JSON."""
    import os
    import resource
    import threading

    from qa.engine.compare import compare_batch

    import pandas  # noqa: F401  (libraries and compiled kernels count as loaded, not as working memory)
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import qa.engine._preload  # noqa: F401

    t0 = time.perf_counter()
    batch = _memory_batch(n_images, Path(folder))
    after_load = _rss_kb(os.getpid())
    peak_tree = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak_tree[0] = max(peak_tree[0], sum(_rss_kb(p) for p in _tree(os.getpid())))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    spill_dir = Path(folder) / f"spill-{n_images}-{workers}" if spill else None
    t1 = time.perf_counter()
    comparison = compare_batch(batch, workers=workers, spill_dir=spill_dir)
    t2 = time.perf_counter()
    stop.set()
    sampler.join()
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if spill:  # the tables are on disk: what the comparison held is the scores table
        tables = int(comparison.scores.memory_usage(deep=True).sum())
        disk = sum(p.stat().st_size for p in spill_dir.rglob("*.parquet"))
        rows = int(comparison.scores.query("scope == 'batch' and metric in ('matched', 'missing', 'extra', "
                                           "'ignored')")["value"].sum())
    else:
        tables = sum(int(getattr(comparison, name).memory_usage(deep=True).sum())
                     for name in ("object_pairs", "image_pairs", "scores"))
        disk = 0
        rows = len(comparison.object_pairs)
    print(json.dumps({
        "images": n_images, "workers": workers, "spill": spill, "rows": rows, "disk_mb": disk / 2 ** 20,
        "after_load_mb": after_load / 1024,
        "peak_self_mb": peak_self,
        "peak_tree_mb": peak_tree[0] / 1024,
        "tables_mb": tables / 2 ** 20,
        "load_s": t1 - t0, "compare_s": t2 - t1,
    }))


def memory_runs(sizes: list[int], workers_list: list[int], modes: list[str]) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            for workers in workers_list:
                for n in sizes:
                    cmd = [sys.executable, "-m", "benchmarks.bench_compare", "--memory-child", str(n),
                           "--workers", str(workers), "--folder", folder]
                    out = subprocess.run(cmd + (["--spill-child"] if mode == "spill" else []),
                                         check=True, capture_output=True, text=True)
                    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print("  " + json.dumps(results[-1]), file=sys.stderr)
    return results


# --- report -------------------------------------------------------------------------------------------

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--memory-workers", default="1,2")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--modes", default="memory,spill",
                        help="memory: tables held in memory; spill: compare_batch(spill_dir=...) (default both)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spill-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.workers, args.folder, spill=args.spill_child)
        return

    _, boundary = _config()
    rows = {} if args.skip_timing else time_image_pairs(args.scenes, args.repeat)
    if rows:
        print("All metrics for one image pair vs decoding its two PNG inputs (qa synth, 1024x2048, three annotators)")
    if rows and boundary is None:
        print("  (qa.engine.boundary is not installed: boundary metrics are NOT included in the engine times)")
    image_iou = rows.pop("image_iou", None)
    for kind, values in rows.items():
        ours = np.median([v[0] for v in values])
        decode = np.median([v[1] for v in values])
        objects = np.mean([v[2] for v in values])
        print(f"  {kind:8s} ({objects:.0f} objects per annotator, {len(values)} image pairs): "
              f"engine {ours * 1e3:7.2f} ms, decode two PNGs {decode * 1e3:7.2f} ms, "
              f"engine / decode = {ours / decode:.2f}")
    if image_iou:
        share = np.median(image_iou) / np.median([v[0] for v in rows["instance"]])
        print(f"  of which image-level IoU (instance pair: each category's objects merged, then intersected): "
              f"{np.median(image_iou) * 1e3:.2f} ms, {share:.1%} of the instance engine time")
    if not args.skip_memory:
        sizes = [int(s) for s in args.sizes.split(",")]
        workers_list = [int(w) for w in args.memory_workers.split(",")]
        modes = [m for m in args.modes.split(",") if m]
        print("Peak memory against batch size (qa synth scenes at 256x512, panoptic, three annotators)")
        print("  mode    images  workers  object rows  after load MB  tables MB  peak MB (main process)  working MB"
              "  peak MB (all processes)  Parquet MB  compare s")
        for r in memory_runs(sizes, workers_list, modes):
            working = r["peak_self_mb"] - r["after_load_mb"] - r["tables_mb"]
            mode = "spill" if r["spill"] else "memory"
            print(f"  {mode:6s}  {r['images']:6d}  {r['workers']:7d}  {r['rows']:11d}  {r['after_load_mb']:12.0f}  "
                  f"{r['tables_mb']:9.1f}  {r['peak_self_mb']:22.0f}  {working:10.0f}  {r['peak_tree_mb']:23.0f}"
                  f"  {r['disk_mb']:10.1f}  {r['compare_s']:9.1f}")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")


if __name__ == "__main__":
    main()
