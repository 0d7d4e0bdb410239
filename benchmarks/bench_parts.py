"""Reading a run's Parquet parts: ``qa.parts.read_frame`` (one file) against ``pandas.read_parquet`` (a dataset).

``.venv/bin/python -m benchmarks.bench_parts [--images 60] [--repeat 5]``

Setup (not timed): ``qa synth`` writes a batch of ``--images`` images (three annotators, 128x256), and a
run with one image per chunk keeps its ``object_pairs`` in a part per image, as a run whose chunks are
small does. Timed, best of ``--repeat``: every part read a column at a time, the figure columns the
boundary stage and the aggregates read, once with ``pandas.read_parquet(path, engine="pyarrow",
columns=[c])`` (the baseline) and once with ``qa.parts.read_frame(path, [c])``, in this process. Both
readers' frames are checked equal before a figure is printed. The same at Arrow's level, as the engine's
spilled figures read their parts: ``pyarrow.parquet.read_table`` against ``qa.parts.read_table``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks._common import machine, versions

COLUMNS = ["status", "annotator_a", "annotator_b", "category_a", "category_b", "image", "iou", "boundary_iou",
           "boundary_f_2px", "signed_offset", "area_a", "area_b"]


def _parted_table(folder: Path, images: int):
    """The ``object_pairs`` parts of a run of a synth batch, one image per part."""
    import qa
    from qa.engine import _pool, tables
    from qa.synth import synthesize

    synthesize(folder / "batch", images=images, size=(128, 256), annotators=3, seed=3, workers=1)
    spill, chunk = tables._SPILL_ROWS, _pool.CHUNK_MAX
    tables._SPILL_ROWS, _pool.CHUNK_MAX = 1, 1
    try:
        run = qa.run(manifest=folder / "batch" / "batch.toml", workers=1, store=False, analytics=False)
    finally:
        tables._SPILL_ROWS, _pool.CHUNK_MAX = spill, chunk
    return run, run.comparison.object_parts()


def _read_all(paths, read) -> float:
    start = time.perf_counter()
    for path in paths:
        for column in COLUMNS:
            read(path, [column])
    return time.perf_counter() - start


def main(argv=None) -> None:
    import pandas as pd

    from qa.parts import read_frame, read_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import pyarrow.parquet as pq

    def baseline(path, columns):
        return pd.read_parquet(path, engine="pyarrow", columns=columns)

    def arrow_dataset(path, columns):  # as the engine's spilled figures read their parts before
        return pq.read_table(path, columns=columns)

    arrow_file = read_table  # as they read them now (qa.engine.tables)

    with tempfile.TemporaryDirectory() as tmp:
        run, parts = _parted_table(Path(tmp), args.images)
        paths = parts.paths
        for path in paths:  # the same frames, or no figure
            pd.testing.assert_frame_equal(read_frame(path, COLUMNS), baseline(path, COLUMNS), check_exact=True)
        rows = len(parts)
        old = min(_read_all(paths, baseline) for _ in range(args.repeat))
        new = min(_read_all(paths, read_frame) for _ in range(args.repeat))
        for path in paths:
            assert arrow_file(path, COLUMNS).equals(arrow_dataset(path, COLUMNS))
        old_arrow = min(_read_all(paths, arrow_dataset) for _ in range(args.repeat))
        new_arrow = min(_read_all(paths, arrow_file) for _ in range(args.repeat))
    reads = len(paths) * len(COLUMNS)
    print(f"# {machine()}")
    print(f"# {versions()}")
    print(f"# {len(paths)} parts ({rows} rows of object_pairs), each read one column at a time: {reads} reads; "
          f"best of {args.repeat}")
    print(f"{'reader':>22} {'s':>7} {'ms/read':>8}")
    print(f"{'pandas.read_parquet':>22} {old:7.3f} {1000 * old / reads:8.3f}")
    print(f"{'qa.parts.read_frame':>22} {new:7.3f} {1000 * new / reads:8.3f}")
    print(f"{'pyarrow read_table':>22} {old_arrow:7.3f} {1000 * old_arrow / reads:8.3f}")
    print(f"{'ParquetFile.read':>22} {new_arrow:7.3f} {1000 * new_arrow / reads:8.3f}")
    print(f"read_frame / read_parquet: {new / old:.2f}; ParquetFile.read / read_table: {new_arrow / old_arrow:.2f}")


if __name__ == "__main__":
    main()
