"""Parameter groups by module type, freeze policies, and what an optimiser step may touch."""

from __future__ import annotations

import pytest
import torch

from fpt import FPTConfig, FPTError, FrozenPretrainedTransformer
from fpt.backbones import classify_backbone

EXPECTED_GROUPS = {"input", "output", "position", "norm", "attention", "feed-forward"}


def build(
    backbone: str, train: str = "fpt", max_length: int = 10, init: str = "pretrained"
) -> FrozenPretrainedTransformer:
    return FrozenPretrainedTransformer(
        FPTConfig(
            input_dim=3,
            max_length=max_length,
            num_classes=4,
            output_tokens=2,
            backbone=backbone,
            init=init,
            train=train,
        )
    )


def step_changes(model: FrozenPretrainedTransformer) -> tuple[list[str], list[str]]:
    """One Adam step; returns (frozen tensors that changed, trained tensors that did not)."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    logits = model(torch.randn(4, model.config.max_length, 3))
    torch.nn.functional.cross_entropy(
        logits.reshape(-1, 4), torch.randint(0, 4, (logits.shape[0] * logits.shape[1],))
    ).backward()
    optimizer.step()
    changed = {n: not torch.equal(before[n], p) for n, p in model.named_parameters()}
    frozen_changed = [n for n, p in model.named_parameters() if not p.requires_grad and changed[n]]
    trained_same = [n for n, p in model.named_parameters() if p.requires_grad and not changed[n]]
    return frozen_changed, trained_same


@pytest.fixture(scope="module")
def minilm() -> FrozenPretrainedTransformer:
    return build("minilm")


def test_minilm_groups_follow_module_types(minilm):
    groups = minilm.groups
    assert EXPECTED_GROUPS <= set(groups.values())
    bert = "backbone."
    assert groups[f"{bert}embeddings.position_embeddings.weight"] == "position"
    assert groups[f"{bert}embeddings.LayerNorm.weight"] == "norm"
    assert groups[f"{bert}encoder.layer.0.attention.self.query.weight"] == "attention"
    assert groups[f"{bert}encoder.layer.0.attention.output.dense.weight"] == "attention"
    assert groups[f"{bert}encoder.layer.0.attention.output.LayerNorm.weight"] == "norm"
    assert groups[f"{bert}encoder.layer.0.intermediate.dense.weight"] == "feed-forward"
    assert groups[f"{bert}encoder.layer.0.output.dense.weight"] == "feed-forward"
    assert groups[f"{bert}embeddings.word_embeddings.weight"] == "unused"
    assert groups[f"{bert}embeddings.token_type_embeddings.weight"] == "other"


def test_tiny_gpt2_groups(tiny_gpt2):
    groups = classify_backbone(build(tiny_gpt2).backbone)
    assert groups["wpe.weight"] == "position" and groups["wte.weight"] == "unused"
    assert groups["h.0.ln_1.weight"] == "norm" and groups["ln_f.bias"] == "norm"
    assert groups["h.1.attn.c_attn.weight"] == "attention" and groups["h.1.attn.c_proj.bias"] == "attention"
    assert groups["h.1.mlp.c_fc.weight"] == "feed-forward"
    assert "other" not in groups.values()


def test_tiny_llama_groups_and_added_positions(tiny_llama):
    model = build(tiny_llama)
    groups = classify_backbone(model.backbone)
    assert groups["layers.0.input_layernorm.weight"] == "norm" and groups["norm.weight"] == "norm"
    assert groups["layers.0.self_attn.k_proj.weight"] == "attention"
    assert groups["layers.0.mlp.gate_proj.weight"] == "feed-forward"
    # Rotary backbone: a learned absolute table, drawn small, is added and trained.
    assert model.learned_positions is not None
    std = model.backbone.config.initializer_range
    assert 0.5 * std < model.learned_positions.std().item() < 1.5 * std
    assert model.groups["learned_positions"] == "position"
    assert "initializer_range" in model.freeze_report()
    # Without the position group no table is added; the input bias is drawn instead, so a 0 bit is not
    # an exactly-zero token (whose norm gradients overflow in a deep bias-free stack such as Gemma 3's).
    no_positions = build(tiny_llama, train="output+norm").eval()
    assert no_positions.learned_positions is None
    assert no_positions.embedder(torch.zeros(1, 3, no_positions.embedder.input_dim)).abs().min() > 0
    assert "exactly-zero token" in no_positions.freeze_report()
    assert not model.embedder.proj.bias.any() and "exactly-zero" not in model.freeze_report()


@pytest.mark.parametrize("which", ["tiny_gpt2", "tiny_llama", "minilm"])
def test_optimizer_step_touches_only_trained_groups(which, request):
    backbone = "minilm" if which == "minilm" else request.getfixturevalue(which)
    model = build(backbone)
    frozen_changed, trained_same = step_changes(model)
    assert frozen_changed == []
    assert trained_same == []
    trained_groups = {model.groups[n] for n, p in model.named_parameters() if p.requires_grad}
    assert trained_groups == {"input", "output", "position", "norm"}


def test_policies_and_report(tiny_gpt2):
    model = build(tiny_gpt2, train="output")
    assert {model.groups[n] for n, p in model.named_parameters() if p.requires_grad} == {"output"}
    everything = build(tiny_gpt2, train="all")
    unused = {n for n, g in everything.groups.items() if g == "unused"}
    assert all(p.requires_grad != (n in unused) for n, p in everything.named_parameters())
    report = build(tiny_gpt2).freeze_report()
    for line in ("attention", "feed-forward", "trained", "frozen", "never called"):
        assert line in report


def test_policy_naming_an_absent_group_is_an_error(tiny_gpt2):
    with pytest.raises(FPTError, match="no parameters in that group"):
        build(tiny_gpt2, train="input,output,other")
    with pytest.raises(FPTError, match="not a group"):
        build(tiny_gpt2, train="input,attn")


def test_long_sequences_extend_the_position_table(tiny_gpt2):
    short = build(tiny_gpt2, max_length=64)
    long = build(tiny_gpt2, max_length=150)
    old, new = short.backbone.wpe.weight, long.backbone.wpe.weight
    assert new.shape[0] == 150
    assert torch.equal(new[0], old[0]) and torch.allclose(new[-1], old[-1])
    assert short.position_table is None
    assert long.position_table == {"interpolated_from": short.backbone.config.max_position_embeddings, "to": 150}
    assert f"interpolated from {long.position_table['interpolated_from']} to 150" in long.freeze_report()
    assert long(torch.randn(2, 150, 3)).shape == (2, 2, 4)
    # Frozen weights other than the table are untouched by the rebuild.
    assert torch.equal(long.backbone.h[0].attn.c_attn.weight, short.backbone.h[0].attn.c_attn.weight)


def test_random_and_stats_inits_are_seeded(tiny_gpt2):
    def weights(init, seed):
        model = FrozenPretrainedTransformer(
            FPTConfig(input_dim=3, max_length=10, num_classes=4, backbone=tiny_gpt2, init=init, init_seed=seed)
        )
        return model.backbone.h[0].mlp.c_fc.weight

    pretrained = build(tiny_gpt2).backbone.h[0].mlp.c_fc.weight
    assert torch.equal(weights("random", 1), weights("random", 1))
    assert not torch.equal(weights("random", 1), weights("random", 2))
    stats = weights("stats", 0)
    assert not torch.equal(stats, pretrained)
    assert abs(stats.std() - pretrained.std()) < 0.1 * pretrained.std()


def test_summary_records_an_interpolated_position_table(tiny_gpt2, tmp_path):
    from fpt.training import RunConfig, train

    options = {"n_bits": 40, "val_size": 4, "test_size": 4}  # 80 tokens: more than the backbone's 64 positions
    config = RunConfig(
        task="bit-xor", task_options=options, backbone=tiny_gpt2, init="random", steps=1, out=str(tmp_path / "run")
    )
    summary = train(config, progress=False, log=lambda *a: None)
    assert summary["position_table"] == {"interpolated_from": 64, "to": 80}
