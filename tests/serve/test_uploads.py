"""Checks on submitted batches: zips (names, links, bombs, sizes) and manifests under the roots."""

from __future__ import annotations

import stat
import zipfile

import pytest

from qa.serve.uploads import Limits, UploadError, batch_of, check_manifest, check_zip, extract, inside
from servekit import tiny_batch, zip_folder


def _zip(path, entries, *, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries:
            if isinstance(name, zipfile.ZipInfo):
                z.writestr(name, data)
            else:
                z.writestr(name, data)
    return path


@pytest.mark.parametrize("name, why", [
    ("../evil.json", "'..'"), ("a/../../evil.json", "'..'"), ("/etc/evil.json", "absolute"),
    ("C:/evil.json", "absolute"), ("a\\..\\evil.json", "backslash"),
])
def test_unsafe_names_are_refused(tmp_path, name, why):
    path = _zip(tmp_path / "x.zip", [(name, "{}")])
    with pytest.raises(UploadError, match=why):
        check_zip(path, Limits())
    with pytest.raises(UploadError):
        extract(path, tmp_path / "out", Limits())
    assert not (tmp_path / "evil.json").exists() and not (tmp_path / "out").exists()


def test_symbolic_links_and_special_files_are_refused(tmp_path):
    link = zipfile.ZipInfo("exports/alice.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = _zip(tmp_path / "link.zip", [(link, "/etc/passwd")])
    with pytest.raises(UploadError, match="symbolic link"):
        check_zip(path, Limits())
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    with pytest.raises(UploadError, match="only files and folders"):
        check_zip(_zip(tmp_path / "fifo.zip", [(fifo, "")]), Limits())


def test_bombs_and_sizes_are_refused(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", [("a.json", b"\0" * (8 * 2**20))])
    with pytest.raises(UploadError, match="decompression bomb") as err:
        check_zip(bomb, Limits())
    assert err.value.status == 413
    with pytest.raises(UploadError, match="unpacks to more than"):
        check_zip(_zip(tmp_path / "big.zip", [("a.bin", b"x" * 1000), ("b.bin", b"y" * 1000)],
                       compression=zipfile.ZIP_STORED), Limits(unpacked_bytes=1500))
    many = _zip(tmp_path / "many.zip", [(f"f{i}.json", "") for i in range(12)])
    with pytest.raises(UploadError, match="12 entries, more than 10"):
        check_zip(many, Limits(entries=10))
    with pytest.raises(UploadError, match="not a zip"):
        check_zip(tmp_path.joinpath("no.zip").write_bytes(b"nope") and tmp_path / "no.zip", Limits())


def test_a_zip_of_exports_or_of_a_batch_folder(tmp_path):
    plain = _zip(tmp_path / "plain.zip", [("alice.json", "{}"), ("bob.json", "{}"), ("__MACOSX/x", ""),
                                          (".hidden", "")])
    found = batch_of(extract(plain, tmp_path / "plain", Limits()))
    assert [p.rsplit("/", 1)[-1] for p in found["exports"]] == ["alice.json", "bob.json"]
    nested = zip_folder(tiny_batch(tmp_path / "src" / "batch7"), tmp_path / "nested.zip")
    with zipfile.ZipFile(nested) as z:
        assert "batch.toml" in z.namelist()
    found = batch_of(extract(nested, tmp_path / "nested", Limits()))
    assert found == {"manifest": str(tmp_path / "nested" / "batch.toml")}
    escaping = _zip(tmp_path / "esc.zip", [("batch.toml", '[[exports]]\nannotator = "a"\npath = "/etc/passwd"\n')])
    with pytest.raises(UploadError, match="outside the server's roots"):
        batch_of(extract(escaping, tmp_path / "esc", Limits()))
    with pytest.raises(UploadError, match="no export"):
        batch_of(extract(_zip(tmp_path / "empty.zip", [("__MACOSX/x", "")]), tmp_path / "empty", Limits()))


def test_manifests_and_their_paths_must_lie_under_the_roots(tmp_path):
    root = tmp_path / "root"
    batch = tiny_batch(root / "b")
    assert check_manifest(str(batch / "batch.toml"), [root]) == (batch / "batch.toml").resolve()
    with pytest.raises(UploadError, match="reads no manifest paths") as err:
        check_manifest(str(batch / "batch.toml"), [])
    assert err.value.status == 403
    with pytest.raises(UploadError, match="absolute path"):
        check_manifest("b/batch.toml", [root])
    (root / "out").symlink_to(tmp_path)
    assert not inside(root / "out" / "x", [root])
    options = root / "opts"
    options.mkdir()
    (options / "batch.toml").write_text('[[exports]]\nannotator = "a"\npath = "a.json"\n'
                                        f'options = {{ png_dir = "{tmp_path}" }}\n')
    with pytest.raises(UploadError, match=r"exports\[0\].options.png_dir"):
        check_manifest(str(options / "batch.toml"), [root])
    with pytest.raises(UploadError, match="no such manifest"):
        check_manifest(str(root / "missing.toml"), [root])
    remote = root / "remote"  # a manifest under the roots naming exports behind URLs: refused, not fetched
    remote.mkdir()
    for url in ("s3://bucket/a.json", "file:///etc/passwd", "http://127.0.0.1:1/a.json"):
        (remote / "batch.toml").write_text(f'[[exports]]\nannotator = "a"\npath = "{url}"\n')
        with pytest.raises(UploadError, match=r"exports\[0\].path") as err:
            check_manifest(str(remote / "batch.toml"), [root])
        assert err.value.status == 403
