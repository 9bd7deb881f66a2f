"""from_pretrained and push_to_hub on bad input or no network: one FPTError each, before any rebuild and
without huggingface_hub's half minute of retries. The hub is a local HTTP server on 127.0.0.1, or a
closed local port."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer


@pytest.fixture(scope="module")
def saved(tmp_path_factory, quiet_gpt2):
    """A saved (untrained) model: config.json, model.safetensors, README.md."""
    model = FrozenPretrainedTransformer(FPTConfig(input_dim=4, max_length=8, num_classes=3, backbone=quiet_gpt2))
    directory = tmp_path_factory.mktemp("saved") / "model"
    model.save_pretrained(directory)
    return directory


@pytest.fixture
def copy(saved, tmp_path):
    """A copy of the saved model that a test may damage."""
    target = tmp_path / "copy"
    target.mkdir()
    for path in saved.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


@pytest.fixture
def no_rebuild(monkeypatch):
    """Fail the test if the backbone is rebuilt: bad files must be refused before that."""

    def rebuilt(config):
        raise AssertionError("the backbone was rebuilt before the files were checked")

    monkeypatch.setattr(FrozenPretrainedTransformer, "rebuilt", classmethod(lambda cls, config: rebuilt(config)))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def online(monkeypatch):
    """Online mode against an endpoint the test picks: `online(url)`."""
    from huggingface_hub import constants

    def use(endpoint: str) -> None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )

    return use


class _Hub(BaseHTTPRequestHandler):
    """Answers every request with the status and hub error code the test sets; records the paths asked."""

    status, error_code, requests = 404, "RepoNotFound", []

    def _answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        body = json.dumps({"error": "from the test hub"}).encode()
        self.send_response(self.status)
        self.send_header("X-Error-Code", self.error_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub(online):
    """A local hub on 127.0.0.1 (every answer per _Hub's class attributes)."""
    _Hub.status, _Hub.error_code, _Hub.requests = 404, "RepoNotFound", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    online(f"http://127.0.0.1:{server.server_address[1]}")
    yield _Hub
    server.shutdown()
    server.server_close()


def test_a_missing_local_path_is_not_taken_for_a_hub_id(tmp_path, no_rebuild, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("asked the hub"))
    for name in (tmp_path / "no" / "such", "./typo-model", "~/no-such-model-dir", tmp_path / "no-such"):
        with pytest.raises(FPTError, match="does not exist.*directory"):
            FrozenPretrainedTransformer.from_pretrained(name)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FPTError, match="is a file, not a directory"):
        FrozenPretrainedTransformer.from_pretrained(tmp_path / "a-file")


def test_an_unknown_hub_id_offline_fails_at_once_naming_the_cache(no_rebuild, tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(FPTError, match="HF_HUB_OFFLINE is set.*not in the local Hugging Face cache.*HF_HUB_OFFLINE=1"):
        FrozenPretrainedTransformer.from_pretrained("someone/no-such-fpt", cache_dir=tmp_path)


def test_an_unreachable_hub_fails_at_once_suggesting_offline_mode(online, no_rebuild, tmp_path, monkeypatch):
    import huggingface_hub

    online(f"http://127.0.0.1:{_closed_port()}")
    download, asked = huggingface_hub.hf_hub_download, []

    def recorded(*args, **kwargs):
        asked.append(kwargs.get("local_files_only"))
        return download(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recorded)
    with pytest.raises(FPTError, match="cannot be reached.*not in the local Hugging Face cache.*HF_HUB_OFFLINE=1"):
        FrozenPretrainedTransformer.from_pretrained("someone/fpt-model", cache_dir=tmp_path)
    assert asked == [True]  # the TCP probe decided: the cache only, no request, so no retries


def test_an_unknown_hub_id_online_says_no_such_repo(hub, no_rebuild, tmp_path):
    with pytest.raises(
        FPTError, match="Could not download config.json of someone/no-such-fpt: 404 .*No such model repo"
    ):
        FrozenPretrainedTransformer.from_pretrained("someone/no-such-fpt", cache_dir=tmp_path)
    assert hub.requests and all("someone/no-such-fpt" in r for r in hub.requests)


def test_a_hub_repo_without_the_files_is_not_an_fpt_model(hub, no_rebuild, tmp_path):
    hub.error_code = "EntryNotFound"
    with pytest.raises(FPTError, match="config.json.*no FPT model saved by"):
        FrozenPretrainedTransformer.from_pretrained("someone/plain-model", cache_dir=tmp_path)


def test_push_to_hub_without_a_network_or_login_fails_with_advice(saved, online, hub, monkeypatch):
    model = FrozenPretrainedTransformer.from_pretrained(saved)
    hub.status, hub.error_code = 401, ""
    with pytest.raises(FPTError, match="Could not push to someone/fpt.*hf auth login"):
        model.push_to_hub("someone/fpt", token="hf_test")
    online(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(FPTError, match="Cannot push to someone/fpt: the Hugging Face Hub cannot be reached"):
        model.push_to_hub("someone/fpt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FPTError, match="HF_HUB_OFFLINE is set"):
        model.push_to_hub("someone/fpt")


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "config.json of .* is not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[1, 2]", "got a JSON list.*not a saved FPT model"),
        ('{"format": "fpt-trained-parameters/1", "backbone": {}, "fingerprint": {}}', "lacks 'model'"),
        ('{"format": "fpt-trained-parameters/1", "backbone": {}, "model": {}}', "lacks 'fingerprint'"),
        ('{"format": "fpt-trained-parameters/1", "model": [], "fingerprint": {}}', "lacks 'model', 'backbone'"),
    ],
)
def test_a_damaged_config_json_is_refused_before_the_rebuild(copy, no_rebuild, content, match):
    path = copy / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(FPTError, match=match):
        FrozenPretrainedTransformer.from_pretrained(copy)


def test_damaged_or_missing_weights_are_refused_before_the_rebuild(copy, no_rebuild):
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    for damaged in (data[: len(data) // 2], b"\x00" * 64, b"not safetensors at all"):
        weights.write_bytes(damaged)
        with pytest.raises(FPTError, match="model.safetensors of .* cannot be read as safetensors"):
            FrozenPretrainedTransformer.from_pretrained(copy)
    weights.unlink()
    with pytest.raises(FPTError, match="has no model.safetensors"):
        FrozenPretrainedTransformer.from_pretrained(copy)


def test_a_config_fpt_cannot_build_is_an_fpt_error(copy):
    path = copy / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "model": {**config["model"], "max_lenght": 8}}))
    with pytest.raises(FPTError, match="max_lenght.*did you mean 'max_length'"):
        FrozenPretrainedTransformer.from_pretrained(copy)


def test_saved_files_are_readable_as_other_files_are_and_hold_no_local_paths(saved, quiet_gpt2):
    old = os.umask(0o022)
    try:
        model = FrozenPretrainedTransformer.from_pretrained(saved)
        model.summary = {
            "task": "arrays",
            "task_options": {"path": "/tmp/somewhere/mine.npz"},
            "init": "from:/x/run",
            "test_accuracy": 0.75,
            "test_exact_match": 0.75,  # one unit per example: the same figure, shown once
        }
        model.save_pretrained(saved.parent / "again")
    finally:
        os.umask(old)
    again = saved.parent / "again"
    assert stat.S_IMODE((again / "model.safetensors").stat().st_mode) == 0o644  # safetensors alone writes 0600
    config, card = json.loads((again / "config.json").read_text()), (again / "README.md").read_text()
    assert config["run"]["task_options"]["path"] == "mine.npz" and config["run"]["init"] == "from:run"
    assert "source" not in config["fingerprint"] and config["backbone"]["hub_id"] is None  # a local backbone
    local = str(saved.parents[1])
    assert local not in json.dumps(config["run"]) and local not in card
    assert "| test accuracy | 0.7500 |" in card and "exact match |" not in card
    assert (
        config["model"]["backbone"] == config["backbone"]["name"] == quiet_gpt2
    )  # a local backbone: rebuilding needs it
    with torch.no_grad():
        inputs = torch.randn(2, 8, 4)
        assert torch.equal(model(inputs), FrozenPretrainedTransformer.from_pretrained(again)(inputs))
