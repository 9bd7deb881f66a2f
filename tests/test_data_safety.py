"""Datasets are never lost or silently replaced: generate refuses to overwrite and checks its
arguments first, a download whose archive lacks the expected files keeps the archive, unpublished
archives are pinned at the first verified download, and damaged files are refused before any
large allocation, one dataset at a time."""

from __future__ import annotations

import dataclasses
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest

from fpt import data
from fpt.cli import main
from fpt.data import catalog, cifar, idx, listops
from fpt.data.fetch import TOFU_FILE, content_hash, recorded_downloads
from fpt.errors import FPTError
from tests.datafiles import write_listops, write_mnist
from tests.test_data_registry import _Server


def _snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_generate_refuses_to_replace_and_checks_sizes_first(tmp_path, capsys):
    root = tmp_path / "data"
    small = ["--train", "4", "--val", "2", "--test", "2"]
    for bad in (["--train", "0"], ["--val", "-1"], ["--test", "10000000"]):
        assert main(["data", "generate", "listops", "--data-dir", str(root), *bad]) == 2
        assert "Nothing was written" in capsys.readouterr().err
    assert not root.exists()
    assert main(["data", "generate", "listops", "--data-dir", str(root), *small]) == 0
    before = _snapshot(root)
    assert main(["data", "generate", "listops", "--data-dir", str(root), *small, "--seed", "1"]) == 2
    assert "--force" in capsys.readouterr().err and _snapshot(root) == before
    assert main(["data", "generate", "listops", "--data-dir", str(root), *small, "--seed", "1", "--force"]) == 0
    assert _snapshot(root) != before and sorted(p.name for p in root.iterdir()) == ["listops"]


def _listops_archive(tmp_path, names):
    source = write_listops(tmp_path / "source")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names:
            tar.add(source / name, arcname=f"lra_release/listops-1000/{name}")
    return buffer.getvalue()


def _serve_listops(monkeypatch, server):
    entry = catalog.DATASETS["listops"]
    download = dataclasses.replace(entry.downloads[0], url=server.url + "lra_release.gz")
    monkeypatch.setitem(catalog.DATASETS, "listops", dataclasses.replace(entry, downloads=(download,)))


def test_download_keeps_an_archive_missing_expected_files(tmp_path, monkeypatch):
    server = _Server({"lra_release.gz": _listops_archive(tmp_path, ["basic_train.tsv"])})
    _serve_listops(monkeypatch, server)
    try:
        with pytest.raises(FPTError, match="basic_val.tsv") as err:
            data.download("listops", tmp_path / "root", progressbar=False, log=lambda *a: None)
    finally:
        server.close()
    assert "lra_release/listops-1000/basic_train.tsv" in str(err.value)  # what it holds
    assert (tmp_path / "root" / "listops" / ".downloads" / "lra_release.gz").is_file()
    assert not (tmp_path / "root" / "listops" / "basic_train.tsv").exists()  # nothing half-unpacked


def test_unpublished_archive_is_pinned_at_first_verified_download(tmp_path, monkeypatch, capsys):
    good = _listops_archive(tmp_path, list(listops.SPLITS.values()))
    server = _Server({"lra_release.gz": good})
    _serve_listops(monkeypatch, server)
    root = tmp_path / "root"
    try:
        data.download("listops", root, progressbar=False, log=lambda *a: None)
        url = server.url + "lra_release.gz"
        assert recorded_downloads(root)[url]["size"] == len(good)
        assert main(["data", "list", "--data-dir", str(root)]) == 0
        assert "recorded at the first verified download" in capsys.readouterr().out
        (root / "listops" / "basic_test.tsv").unlink()  # lost: download again, and the source has changed
        server.files["lra_release.gz"] = _listops_archive(tmp_path / "other", list(listops.SPLITS.values()))[:-1] + b"x"
        with pytest.raises(FPTError, match="differs from the copy"):
            data.download("listops", root, progressbar=False, log=lambda *a: None)
    finally:
        server.close()
    assert not (root / "listops" / "basic_test.tsv").exists() and (root / TOFU_FILE).is_file()


def test_remote_homology_comes_over_https():
    assert all(d.url.startswith("https://") for d in catalog.DATASETS["remote-homology"].downloads)
    assert all(d.url.startswith("https://") for d in catalog.DATASETS["listops"].downloads)


def test_verify_reports_each_dataset_and_goes_on(tmp_path, capsys, monkeypatch):
    """A damaged dataset (listops, verified first) is reported and the next one (mnist) is still verified."""
    root = tmp_path / "root"
    mnist = write_mnist(root / "mnist")
    published = {n: f"sha256:{content_hash(mnist / n, 'sha256')}" for n in catalog.DATASETS["mnist"].files}
    monkeypatch.setitem(catalog.DATASETS, "mnist", dataclasses.replace(catalog.DATASETS["mnist"], files=published))
    write_listops(root / "listops")
    (root / "listops" / "basic_val.tsv").write_bytes(b"Source\tTarget\n[MAX 2 \xff 3 ]\t3\n")
    assert main(["data", "verify", "--data-dir", str(root)]) == 2
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines()] == ["cifar10", "fashion-mnist", "mnist", "remote-homology"]
    assert out.splitlines()[2].startswith(f"mnist: OK in {mnist}: 60 train, 20 test")
    assert err.startswith("listops: FAILED:") and "line 2: not UTF-8" in err
    assert "Verification failed for listops (details above)" in err
    with pytest.raises(FPTError, match="not UTF-8"):
        listops.read_tsv(root / "listops" / "basic_val.tsv")
    (root / "listops" / "basic_val.tsv").write_text("Source\tTarget\n[MAX 2 3 ]\t²\n")
    with pytest.raises(FPTError, match="value 0-9"):
        listops.read_tsv(root / "listops" / "basic_val.tsv")


def test_idx_header_sizes_are_checked_before_allocating(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x05" + struct.pack(">IIIII", 2**16, 2**16, 2**16, 2**16, 1))  # 2**64 values
    with pytest.raises(FPTError, match="header announces"):
        idx.read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\x00" * 64)
    with pytest.raises(FPTError, match="header announces"):
        idx.read_idx(path)


class _HugeArray:
    def __reduce__(self):  # what a tampered batch can ask for: a 90 TiB array
        return (np.ndarray, ((90 * 2**40,), "u1"))


def test_cifar_pickle_asking_for_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _HugeArray(), b"labels": [0]}, protocol=2))
    with pytest.raises(FPTError, match="not a CIFAR-10 python batch"):
        cifar.read_batch(path)


def test_generate_passes_the_recipe_flags_to_the_generator_and_the_record(tmp_path, capsys):
    """--min-length/--max-length/--max-depth/--max-args shape every expression, GENERATED records them with
    the seed and sizes, and a copy made with non-LRA settings says so wherever its source is named."""
    import json

    from fpt.data.listops import origin
    from fpt.tasks import get_task

    root = tmp_path / "data"
    recipe = ["--min-length", "8", "--max-length", "30", "--max-depth", "4", "--max-args", "3"]
    assert (
        main(
            [
                "data",
                "generate",
                "listops",
                "--data-dir",
                str(root),
                "--train",
                "20",
                "--val",
                "4",
                "--test",
                "4",
                *recipe,
            ]
        )
        == 0
    )
    assert "except lengths 8-30 (LRA: 500-2000), max depth 4 (LRA: 10), max args 3 (LRA: 10)" in capsys.readouterr().out
    marker = json.loads((root / "listops" / "GENERATED").read_text())
    assert marker == {
        **marker,
        "seed": 0,
        "train": 20,
        "val": 4,
        "test": 4,
        "min_length": 8,
        "max_length": 30,
        "max_depth": 4,
        "max_args": 3,
    }
    for split in ("train", "val", "test"):
        for ids in listops.read_tsv(root / "listops" / listops.SPLITS[split]).tokens:
            assert 8 < len(ids) < 30  # brackets and values: LRA's length, parentheses dropped
    task = get_task("listops", data_dir=str(root))
    assert "except lengths 8-30 (LRA: 500-2000)" in task.split_sources["test"]
    data.generate("listops", tmp_path / "lra", train=2, val=1, test=1)  # LRA's recipe: no exception named
    assert origin(tmp_path / "lra" / "listops") == "generated by the LRA recipe"


@pytest.mark.parametrize(
    "recipe, says",
    [
        (["--min-length", "0"], "--min-length 0 is not allowed"),
        (["--min-length", "30", "--max-length", "20"], "strictly between --min-length 30 and --max-length 20"),
        (["--min-length", "1", "--max-length", "4"], "lengths run from 4"),  # lengths 2 and 3 do not exist
        (["--max-depth", "1"], "--max-depth 1 is not allowed"),
        (["--max-args", "1"], "--max-args 1 is not allowed"),
        (["--max-depth", "3", "--min-length", "200", "--max-length", "300"], "lengths run from 4 to 122"),
        (["--max-depth", "40"], "would not finish"),  # whole trees of ~1.5^40 nodes are drawn
    ],
)
def test_generate_refuses_recipes_no_expression_meets(tmp_path, capsys, recipe, says):
    assert main(["data", "generate", "listops", "--data-dir", str(tmp_path / "d"), *recipe]) == 2
    err = capsys.readouterr().err
    assert says in err and "Nothing was written" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_generate_gives_up_when_too_few_distinct_expressions_exist(tmp_path):
    """Depth 2 with 2 arguments allows only 400 expressions (4 operators x 10 x 10): asking for more stops
    after a bounded number of fruitless draws instead of drawing forever."""
    with pytest.raises(FPTError, match="400 of the 500 examples asked for were found"):
        listops.generate(tmp_path, train=498, val=1, test=1, min_length=1, max_length=6, max_depth=2, max_args=2)
    assert not list(tmp_path.iterdir())
