"""Shared fixtures: tiny backbones the tests create (no network), and the offline MiniLM."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# One thread per test process and subprocess (torch's and numpy's; set before they load) unless
# OMP_NUM_THREADS says otherwise: the tiny models gain nothing from a second thread, and on a busy
# machine spinning second threads made the fast tests several times slower
# (benchmarks/results/test_fast_timing.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A data root of the test session's own: a test (or a fuzz case that drops --data-dir) that writes a
# dataset must never leave it in the user's ~/.cache/fpt, where a later real run would train on it
# (a 3-example ListOps left there once). Set before any import so subprocesses inherit it.
os.environ["FPT_DATA"] = tempfile.mkdtemp(prefix="fpt-test-data-")
atexit.register(shutil.rmtree, os.environ["FPT_DATA"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_collection_modifyitems(items):
    """Tests marked `vit` are skipped, with the adapter's own reason, where the installed transformers lays
    ViT out otherwise (fpt.model.compat.ADAPTERS)."""
    from fpt.model.compat import adapter_unsupported

    why = adapter_unsupported("vit")
    for item in items:
        if why is not None and item.get_closest_marker("vit"):
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def no_system_datasets(request, monkeypatch):
    """Datasets are looked for in the test's own data root only, not in system folders such as Debian's
    /usr/share/datasets/fashion-mnist: a test's outcome must not depend on what the machine has installed
    (one passed or failed with that package, its "mnist: OK" matching "fashion-mnist: OK").
    Tests of the system copy itself are marked `system_data`."""
    if request.node.get_closest_marker("system_data"):
        return
    import dataclasses

    from fpt.data import catalog

    for name, dataset in catalog.DATASETS.items():
        if dataset.system_dirs:
            monkeypatch.setitem(catalog.DATASETS, name, dataclasses.replace(dataset, system_dirs=()))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    """A 2-layer, 32-wide GPT-2 with random weights, saved like a hub checkpoint."""
    from transformers import GPT2Config, GPT2Model

    path = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    GPT2Model(
        GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=100, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A 2-layer Llama-style model: rotary positions, RMSNorm, gated MLP."""
    from transformers import LlamaConfig, LlamaModel

    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        vocab_size=100,
    )
    LlamaModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT (MiniLM's architecture) with random weights."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def quiet_gpt2(tmp_path_factory) -> str:
    """The tiny GPT-2 without dropout: runs that should match do so exactly, and training mode
    computes what eval mode does."""
    from transformers import GPT2Config, GPT2Model

    path = tmp_path_factory.mktemp("quiet-gpt2")
    torch.manual_seed(0)
    GPT2Model(
        GPT2Config(
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_positions=64,
            vocab_size=100,
            bos_token_id=0,
            eos_token_id=0,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    ).save_pretrained(path)
    return str(path)
