"""How the command line reads exports: --input-format, the binary-mask options, and consensus's --alias."""

from __future__ import annotations

import json

import numpy as np
import pytest
from common import run_cli, write_json
from PIL import Image as PILImage

from qa.cli import INPUT_FORMATS, build_parser

BUBIL = "bu_bil_dataset1/ExpertsAnnotations"


@pytest.mark.parametrize("command", ["run", "check", "consensus"])
def test_input_format_help_names_every_format(command, capsys):
    from qa.formats import FORMATS

    assert set(INPUT_FORMATS) == set(FORMATS)
    code, out, _ = run_cli([command, "--help"], capsys)
    help_text = " ".join(out.split())
    assert code == 0 and "--foreground" in help_text and "--threshold" in help_text
    for name in FORMATS:  # binary_masks and labelmap were left out of run's help
        assert name in help_text


@pytest.mark.shared_data
def test_a_forced_inverted_polarity_is_said_once_per_export_with_the_fix(shared_data, capsys):
    folder = shared_data / BUBIL
    args = ["check", f"p1={folder / 'Person1_Amira'}", f"p4={folder / 'Person4_ImageJ'}", "--select", "FMT"]
    code, out, err = run_cli([*args, "--foreground", "white"], capsys)
    lines = [ln for ln in out.splitlines() if " FMT022 " in ln]
    assert code == 0 and len(lines) == 2 and all("set foreground = 'black'" in ln for ln in lines)
    assert "[p1] FMT022 foreground = 'white' looks inverted: white covers more than half of the image on 35 of 35" \
        in lines[0]
    code, out, _ = run_cli([*args, "--foreground", "black"], capsys)
    assert code == 0 and " FMT02" not in out  # forced and right: neither sniffed (FMT021) nor doubted
    code, out, _ = run_cli(args, capsys)
    assert out.count(" FMT021 foreground taken as black") == 2 and " FMT022 " not in out


def _grey_masks(folder, level):
    """Two 20 x 30 grey masks: a square of grey ``level`` on black."""
    folder.mkdir(parents=True)
    for k in range(2):
        a = np.zeros((20, 30), np.uint8)
        a[5:15, 5 + k:15 + k] = level
        PILImage.fromarray(a, "L").save(folder / f"img{k}.png")
    return folder


def test_threshold_on_the_command_line_reaches_the_masks(tmp_path, capsys):
    a = _grey_masks(tmp_path / "a", 100)  # 100 of 255: background at the default threshold 0.5
    b = _grey_masks(tmp_path / "b", 100)
    args = ["run", f"a={a}", f"b={b}", "--input-format", "binary_masks", "--no-store", "--no-report",
            "--format", "json", "--foreground", "white"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and [r["objects"] for r in json.loads(out)["annotators"]] == [0, 0]
    code, out, _ = run_cli([*args, "--threshold", "0.3"], capsys)
    summary = json.loads(out)
    assert code == 0 and [r["objects"] for r in summary["annotators"]] == [2, 2]
    assert summary["pairs"][0]["matched"] == 2


def test_mask_options_without_a_mask_export_and_a_bad_threshold_are_errors(tmp_path, capsys):
    doc = {"images": [{"id": 1, "file_name": "x.png", "width": 8, "height": 6}],
           "categories": [{"id": 1, "name": "car"}], "annotations": []}
    path = write_json(tmp_path / "a.json", doc)
    code, out, err = run_cli(["check", f"a={path}", "--foreground", "black"], capsys)
    assert code == 2 and out == "" and "no export was read as binary_masks (formats: coco)" in err
    code, _, err = run_cli(["check", f"a={path}", "--threshold", "2"], capsys)
    assert code == 2 and "--threshold must lie between 0 and 1" in err


def test_consensus_takes_aliases(tmp_path, capsys):
    def doc(name):
        return {"images": [{"id": 1, "file_name": "x.png", "width": 40, "height": 40}],
                "categories": [{"id": 1, "name": name}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                 "segmentation": [[5, 5, 30, 5, 30, 30, 5, 30]]}]}
    paths = [write_json(tmp_path / f"{n}.json", doc(c)) for n, c in (("a", "car"), ("b", "car"), ("c", "auto"))]
    exports = [f"{n}={p}" for n, p in zip("abc", paths)]
    code, out, _ = run_cli(["consensus", *exports, "--format", "json"], capsys)
    assert code == 0 and {r["annotator"]: r["label_disagreements"] for r in json.loads(out)["annotators"]}["c"] == 1
    code, out, _ = run_cli(["consensus", *exports, "--alias", "car=auto", "--format", "json"], capsys)
    rows = {r["annotator"]: r for r in json.loads(out)["annotators"]}
    assert code == 0 and rows["c"]["label_disagreements"] == 0 and rows["c"]["matched"] == 1


def test_parser_builds_without_importing_the_readers():
    import subprocess
    import sys

    probe = "import sys, qa.cli; qa.cli.build_parser(); print('qa.formats' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
    assert build_parser() is not None
