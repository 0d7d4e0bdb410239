"""Small inputs for the store and gate tests: tiny COCO exports, runs with engine tables attached."""

from __future__ import annotations

import json
import types
from pathlib import Path


def write_coco(path: Path, boxes, *, images=("a.png", "b.png"), size=(32, 32), unknown_category=0) -> Path:
    """A COCO instances export with one square polygon per ``(image index, category, x, y, side)``.

    ``unknown_category`` extra annotations refer to a category the file does not define (each becomes
    an FMT004 finding, severity error).
    """
    cats = sorted({b[1] for b in boxes} | {"cat"})
    cat_id = {name: i + 1 for i, name in enumerate(cats)}
    anns = []
    for i, (img, cat, x, y, side) in enumerate(boxes):
        poly = [x, y, x + side, y, x + side, y + side, x, y + side]
        anns.append({"id": 100 + i, "image_id": img + 1, "category_id": cat_id[cat], "segmentation": [poly],
                     "area": float(side * side), "bbox": [x, y, side, side], "iscrowd": 0,
                     "attributes": {"occluded": i % 2 == 1, "z_order": i}})
    for j in range(unknown_category):
        anns.append({"id": 900 + j, "image_id": 1, "category_id": 99, "segmentation": [[1, 1, 5, 1, 5, 5]],
                     "area": 8.0, "bbox": [1, 1, 4, 4], "iscrowd": 0})
    doc = {
        "images": [{"id": i + 1, "file_name": name, "width": size[1], "height": size[0]}
                   for i, name in enumerate(images)],
        "categories": [{"id": cat_id[c], "name": c} for c in cats],
        "annotations": anns,
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def two_exports(folder: Path, *, bob_unknown=0, bob_shift=0):
    """alice.json and bob.json: three objects each on two images, bob optionally shifted or with errors."""
    alice = write_coco(folder / "alice.json", [(0, "cat", 2, 2, 10), (0, "dog", 15, 15, 8), (1, "cat", 4, 4, 12)])
    bob = write_coco(folder / "bob.json", [(0, "cat", 2 + bob_shift, 2, 10), (0, "dog", 15, 15, 8),
                                           (1, "cat", 4, 4, 12)], unknown_category=bob_unknown)
    return alice, bob


def score_rows(**figures):
    """Score rows from ``metric=value`` (batch) or ``metric__scope__key=value`` keywords."""
    rows = []
    for name, value in figures.items():
        metric, _, rest = name.partition("__")
        scope, _, key = rest.partition("__")
        rows.append({"scope": scope or "batch", "key": key.replace("_vs_", "|"), "metric": metric,
                     "value": value, "n": 10})
    return rows


def with_comparison(run, *, scores=None, object_pairs=None, image_pairs=None, boundary=None):
    """A run whose comparison tables are replaced by the given rows (a hand-made ``comparison``)."""
    import pandas as pd

    fields = {name: getattr(run, name) for name in run.__dataclass_fields__}
    comparison = types.SimpleNamespace(
        scores=pd.DataFrame(scores) if scores is not None else None,
        object_pairs=pd.DataFrame(object_pairs) if object_pairs is not None else None,
        image_pairs=pd.DataFrame(image_pairs) if image_pairs is not None else None,
        boundary_disagreement=pd.DataFrame(boundary) if boundary is not None else None,
    )
    # the run's boundary analysis came from the replaced comparison: drop it with the comparison
    fields.update(comparison=comparison, scores=comparison.scores, boundary_disagreement=None)
    return types.SimpleNamespace(**fields)


SCHEMA_5_KEYS = {"objects": "run_id, annotator, object_index", "findings": "run_id, finding_index",
                 "review_queue": "run_id, rank"}
"""The primary keys schema 6 dropped."""

SCHEMA_6_KEYS = {"images": "run_id, image", "image_pair_scores": "run_id, image, annotator_a, annotator_b",
                 "scores": "run_id, scope, key, metric"}
"""The primary keys schema 7 dropped."""


def _with_keys(con, keys: dict) -> None:
    """Give each table of ``keys`` its primary key back (made again, the rows kept in order)."""
    from qa.store import _table_columns

    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    for table, key in keys.items():
        if table not in tables:  # review_queue came with schema 2
            continue
        columns = ", ".join(f'"{c}"' for c in _table_columns(table))
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
        ddl = con.execute(f"SELECT sql FROM duckdb_tables() WHERE table_name = '{table}_old'").fetchone()[0]
        ddl = ddl.replace(f"{table}_old", table, 1).rstrip().rstrip(";").rstrip()
        assert ddl.endswith(")")
        con.execute(ddl[:-1] + f", PRIMARY KEY ({key}))")
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_old")
        con.execute(f"DROP TABLE {table}_old")


def _back_to(con, version: int) -> None:
    """Record the store as schema ``version`` left it (the next version's row replaced)."""
    if con.execute("SELECT count(*) FROM qa_schema WHERE schema_version = ?", [version + 1]).fetchone()[0]:
        con.execute("DELETE FROM qa_schema WHERE schema_version = ?", [version + 1])
        con.execute("INSERT INTO qa_schema VALUES ('annotation-qa', ?, '0.1.0', now()::TIMESTAMP)", [version])


def drop_schema_7(con) -> None:
    """Make a store (a raw duckdb connection) look as schema 6 left it: images, image pair scores and scores
    with their primary keys (the rows kept)."""
    _with_keys(con, SCHEMA_6_KEYS)
    _back_to(con, 6)


def drop_schema_6(con) -> None:
    """Make a store (a raw duckdb connection) look as schema 5 left it: objects, findings and the review
    queue with their primary keys too (the rows kept)."""
    drop_schema_7(con)
    _with_keys(con, SCHEMA_5_KEYS)
    _back_to(con, 5)


def drop_schema_5(con) -> None:
    """Make a store (a raw duckdb connection) look as schema 4 left it: without ``attribute_confusion``."""
    drop_schema_6(con)
    con.execute("DROP TABLE IF EXISTS attribute_confusion")
    _back_to(con, 4)


def drop_schema_4(con) -> None:
    """Make a store (a raw duckdb connection) look as schema 3 left it: without the columns schema 4 added."""
    from qa.store import SCHEMA_4_COLUMNS

    drop_schema_5(con)
    for table, columns in SCHEMA_4_COLUMNS.items():
        for column, _ in columns:
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    _back_to(con, 3)
