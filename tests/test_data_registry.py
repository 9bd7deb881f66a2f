"""The data registry: data root, lookup, verification, and downloads from a local HTTP server."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from fpt.data import catalog, download, locate, require, verify
from fpt.data.fetch import content_hash
from fpt.data.registry import data_root
from fpt.data.specs import Download
from fpt.errors import FPTError
from tests.datafiles import debian_fashion_mnist, write_cifar, write_mnist


class _Server:
    """Serves `files` (name -> bytes) on 127.0.0.1 with HTTP Range support, recording requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                body, start = server.files[name], 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served_mnist(tmp_path, monkeypatch):
    """A tiny MNIST served locally, registered in place of the real one."""
    source = write_mnist(tmp_path / "source")
    files = {p.name: p.read_bytes() for p in source.iterdir()}
    server = _Server(files)
    entry = dataclasses.replace(
        catalog.DATASETS["mnist"],
        files={n: f"sha256:{hashlib.sha256(gzip.decompress(b)).hexdigest()}" for n, b in files.items()},
        downloads=tuple(Download(server.url + n, hashlib.sha256(b).hexdigest()) for n, b in files.items()),
    )
    monkeypatch.setitem(catalog.DATASETS, "mnist", entry)
    yield server
    server.close()


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FPT_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("FPT_DATA")
    assert data_root().name == "fpt"


def test_download_verifies_and_is_found_afterwards(tmp_path, served_mnist):
    root = tmp_path / "root"
    assert locate("mnist", root) is None
    lines = []
    where = download("mnist", root, progressbar=False, log=lines.append)
    assert where == root / "mnist" and locate("mnist", root) == where
    assert "60 train, 20 test" in lines[-1]
    assert sorted(p.name for p in where.iterdir()) == sorted(served_mnist.files)  # nothing half-written left
    download("mnist", root, progressbar=False, log=lines.append)
    assert "already present" in lines[-1]


def test_interrupted_download_resumes_with_a_range_request(tmp_path, served_mnist):
    target = tmp_path / "root" / "mnist"
    target.mkdir(parents=True)
    name = "train-images-idx3-ubyte.gz"
    (target / f"{name}.part").write_bytes(served_mnist.files[name][:1000])  # what an interrupted run left
    download("mnist", tmp_path / "root", progressbar=False, log=lambda *a: None)
    assert (name, "bytes=1000-") in served_mnist.requests
    assert (target / name).read_bytes() == served_mnist.files[name]
    assert not list(target.glob("*.part"))


def test_checksum_mismatch_keeps_nothing(tmp_path, served_mnist):
    name = "t10k-labels-idx1-ubyte.gz"
    served_mnist.files[name] = gzip.compress(b"tampered")
    with pytest.raises(FPTError, match="does not match its published SHA-256") as err:
        download("mnist", tmp_path / "root", progressbar=False, log=lambda *a: None)
    assert "Put these files in" in str(err.value)
    assert not (tmp_path / "root" / "mnist" / name).exists()
    assert not [p for p in (tmp_path / "root" / "mnist").iterdir() if p.name.startswith("tmp") or p.suffix == ".part"]


def test_no_network_fails_fast_with_manual_instructions(tmp_path, monkeypatch):
    closed = "http://127.0.0.1:9/"  # discard port: nothing listens
    entry = catalog.DATASETS["fashion-mnist"]
    monkeypatch.setitem(
        catalog.DATASETS,
        "fashion-mnist",
        dataclasses.replace(
            entry,
            system_dirs=(),
            downloads=tuple(dataclasses.replace(d, url=closed + Path(d.url).name) for d in entry.downloads),
        ),
    )
    import requests

    tries, get = [], requests.get
    monkeypatch.setattr(requests, "get", lambda url, **kwargs: tries.append(url) or get(url, **kwargs))
    with pytest.raises(FPTError, match="Could not download") as err:
        download("fashion-mnist", tmp_path, progressbar=False, log=lambda *a: None)
    assert tries == [closed + "train-images-idx3-ubyte.gz"]  # fast: one try, no retries (counted, not timed)
    assert "Put these files in" in str(err.value) and "train-images-idx3-ubyte.gz" in str(err.value)


def test_archive_download_is_unpacked(tmp_path, monkeypatch):
    source = write_cifar(tmp_path / "source", per_batch=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = buffer.getvalue()
    server = _Server({"cifar-10-python.tar.gz": archive})
    entry = catalog.DATASETS["cifar10"]
    files = {rel: f"md5:{content_hash(source / rel, 'md5')}" for rel in entry.files}
    monkeypatch.setitem(
        catalog.DATASETS,
        "cifar10",
        dataclasses.replace(
            entry,
            files=files,
            downloads=(
                dataclasses.replace(
                    entry.downloads[0],
                    url=server.url + "cifar-10-python.tar.gz",
                    sha256=hashlib.sha256(archive).hexdigest(),
                ),
            ),
        ),
    )
    try:
        where = download("cifar10", tmp_path / "root", progressbar=False, log=lambda *a: None)
    finally:
        server.close()
    assert locate("cifar10", tmp_path / "root") == where
    assert not (where / ".downloads").exists()


def test_verify_catches_a_changed_file_and_missing_data_explains(tmp_path, monkeypatch):
    directory = write_mnist(tmp_path / "mnist")
    entry = catalog.DATASETS["mnist"]
    with pytest.raises(FPTError, match="does not match the published sha256"):
        verify("mnist", tmp_path, log=lambda *a: None)  # random images are not the real MNIST
    monkeypatch.setitem(
        catalog.DATASETS,
        "mnist",
        dataclasses.replace(entry, files={f: f"sha256:{content_hash(directory / f, 'sha256')}" for f in entry.files}),
    )
    assert verify("mnist", tmp_path, log=lambda *a: None) == "60 train, 20 test"
    with pytest.raises(FPTError, match="fpt data download cifar10"):
        require("cifar10", tmp_path / "empty")


@debian_fashion_mnist
def test_real_fashion_mnist_matches_the_published_content_checksums(tmp_path):
    assert verify("fashion-mnist", tmp_path, log=lambda *a: None) == "60000 train, 10000 test"


def test_tests_see_no_system_datasets(tmp_path):
    """conftest hides Debian's copy from unmarked tests, so their outcome does not depend on it being installed."""
    assert locate("fashion-mnist", tmp_path) is None
    assert catalog.DATASETS["fashion-mnist"].system_dirs == ()
