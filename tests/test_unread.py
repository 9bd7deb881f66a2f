"""Skipping unread positions in the backbone's last block (GPT-2, BERT) changes no output and no gradient."""

from __future__ import annotations

import pytest
import torch

from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.unread import skip_unread_positions
from fpt.tasks import get_task


def _pair(backbone: str, task, **config):
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(
            FrozenPretrainedTransformer(
                FPTConfig(
                    **task.spec.model_fields(),
                    backbone=backbone,
                    init="random",
                    dropout=0.0,
                    fast_paths=False,
                    **config,
                )
            )
        )
    assert skip_unread_positions(models[1])
    return models


@pytest.fixture(scope="module")
def quiet_bert(tmp_path_factory) -> str:
    """A 2-layer BERT (MiniLM's architecture) without dropout."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("quiet-bert")
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        vocab_size=100,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("backbone", ["quiet_gpt2", "quiet_bert"])
def test_outputs_and_gradients_are_unchanged(request, backbone):
    task = get_task("bit-memory", n_strings=3, n_bits=20, bits_per_token=5)  # 16 tokens, the head reads the last 4
    full, skipping = _pair(request.getfixturevalue(backbone), task, train="fpt")
    batch = next(task.train_batches(6, 0))
    block = skipping.backbone.h[-1] if hasattr(skipping.backbone, "h") else skipping.backbone.encoder.layer[-1]
    full_calls = []
    block.full_forward = lambda *args, forward=block.full_forward, **kwargs: (
        full_calls.append(1) or forward(*args, **kwargs)
    )
    grads = []
    for model in (full, skipping):
        loss = task.loss(model(batch.inputs), batch.targets)
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "embedder.proj.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    assert not full_calls  # the tail path ran
    full.eval(), skipping.eval()
    torch.testing.assert_close(skipping(batch.inputs), full(batch.inputs), rtol=1e-5, atol=1e-6)
    # encode() is not a forward of the head: every position of its output stays exact
    torch.testing.assert_close(
        skipping.encode(batch.inputs).last_hidden_state, full.encode(batch.inputs).last_hidden_state
    )


def test_padded_inputs_and_other_backbones_run_in_full(quiet_gpt2, tiny_llama):
    task = get_task("bit-xor")
    full, skipping = _pair(quiet_gpt2, task)
    full.eval(), skipping.eval()
    inputs, mask = torch.randn(3, 10, 1), torch.ones(3, 10, dtype=torch.bool)
    mask[0, 7:] = False  # padded: each example reads its own last positions
    torch.testing.assert_close(skipping(inputs, mask), full(inputs, mask))
    llama = FrozenPretrainedTransformer(
        FPTConfig(**task.spec.model_fields(), backbone=tiny_llama, init="random", fast_paths=False)
    )
    assert not skip_unread_positions(llama)
    eager = FrozenPretrainedTransformer(
        FPTConfig(
            **task.spec.model_fields(),
            backbone=quiet_gpt2,
            init="random",
            attn_implementation="eager",
            fast_paths=False,
        )
    )
    assert not skip_unread_positions(eager)
