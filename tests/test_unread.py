"""Skipping unread positions in the backbone's last block (GPT-2, BERT) changes no output and no gradient."""

from __future__ import annotations

import pytest
import torch

from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.model.compat import fast_path_off
from fpt.model.unread import ReadPositionsOnly, unwrap_last_block, wrap_last_block
from fpt.tasks import get_task

WHY_OFF = fast_path_off("last-block-read-positions-only")
pytestmark = pytest.mark.skipif(WHY_OFF is not None, reason=str(WHY_OFF))  # off: nothing to compare


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
    assert wrap_last_block(models[1].backbone)
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
    assert isinstance(block, ReadPositionsOnly)
    full_calls: list[int] = []
    block.base_layer.register_forward_pre_hook(lambda module, args: full_calls.append(1))  # the block in full
    grads = []
    for model in (full, skipping):
        loss = task.loss(model(batch.inputs), batch.targets)
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "embedder.proj.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)
    assert not full_calls  # the tail path ran
    assert block.read_last is None  # only for the duration of a call
    full.eval(), skipping.eval()
    torch.testing.assert_close(skipping(batch.inputs), full(batch.inputs), rtol=1e-5, atol=1e-6)
    # encode() is not a forward of the head: every position of its output stays exact
    torch.testing.assert_close(
        skipping.encode(batch.inputs).last_hidden_state, full.encode(batch.inputs).last_hidden_state
    )
    assert full_calls
    # transformers' output recording still finds the wrapped block: every layer's hidden state
    layers = full.backbone.config.num_hidden_layers
    states = [m.encode(batch.inputs, output_hidden_states=True).hidden_states for m in (full, skipping)]
    assert len(states[0]) == len(states[1]) == layers + 1
    for theirs, ours in zip(*states, strict=True):
        torch.testing.assert_close(ours, theirs)


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
    assert not wrap_last_block(llama.backbone)
    eager = FrozenPretrainedTransformer(
        FPTConfig(
            **task.spec.model_fields(),
            backbone=quiet_gpt2,
            init="random",
            attn_implementation="eager",
            fast_paths=False,
        )
    )
    assert not wrap_last_block(eager.backbone)


def test_the_wrapper_keeps_names_and_keys_and_unwraps_to_the_original_block(quiet_gpt2):
    task = get_task("bit-memory", n_strings=3, n_bits=20, bits_per_token=5)
    torch.manual_seed(0)
    model = FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields(), backbone=quiet_gpt2, init="random"))
    wrapper = model.backbone.h[-1]
    original = wrapper.base_layer
    assert isinstance(wrapper, ReadPositionsOnly) and type(original).__name__ == "GPT2Block"
    assert wrap_last_block(model.backbone)  # idempotent: still the same wrapper
    assert model.backbone.h[-1] is wrapper
    assert wrapper.attn is original.attn and "base_layer" not in dict(model.named_modules())
    names, keys = [n for n, _ in model.named_parameters()], list(model.state_dict())
    model.eval()
    batch = next(task.train_batches(4, 0))
    fast = model(batch.inputs)
    ln_2, wrapper.ln_2 = wrapper.ln_2, torch.nn.LayerNorm(32)  # swapped in, as PEFT's ln-tuning does
    assert original.ln_2 is wrapper.ln_2  # the block has it too
    wrapper.ln_2 = ln_2
    model.train()
    assert original.training and wrapper.training
    model.eval()
    assert unwrap_last_block(model.backbone) and not unwrap_last_block(model.backbone)
    assert model.backbone.h[-1] is original and not any(isinstance(m, ReadPositionsOnly) for m in model.modules())
    assert [n for n, _ in model.named_parameters()] == names and list(model.state_dict()) == keys
    torch.testing.assert_close(model(batch.inputs), fast)  # the plain block, in full: the same outputs
