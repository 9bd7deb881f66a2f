"""Align, then tune (ORCA, Shen et al. 2023): before training, fit the new input layer so that the
target data, embedded by it, is distributed like the backbone's own embedded English text.

Each example becomes one feature, the mean of its embedded tokens (ORCA's choice): target examples
through the new input layer, English text (fpt.data.english: Python's help topics, offline) as
chunks of the backbone's own tokenizer's tokens through the backbone's own token embedding. Only the
input layer trains here; the backbone and the head are untouched.

- `mmd`: maximum mean discrepancy with a Gaussian kernel (geomloss), bandwidth the median distance
  between text features.
- `otdd`: the optimal-transport dataset distance (Alvarez-Melis and Fusi, 2020) that ORCA uses:
  transport between (feature, label) pairs with ground cost ||x - x'||^2 + W(y, y'), where W(y, y')
  is the squared 2-Wasserstein distance between the features of class y and of class y'. Exact
  transport by POT (`ot.emd2`), differentiable in the target features. Target labels are the
  examples' targets (the whole bit string for bit tasks); the text's labels are its help topics,
  since the prose carries no task labels (ORCA's CoNLL text has NER tags).

The distance on one fixed set of target examples is measured before and after (summary.json), and
the loss of every step is written to align.jsonl.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from fpt.errors import FPTError, install_hint
from fpt.files import atomic_write
from fpt.memory import require

METHODS = ("mmd", "otdd")
ALIGN_FILE = "align.jsonl"
BATCH = 64  # target examples per alignment step (and in the fixed before/after set: EVAL_BATCHES of them)
EVAL_BATCHES = 4
TEXT_TOPICS = 10  # help topics used as the text's classes
CHUNKS_PER_TOPIC = 50
MEASURE_EVERY = 10  # steps between measurements of the fixed-set distance in align.jsonl


def _ot():
    try:
        import geomloss  # type: ignore[import-untyped]
        import ot  # type: ignore[import-untyped]
    except ImportError as err:
        raise FPTError(
            "--align uses the optimal-transport libraries POT and geomloss, which are not installed. Install "
            f"them with {install_hint('align', 'pot geomloss')}."
        ) from err
    return ot, geomloss


def _token_embedding(model):
    """(embed, rows): embeds language token ids as the backbone does, and how many ids it knows. A GGUF
    backbone's model keeps a cut token table; its cache holds the whole one beside it (fpt.backbones.gguf)."""
    from safetensors.torch import load_file

    from fpt.backbones.gguf import TOKEN_TABLE

    embedding = model.backbone_adapter.token_embedding()
    if embedding is None:
        raise FPTError(
            f"--align embeds English text with the backbone's own token embedding, and backbone "
            f"{model.backbone_name!r} ({type(model.backbone).__name__}) has none: it was pretrained on another "
            "modality. Use a language backbone (minilm, gpt2, ...), or train without --align."
        )
    kept = Path(model.backbone_source) / TOKEN_TABLE
    if not kept.is_file():
        return embedding, embedding.num_embeddings
    table = load_file(str(kept), device=str(embedding.weight.device))["weight"]
    scale = float(getattr(embedding, "embed_scale", 1.0))  # Gemma multiplies its token embeddings by sqrt(width)
    return (lambda ids: torch.nn.functional.embedding(ids, table) * scale), len(table)


def _tokenizer(model, rows: int):
    from transformers import AutoTokenizer

    from fpt.backbones.loading import _from_hub_or_cache

    problem = None
    try:
        tokenizer = _from_hub_or_cache(
            AutoTokenizer.from_pretrained, model.backbone_source, model.backbone_name, "tokenizer"
        )
        ids = tokenizer("The quick brown fox.", add_special_tokens=False)["input_ids"]
        unknown = tokenizer.unk_token_id is not None and set(ids) == {tokenizer.unk_token_id}
        if not ids or unknown or max(ids) >= rows:  # transformers builds an empty tokenizer when files are missing
            problem = "its tokenizer files are missing or do not fit its token embedding"
    except FPTError as err:
        problem = str(err)
    if problem:
        raise FPTError(
            f"--align embeds English text with the backbone's own tokenizer, and backbone {model.backbone_name!r} has "
            f"none here ({problem}). Use a backbone that ships one (minilm does), or train without --align."
        )
    return tokenizer


def text_features(model, chunk_tokens: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Mean embedded token of each text chunk, its topic label, and a description of the text."""
    from fpt.data.english import largest_topics

    embed, rows = _token_embedding(model)
    tokenizer = _tokenizer(model, rows)
    device = next(model.backbone.parameters()).device
    features, labels = [], []
    topics = largest_topics(TEXT_TOPICS)
    with torch.no_grad():
        for label, text in enumerate(topics.values()):
            ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            chunks = torch.tensor(ids[: len(ids) // chunk_tokens * chunk_tokens]).view(-1, chunk_tokens)
            chunks = chunks[torch.linspace(0, len(chunks) - 1, min(CHUNKS_PER_TOPIC, len(chunks))).long()]
            features.append(embed(chunks.to(device)).float().mean(dim=1).cpu())
            labels.append(torch.full((len(chunks),), label))
    described = {
        "text": f"pydoc_data.topics (Python {sys.version_info.major}.{sys.version_info.minor} help topics)",
        "topics": list(topics),
        "chunks": sum(len(f) for f in features),
        "chunk_tokens": chunk_tokens,
    }
    return torch.cat(features), torch.cat(labels), described


def target_features(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean embedded token of each example (its real tokens only), and each example's class."""
    device = next(model.embedder.parameters()).device
    tokens = model.embedder(batch.inputs.to(device)).float()
    if batch.mask is None:
        features = tokens.mean(dim=1)
    else:
        mask = batch.mask.to(device).unsqueeze(-1).float()
        features = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    rows = batch.targets.reshape(len(batch), -1)
    return features, torch.unique(rows, dim=0, return_inverse=True)[1].to(device)


@dataclass
class Distance:
    """A differentiable distance between the text features (fixed) and target features."""

    method: str
    source: torch.Tensor
    source_labels: torch.Tensor

    def __post_init__(self) -> None:
        self.ot, geomloss = _ot()
        if self.method == "mmd":
            blur = torch.cdist(self.source, self.source).median().item()  # the median heuristic
            self.mmd = geomloss.SamplesLoss("gaussian", blur=max(blur, 1e-6), backend="tensorized")

    def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        source = self.source.to(features.device)
        if self.method == "mmd":
            return self.mmd(features, source)
        ot, source_labels = self.ot, self.source_labels.to(features.device)
        classes_s, classes_t = source_labels.unique(), labels.unique()
        between = torch.stack(
            [
                torch.stack(
                    [ot.emd2([], [], ot.dist(source[source_labels == s], features[labels == t])) for t in classes_t]
                )
                for s in classes_s
            ]
        )
        # labels are 0..n-1 (torch.unique's inverse, topic indices), so they index `between` directly
        cost = ot.dist(source, features) + between[source_labels][:, labels]
        return ot.emd2([], [], cost)


RECORD_BYTES = 200  # a floor of one align.jsonl record held in memory (a dict of a step and a float)


def _check_alignable(model, task, method: str, steps: int) -> None:
    """Refuse an alignment that cannot run: too many steps to record, an unknown method, no transformer
    embedding to align to, a frozen input layer, or a training split smaller than one batch."""
    require(
        f"--align-steps {steps:,} (a record of each step's loss is kept for align.jsonl)",
        RECORD_BYTES * steps,
        "Lower --align-steps (the methods experiment's budgets use 10 to 2,000).",
    )
    if method not in METHODS:
        raise FPTError(f"Unknown alignment {method!r}; use one of: {', '.join(METHODS)}.")
    if not hasattr(model, "backbone"):
        raise FPTError(
            f"--align {method} aligns to a transformer backbone's own embedding; the LSTM baseline has none."
        )
    if not model.policy.trains("input"):
        raise FPTError(
            f"--align {method} fits the new input layer, which freeze policy {model.policy.spec!r} keeps frozen at its "
            "random start (ORCA aligns, then tunes the aligned layer with the rest). Use a policy that trains "
            "`input` (fpt, all, lora, ...)."
        )
    try:
        task.require_full_batches(BATCH)
    except FPTError as err:
        raise FPTError(
            f"--align {method} fits the input layer on batches of {BATCH} training examples, more than this "
            f"task's training split holds. Align on a training split of at least {BATCH} examples, or train "
            "without --align."
        ) from err


def align(model, task, method: str, steps: int, lr: float, seed: int, log=print, advance=None) -> list[dict]:
    """Train `model.embedder` for `steps` steps to lower the distance; returns the align.jsonl records
    (the first also describes the setup). `advance(1)` is called after every step (progress)."""
    _check_alignable(model, task, method, steps)
    chunk = min(max(model.config.max_length, 8), 128)
    source, source_labels, text = text_features(model, chunk)
    distance = Distance(method, source, source_labels)
    fixed = task.train_batches(BATCH, seed + 1)  # its own streams: the training stream is not advanced
    held = [next(fixed) for _ in range(EVAL_BATCHES)]
    stream = task.train_batches(BATCH, seed + 2)
    optimizer = torch.optim.Adam(model.embedder.parameters(), lr=lr)
    was_training = model.training
    model.eval()  # deterministic features: no dropout in the input layer while it is fitted

    def measure() -> float:
        with torch.no_grad():
            features = torch.cat([target_features(model, b)[0] for b in held])
            return distance(features, _joint_labels(held).to(features.device)).item()

    setup = {"method": method, "steps": steps, "lr": lr, "batch_size": BATCH, "fixed_examples": BATCH * EVAL_BATCHES}
    records = [{"step": 0, "distance": measure(), **setup, **text}]
    for step in range(1, steps + 1):
        loss = distance(*target_features(model, next(stream)))
        if not math.isfinite(loss.item()):
            raise FPTError(f"Alignment diverged at step {step} (distance {loss.item()}); try a lower --align-lr.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        record = {"step": step, "loss": loss.item()}
        if step % MEASURE_EVERY == 0 or step == steps:
            record["distance"] = measure()
        records.append(record)
        if advance is not None:
            advance(1)
    model.train(was_training)
    log(f"Alignment ({method}, {steps} steps): distance {records[0]['distance']:.4g} -> {records[-1]['distance']:.4g}")
    return records


def align_input(model, task, config, log=print, advance=None) -> list[dict]:
    """The alignment stage of a run per its config (`align`, `align_steps`, `align_lr`, `seed`)."""
    return align(model, task, config.align, config.align_steps, config.align_lr, config.seed, log, advance)


def write_records(path: Path, records: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in records).encode())


def read_alignment(run_dir: str | Path) -> dict | None:
    """summary.json's `align` entry: the setup and the fixed-set distance before and after."""
    path = Path(run_dir) / ALIGN_FILE
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    first = {k: v for k, v in records[0].items() if k not in ("step", "distance")}
    return {**first, "distance_before": records[0]["distance"], "distance_after": records[-1]["distance"]}


def _joint_labels(batches) -> torch.Tensor:
    """Class ids over several batches together (one id per distinct target row)."""
    rows = torch.cat([b.targets.reshape(len(b), -1) for b in batches])
    return torch.unique(rows, dim=0, return_inverse=True)[1]
