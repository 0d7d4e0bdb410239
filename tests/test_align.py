"""Alignment: images by normalised file name (or base name), categories by name and alias."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from common import write_json

import qa
from qa.align import align, compile_aliases, resolve_category
from qa.errors import ConfigError
from qa.model import Category, Export, Image, Object, Source


def make_export(annotator, images, objects=(), categories=None):
    """An Export with ``images`` ``{key: (width, height)}`` and ``objects`` ``[(image, category)]``."""
    export = Export(annotator=annotator, path=Path(f"{annotator}.json"), format="coco")
    for key, (w, h) in images.items():
        export.images[key] = Image(key=key, file_name=key, width=w, height=h)
    names = categories if categories is not None else sorted({c for _, c in objects})
    export.categories = {n: Category(n) for n in names}
    for index, (image, category) in enumerate(objects):
        export.objects.append(Object(annotator=annotator, image=image, category=category, kind="polygon",
                                     source=Source(f"{annotator}.json", index, index + 1),
                                     polygons=(np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]]),)))
    return export


def codes(batch):
    return sorted(f.code for f in batch.findings)


def test_identical_exports_align_cleanly():
    a = make_export("alice", {"x.jpg": (8, 6), "y.jpg": (8, 6)}, [("x.jpg", "car")])
    b = make_export("bob", {"x.jpg": (8, 6), "y.jpg": (8, 6)}, [("y.jpg", "car")])
    batch = align([a, b])
    assert batch.annotators == ["alice", "bob"]
    assert batch.coverage == {"x.jpg": ("alice", "bob"), "y.jpg": ("alice", "bob")}
    assert batch.findings == []
    assert batch.by_image() == {"x.jpg": {"alice": [a.objects[0]], "bob": []},
                                "y.jpg": {"alice": [], "bob": [b.objects[0]]}}


def test_file_names_are_normalised_when_loaded(tmp_path):
    def doc(name):
        return {"images": [{"id": 1, "file_name": name, "width": 8, "height": 6}],
                "categories": [{"id": 1, "name": "car"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}]}
    a = write_json(tmp_path / "a.json", doc(".\\imgs\\caf\u00e9.jpg"))       # Windows separators, composed é
    b = write_json(tmp_path / "b.json", doc("imgs//./cafe\u0301.jpg"))         # doubled slash, decomposed é
    batch = qa.load(f"alice={a}", f"bob={b}")
    assert list(batch.images) == ["imgs/caf\u00e9.jpg"]
    assert batch.coverage["imgs/caf\u00e9.jpg"] == ("alice", "bob")
    assert batch.findings == []


def test_pairs_by_base_name_when_folders_differ():
    a = make_export("alice", {"task1/images/x.jpg": (8, 6), "task1/images/y.jpg": (8, 6)}, [("task1/images/x.jpg", "car")])
    b = make_export("bob", {"x.jpg": (8, 6), "y.jpg": (8, 6)}, [("x.jpg", "car")])
    batch = align([a, b])
    assert sorted(batch.images) == ["x.jpg", "y.jpg"]
    assert batch.coverage["x.jpg"] == ("alice", "bob")
    assert a.objects[0].image == "x.jpg"
    assert a.images["x.jpg"].file_name == "task1/images/x.jpg"  # the export's own name is kept
    assert batch.findings == []


def test_repeated_base_name_blocks_base_name_pairing():
    a = make_export("alice", {"a/x.jpg": (8, 6), "b/x.jpg": (8, 6), "a/y.jpg": (8, 6)})
    b = make_export("bob", {"x.jpg": (8, 6), "y.jpg": (8, 6)})
    batch = align([a, b])
    assert "ALN004" in codes(batch)
    [finding] = [f for f in batch.findings if f.code == "ALN004"]
    assert "'x.jpg' occurs 2 times in alice's export (a/x.jpg, b/x.jpg)" in finding.message
    assert sorted(batch.images) == ["a/x.jpg", "a/y.jpg", "b/x.jpg", "x.jpg", "y.jpg"]  # paired by full name
    assert codes(batch).count("ALN001") == 5


def test_same_full_names_never_fall_back_to_base_names():
    a = make_export("alice", {"a/x.jpg": (8, 6), "b/x.jpg": (8, 6)})
    b = make_export("bob", {"a/x.jpg": (8, 6), "b/x.jpg": (8, 6)})
    assert align([a, b]).findings == []


def test_missing_images_are_findings():
    a = make_export("alice", {"x.jpg": (8, 6), "y.jpg": (8, 6)})
    b = make_export("bob", {"x.jpg": (8, 6)})
    c = make_export("carol", {"x.jpg": (8, 6), "z.jpg": (8, 6)})
    batch = align([a, b, c])
    missing = {f.image: f.message for f in batch.findings if f.code == "ALN001"}
    assert missing == {"y.jpg": "image is not labelled by bob, carol", "z.jpg": "image is not labelled by alice, bob"}
    assert batch.coverage["y.jpg"] == ("alice",)


def test_size_disagreement_leaves_the_minority_out():
    a = make_export("alice", {"x.jpg": (8, 6)})
    b = make_export("bob", {"x.jpg": (8, 6)})
    c = make_export("carol", {"x.jpg": (6, 8)})
    batch = align([a, b, c])
    [finding] = batch.findings
    assert finding.code == "ALN002" and finding.severity == "error" and finding.image == "x.jpg"
    assert finding.annotator == "carol"
    assert finding.message == ("image sizes disagree: carol declares other sizes on 1 of 1 image, another aspect "
                               "ratio (a crop or another frame cannot be scaled); declare rescale for a resized "
                               "export: x.jpg 6x8 (frame 8x6); carol is left out of comparison on them")
    assert batch.coverage["x.jpg"] == ("alice", "bob")
    assert (batch.images["x.jpg"].width, batch.images["x.jpg"].height) == (8, 6)


def test_category_unknown_to_some_annotators():
    a = make_export("alice", {"x.jpg": (8, 6)}, [("x.jpg", "car"), ("x.jpg", "truck")])
    b = make_export("bob", {"x.jpg": (8, 6)}, [("x.jpg", "car")])
    batch = align([a, b])
    [finding] = batch.findings
    assert finding.code == "ALN003" and finding.severity == "warning"
    assert finding.message.startswith("category 'truck' is used by alice but not by bob")
    assert list(batch.categories) == ["car", "truck"]


def test_declared_categories():
    a = make_export("alice", {"x.jpg": (8, 6)}, [("x.jpg", "car"), ("x.jpg", "lorry")])
    batch = align([a], categories=["car", "truck"])
    [finding] = batch.findings
    assert finding.code == "ALN003"
    assert "category 'lorry' (from 'lorry'; 1 object) is not in the declared category list" in finding.message
    assert [o.category for o in batch.objects()] == ["car", "lorry"]  # kept, only reported


@pytest.mark.parametrize("pattern, raw, expected", [
    ("auto", "auto", "car"),                     # exact
    ("auto", "autos", "autos"),                  # exact means exact
    ("car_*", "car_1404", "car"),                # glob
    ("car_?", "car_12", "car_12"),
    ("re:^a?car_\\d+$", "acar_618", "car"),       # regex, matched against the whole name
    ("re:car", "scary", "scary"),
])
def test_alias_kinds(pattern, raw, expected):
    assert resolve_category(raw, compile_aliases({"car": [pattern]})) == expected


def test_exact_alias_wins_over_glob_and_glob_over_regex():
    compiled = compile_aliases({"bus": ["re:.*_1$"], "truck": ["car_*"], "car": ["car_1"]})
    assert resolve_category("car_1", compiled) == "car"
    assert resolve_category("car_2", compiled) == "truck"
    assert resolve_category("van_1", compiled) == "bus"


def test_aliases_merge_categories_and_are_reported():
    a = make_export("alice", {"x.jpg": (8, 6)}, [("x.jpg", "car"), ("x.jpg", "car_1404")])
    b = make_export("bob", {"x.jpg": (8, 6)}, [("x.jpg", "acar_618")])
    batch = align([a, b], aliases={"car": ["car_*", "re:^a?car_\\d+$"]})
    assert list(batch.categories) == ["car"]
    assert {o.category for o in batch.objects()} == {"car"}
    assert batch.aliases == {"acar_618": "car", "car_1404": "car"}
    assert batch.findings == []


@pytest.mark.parametrize("aliases, message", [
    ({"car": ["re:car_(\\d+"]}, "alias 're:car_(\\\\d+' for 'car' is not a valid regular expression"),
    ({"car": [3]}, "alias pattern for 'car' must be a string, got 3"),
])
def test_bad_alias_is_a_config_error(aliases, message):
    with pytest.raises(ConfigError) as info:
        align([make_export("alice", {"x.jpg": (8, 6)})], aliases=aliases)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_annotator_names():
    a = make_export("alice", {"x.jpg": (8, 6)})
    b = make_export("alice", {"x.jpg": (8, 6)})
    with pytest.raises(ConfigError, match="annotator 'alice' is given more than once"):
        align([a, b])


def test_loader_findings_carry_into_the_batch(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 8, "height": 6}],
           "categories": [{"id": 1, "name": "car"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "segmentation": [[0, 0, 4, 0, 4, 4]]}]}
    path = write_json(tmp_path / "a.json", doc)
    batch = qa.load(f"alice={path}")
    [finding] = batch.findings
    assert (finding.code, finding.annotator, finding.image) == ("FMT004", "alice", "x.jpg")


# --- categories declared but never used (the COCONut relabel of COCO image 139) -------------------------

COCO139 = "coco139_coconut_vs_coco"


def _coconut_panoptic(shared_data, tmp_path, keep=None):
    """The COCONut PNG and segments_info as a COCO panoptic export declaring COCO panoptic's 133 categories
    (or those ``keep`` selects)."""
    import json

    folder = shared_data / COCO139
    categories = json.loads((shared_data / "panopticapi_sample" / "panoptic_coco_categories.json").read_text())
    segments = json.loads((folder / "coconut_relabeled_val_000000000139_segments_info.json").read_text())
    if keep is not None:
        used = {s["category_id"] for s in segments}
        categories = [c for k, c in enumerate(categories) if c["id"] in used or keep(k)]
    doc = {"images": [{"id": 139, "file_name": "000000000139.jpg", "width": 640, "height": 426}],
           "categories": categories,
           "annotations": [{"image_id": 139, "file_name": "coconut_relabeled_val_000000000139.png",
                            "segments_info": segments}]}
    return write_json(tmp_path / "coconut.json", doc), folder


@pytest.mark.parametrize("keep", [None, lambda k: k % 2 == 0], ids=["133 categories", "trimmed list"])
def test_declared_only_categories_are_one_info_line_per_export(shared_data, tmp_path, keep):
    from qa.manifest import ExportSpec

    pan, png_dir = _coconut_panoptic(shared_data, tmp_path, keep)
    coco = ExportSpec("coco", shared_data / COCO139 / "coco_val2017_partial_000000000139.json")
    coconut = ExportSpec("coconut", pan, "coco_panoptic", {"png_dir": str(png_dir)})
    batch = qa.load(coco, coconut)
    used = {o.category for o in batch.objects("coconut")}
    aln003 = sorted(f.message.split("'")[1] for f in batch.findings if f.code == "ALN003")
    # a warning for each category with objects one annotator does not know: COCONut's (except person),
    # and COCO's potted plant when the trimmed list leaves it out; none for categories nobody used
    expected = sorted(used - {"person"})
    if "potted plant" not in batch.exports["coconut"].categories:
        expected = sorted(expected + ["potted plant"])
    assert aln003 == expected and len(aln003) < 30
    assert all(f.severity == "warning" for f in batch.findings if f.code == "ALN003")
    [info] = [f for f in batch.findings if f.code == "ALN005"]
    assert (info.severity, info.annotator) == ("info", "coconut")
    assert "and coco does not declare" in info.message and "take no part in the comparison" in info.message
    # a gate on warnings now counts the categories that can make objects fail to match, not 131 or 64
    n_declared_only = len(batch.exports["coconut"].categories) - len(used) - (
        "potted plant" in batch.exports["coconut"].categories)
    assert info.message.split(" declares ")[1].startswith(f"{n_declared_only} categories")
