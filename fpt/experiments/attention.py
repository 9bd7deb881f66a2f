"""Attention maps of a trained run: `fpt attention RUN_DIR --example K [--layer L] --out FILE.png`.

The model is rebuilt with eager attention (fused kernels return no weights; the weights are the
same) and its trained parameters loaded; attention is averaged over heads. For Bit XOR the numeric
form checks the paper's figure: output token j (position k + j, k = output tokens) XORs input
tokens j and k + j, so per layer we report how much attention each output position puts on its two
source tokens against the other input positions (the visible ones, for a causal backbone). Source k + j is the output position itself, and
attending to oneself is common in any transformer, so the partner token j (the other string's bit)
is reported on its own too: that is the part only a model that learned XOR needs.
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import replace
from pathlib import Path

import torch

from fpt.errors import FPTError
from fpt.model.fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.runs import load_trained, read_run_record
from fpt.tasks import Batch, Task, get_task


def load_for_attention(run_dir: str | Path, which: str = "best"):
    """The run's model with eager attention and its trained parameters, and its task."""
    record = read_run_record(run_dir)
    if record.architecture.startswith("lstm"):
        raise FPTError(f"{run_dir} trained the LSTM baseline, which has no attention; pass a transformer run.")
    task = get_task(record.task, **record.task_kwargs())
    record.check_task(task.spec)
    model = FrozenPretrainedTransformer.rebuilt(replace(FPTConfig.from_dict(record.model), attn_implementation="eager"))
    load_trained(model, Path(run_dir), which)
    return model.eval(), task


def split_example(task: Task, split: str, example: int, batch_size: int = 256) -> Batch:
    """Example `example` of `split`, in the task's fixed order, as a batch of one (padded as in its
    evaluation batch); found batch by batch, since variable-length tasks pad each batch to its own length."""
    n = task.split_size(split)
    if not 0 <= example < n:
        raise FPTError(f"--example {example} is out of range: the {split} split has {n} examples (0 to {n - 1}).")
    seen = 0
    for batch in task.examples(split, batch_size):
        if example < seen + len(batch):
            return batch.rows(slice(example - seen, example - seen + 1))
        seen += len(batch)
    raise FPTError(f"Task {task.name}'s {split} split gave {seen} examples, not the {n} its split_size reports.")


def split_tensors(task, split: str):
    """The whole split as (inputs, targets, mask) tensors, in the task's fixed order; for fixed-length
    tasks (bit tasks, `TensorTask`): ListOps' and homology's batches each have their own length."""
    batches = list(task.eval_batches(split, 256))
    inputs = torch.cat([b.inputs for b in batches])
    targets = torch.cat([b.targets for b in batches])
    masks = [b.mask for b in batches]
    mask = None if any(m is None for m in masks) else torch.cat(masks)
    return inputs, targets, mask


@torch.inference_mode()
def attention_maps(model, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(layers, batch, query, key) head-averaged attention, and the logits."""
    out = model.encode(inputs, mask, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise FPTError(f"Backbone {model.backbone_name!r} returned no attention weights; it cannot be mapped.")
    logits = model.head(out.last_hidden_state, mask.sum(dim=1) if mask is not None else None)
    return torch.stack([a.mean(dim=1) for a in out.attentions]), logits


def xor_source_mass(maps: torch.Tensor, output_tokens: int) -> list[dict]:
    """Per layer, for Bit XOR maps (layers, batch, 2k, 2k): mass on each output's source tokens."""
    k = output_tokens
    j = torch.arange(k)
    queries = maps[:, :, k:, :]  # (layers, batch, k outputs, 2k keys)
    partner = queries[:, :, j, j]  # a_j: the other string's bit
    own = queries[:, :, j, k + j]  # b_j: the output position itself
    # A causal backbone (GPT-2) cannot see later positions: compare only with the visible ones.
    causal = bool((maps.triu(1) == 0).all())
    other_mask = torch.ones(k, 2 * k, dtype=torch.bool)
    if causal:
        other_mask &= torch.arange(2 * k)[None, :] <= (k + j)[:, None]
    other_mask[j, j] = other_mask[j, k + j] = False
    other_first = queries[:, :, :, :k][:, :, ~torch.eye(k, dtype=torch.bool)].reshape(*queries.shape[:2], k, k - 1)
    layers = []
    for layer in range(maps.shape[0]):
        per_source = ((partner[layer] + own[layer]) / 2).mean().item()
        per_query = (queries[layer] * other_mask).sum(-1) / other_mask.sum(-1).clamp_min(1)  # (batch, k)
        other_mean = per_query.mean().item()
        partner_mean = partner[layer].mean().item()
        other_first_mean = other_first[layer].mean().item() if k > 1 else float("nan")
        layers.append(
            {
                "layer": layer,
                "causal": causal,
                "source_mass": round((partner[layer] + own[layer]).mean().item(), 4),  # of 1.0 per output position
                "per_source_position": round(per_source, 4),
                "per_other_position": round(other_mean, 4),
                "source_vs_other": round(per_source / max(other_mean, 1e-12), 2),
                "partner_bit": round(partner_mean, 4),  # a_j, the other string's bit
                "own_position": round(own[layer].mean().item(), 4),  # b_j, the query itself
                "per_other_first_string_position": round(other_first_mean, 4),
                "partner_vs_other_first_string": round(partner_mean / max(other_first_mean, 1e-12), 2),
            }
        )
    return layers


def token_labels(task, inputs: torch.Tensor) -> list[str]:
    """Readable labels: for the bit tasks `a3=+1`, `b0=-1` (1 bit per token) or the token index."""
    length = inputs.shape[0]
    if task.name == "bit-xor" and inputs.shape[-1] == 1:
        k = length // 2
        return [f"{'ab'[i // k]}{i % k}={int(inputs[i, 0]):+d}" for i in range(length)]
    return [str(i) for i in range(length)]


def draw(
    maps: torch.Tensor,
    labels: list[str],
    layers: list[int],
    title: str,
    out: Path,
    sources: list[tuple[int, int]] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cols = min(len(layers), 3)
    rows = (len(layers) + cols - 1) // cols
    size = max(3.5, 0.35 * len(labels))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[len(layers) :]:
        ax.axis("off")
    ticks = len(labels) <= 40
    for ax, layer in zip(axes.flat, layers, strict=False):
        image = ax.imshow(maps[layer].numpy(), cmap="viridis", vmin=0)
        ax.set_title(f"layer {layer}")
        ax.set(xlabel="attended position (key)", ylabel="position (query)")
        if ticks:
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for q, key in sources or []:
            ax.add_patch(Rectangle((key - 0.5, q - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(textwrap.fill(title, 45 * cols), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def attention_command(
    run_dir: str | Path,
    example: int = 0,
    layer: int | None = None,
    split: str = "test",
    fmt: str = "png",
    out: str | Path | None = None,
) -> str:
    """Write the map (png) or the numbers (json) of example `example`; return what to print."""
    check_output(run_dir, fmt, out)
    model, task = load_for_attention(run_dir)
    one = split_example(task, split, example)
    maps, logits = attention_maps(model, one.inputs, one.mask)
    n_layers = maps.shape[0]
    if layer is not None and not 0 <= layer < n_layers:
        raise FPTError(f"--layer {layer} is out of range: the backbone has {n_layers} layers (0 to {n_layers - 1}).")
    correct = (logits.argmax(-1) == one.targets).float().mean().item()
    k = task.spec.output_tokens
    is_xor = task.name == "bit-xor"

    if fmt == "json":
        result = {
            "run": str(run_dir),
            "task": task.name,
            "split": split,
            "example": example,
            "layers": n_layers,
            "example_unit_accuracy": correct,
        }
        if is_xor:
            result["example_xor"] = xor_source_mass(maps, k)
            split_maps = torch.cat(
                [attention_maps(model, b.inputs, b.mask)[0] for b in task.examples(split, 256)], dim=1
            )
            result[f"{split}_mean_xor"] = xor_source_mass(split_maps, k)
            result["uniform_per_position"] = round(1 / (2 * k), 4)
        else:
            result["attention"] = [maps[i, 0].tolist() for i in range(n_layers)]
        text = json.dumps(result, indent=2)
        if out:
            _write(Path(out), lambda path: path.write_text(text + "\n"))
        return text

    if out is None:
        raise FPTError("A PNG needs --out FILE.png (or use --format json to print numbers).")
    seq = maps[:, 0] if one.mask is None else maps[:, 0][:, : int(one.mask[0].sum()), : int(one.mask[0].sum())]
    labels = token_labels(task, one.inputs[0])[: seq.shape[-1]]
    sources = [(q, key) for j in range(k) for q, key in ((k + j, j), (k + j, k + j))] if is_xor else None
    title = f"{task.name}, {split} example {example} (unit accuracy {correct:.0%}), attention averaged over heads" + (
        "; red boxes: each output position's two source bits" if is_xor else ""
    )
    layers = [layer] if layer is not None else list(range(n_layers))
    _write(Path(out), lambda path: draw(seq, labels, layers, title, path, sources))
    return f"Wrote {out}"


SUFFIXES = {"png": ".png", "json": ".json"}


def check_output(run_dir: str | Path, fmt: str, out: str | Path | None) -> None:
    """Refuse, before any work, an output that is not a file of the format's suffix or that lies in the run
    directory (whose files stay as training left them)."""
    if fmt not in SUFFIXES:
        raise FPTError(f"Format {fmt!r}: use png or json.")
    if out is None:
        return
    path = Path(out)
    if path.suffix.lower() != SUFFIXES[fmt]:
        raise FPTError(f"--out {out}: a {fmt} map is written to a {SUFFIXES[fmt]} file (or pass --format to match).")
    if path.resolve().is_relative_to(Path(run_dir).resolve()):
        raise FPTError(
            f"Write the map outside the run directory {run_dir} (got --out {out}), so its files stay as training left them."
        )
    if path.is_dir():
        raise FPTError(f"--out {out} is a directory; give a file name.")


def _write(path: Path, write) -> None:
    """Run `write(path)` (to a temporary name, then renamed), turning file-system failures into an FPTError."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise FPTError(f"Cannot write {path} ({err.strerror or err}); choose a writable --out.") from err
