"""Hub-ready FPT models: `save_pretrained`, `from_pretrained` and `push_to_hub` via huggingface_hub's
PyTorchModelHubMixin, storing only what training changed or drew at random.

A saved model is three files: `config.json` (the FPT config, the backbone's id and hub revision, and the
fingerprint of its frozen weights), `model.safetensors` (the trained parameters and any frozen random new
layer: kilobytes to a few MB instead of the whole backbone) and `README.md` (a generated model card).
Loading fetches the backbone by id and revision, rebuilds the model and refuses it if the backbone's
fingerprint differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin, hf_hub_download, try_to_load_from_cache
from safetensors.torch import load_file, save_file

from fpt.errors import FPTError
from fpt.runs.checkpoint import check_fingerprint, copy_trained

FORMAT = "fpt-trained-parameters/1"
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
PAPER = "https://arxiv.org/abs/2103.05247"
# Hub ids of the named backbones whose weights ship elsewhere (for the card's `base_model`).
BASE_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


def _backbone_revision(model) -> str | None:
    """The hub commit the backbone's files came from (None for local directories and shipped configs)."""
    if model.config.revision or Path(model.backbone_source).is_dir():
        return model.config.revision
    cached = try_to_load_from_cache(model.backbone_source, "config.json")
    return Path(cached).parent.name if isinstance(cached, str) else None


def _base_model(model) -> str | None:
    """The hub model whose weights this one reuses (none for random inits and local directories)."""
    source = model.backbone_source
    if model.config.init not in ("pretrained", "stats"):
        return None
    if model.config.backbone in BASE_MODELS:
        return BASE_MODELS[model.config.backbone]
    return None if Path(source).is_dir() else source


def _results_table(summary: dict) -> str:
    names = summary.get("metric_names") or {}
    rows = [
        (f"test {names.get('accuracy', 'accuracy')}", summary.get("test_accuracy"), summary.get("test_split", "test")),
        (
            f"test {names.get('exact_match', 'exact match')}",
            summary.get("test_exact_match"),
            summary.get("test_split", "test"),
        ),
        ("best validation accuracy", summary.get("best_val_accuracy"), summary.get("val_split", "val")),
    ]
    lines = ["| metric | value | split |", "|---|---|---|"]
    lines += [f"| {name} | {value:.4f} | {split} |" for name, value, split in rows if isinstance(value, (int, float))]
    facts = {k: summary.get(k) for k in ("steps", "best_step", "seed", "precision", "wall_seconds", "test_examples")}
    return "\n".join(lines) + "\n\n" + ", ".join(f"{k}: {v}" for k, v in facts.items() if v is not None)


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A Frozen Pretrained Transformer ([Lu et al., *Pretrained Transformers as Universal Computation Engines*]({{ paper }})):
the backbone `{{ backbone }}` ({{ init }} weights) stays frozen; only the groups below were trained, and only
those parameters are stored in this repository (`model.safetensors`). Loading downloads the backbone by
its id{{ revision_note }} and checks that its weights match the fingerprint in `config.json`.

## Task

{{ task }}

## Results

{{ results }}

## Freeze report

```
{{ freeze_report }}
```

## How to load

```python
from fpt import FrozenPretrainedTransformer

model = FrozenPretrainedTransformer.from_pretrained("{{ repo_id }}")
logits = model(inputs)  # inputs: (batch, {{ max_length }} tokens, {{ input_dim }}); logits: (batch, units, {{ num_classes }})
```

Saved with fpt {{ fpt_version }}.
"""


class FPTHubMixin(PyTorchModelHubMixin):
    """The Hub methods of FrozenPretrainedTransformer (which must have `config`, `fingerprint`,
    `trained_state()`, `saved_state()`, `rebuilt()`, `freeze_report()`, `backbone_source` and optionally
    `summary`)."""

    summary: dict | None = None  # the run's summary.json when built by from_run: task and metrics for the card

    def hub_config(self) -> dict:
        """What config.json holds: enough to rebuild the model and to check its backbone."""
        from dataclasses import asdict

        from fpt import __version__

        config: Any = self.config  # type: ignore[attr-defined]
        return {
            "format": FORMAT,
            "fpt_version": __version__,
            "model": asdict(config),
            "backbone": {
                "name": config.backbone,
                "source": self.backbone_source,  # type: ignore[attr-defined]
                "revision": _backbone_revision(self),
            },
            "fingerprint": self.fingerprint,  # type: ignore[attr-defined]
            "trained_parameters": sum(t.numel() for t in self.trained_state().values()),  # type: ignore[attr-defined]
            "run": self.summary,
        }

    def _save_pretrained(self, save_directory: Path) -> None:
        tensors = {n: t.detach().float().cpu().contiguous() for n, t in self.saved_state().items()}  # type: ignore[attr-defined]
        save_file(tensors, str(save_directory / WEIGHTS), metadata={"format": FORMAT})
        (save_directory / CONFIG).write_text(json.dumps(self.hub_config(), indent=2, default=str) + "\n")
        (save_directory / CARD).unlink(missing_ok=True)  # the mixin writes the card only where none exists

    def save_peft_adapter(self, directory: str | Path) -> Path:
        """Write the backbone's trained adapter (policies lora, ia3, ln-tuning) as a PEFT adapter:
        adapter_config.json and adapter_model.safetensors, loadable with `peft.PeftModel.from_pretrained`
        on the backbone. The FPT's input and output layers are not part of the backbone; they travel in
        `save_pretrained`'s files."""
        from fpt.model.adapters import adapter_parameters

        backbone: Any = self.backbone  # type: ignore[attr-defined]
        config: Any = self.config  # type: ignore[attr-defined]
        adapters = {f"backbone.{n}" for n in adapter_parameters(backbone)}
        others = sorted(n for n in self.trained_state() if n.startswith("backbone.") and n not in adapters)  # type: ignore[attr-defined]
        if not adapters or others:
            raise FPTError(
                f"Policy {config.train!r} trains {'no adapter' if not adapters else ', '.join(others[:3])} in the "
                "backbone, which a PEFT adapter cannot hold; only the lora, ia3 and ln-tuning policies map onto "
                "one. Use save_pretrained, which stores every trained parameter."
            )
        import peft

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        adapter = backbone.peft_config["default"]
        base = _base_model(self)
        adapter.base_model_name_or_path = base or self.backbone_source  # type: ignore[attr-defined]
        adapter.revision = _backbone_revision(self)
        adapter.save_pretrained(str(directory))
        state = peft.get_peft_model_state_dict(backbone)  # named as PeftModel.save_pretrained names them:
        tensors = {f"base_model.model.{n}": t.detach().float().cpu().contiguous() for n, t in state.items()}
        save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
        return directory

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs) -> str:
        """Upload config.json, model.safetensors and the card (its loading example names `repo_id`)."""
        return super().push_to_hub(
            repo_id, model_card_kwargs={"repo_id": repo_id, **(model_card_kwargs or {})}, **kwargs
        )

    def generate_model_card(self, *args, repo_id: str | None = None, **kwargs) -> ModelCard:
        config: Any = self.config  # type: ignore[attr-defined]
        summary = self.summary or {}
        hub = self.hub_config()
        task = summary.get("task")
        data = ModelCardData(
            library_name="fpt",
            tags=sorted({"fpt", "frozen-pretrained-transformer", "pytorch_model_hub_mixin", *([task] if task else [])}),
            base_model=_base_model(self),
            metrics=["accuracy"] if summary.get("test_accuracy") is not None else None,
        )
        revision = hub["backbone"]["revision"]
        return ModelCard.from_template(
            data,
            template_str=CARD_TEMPLATE,
            title=f"FPT: {task or 'custom task'} on frozen {config.backbone}",
            paper=PAPER,
            backbone=config.backbone,
            init=config.init,
            revision_note=f" at revision `{revision}`" if revision else "",
            task=_task_text(config, summary),
            results=_results_table(summary) if summary else "No run summary was attached to this model.",
            freeze_report=self.freeze_report(),  # type: ignore[attr-defined]
            repo_id=repo_id or "DIRECTORY_OR_REPO_ID",
            max_length=config.max_length,
            input_dim=config.input_dim,
            num_classes=config.num_classes,
            fpt_version=hub["fpt_version"],
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        config: dict | None = None,
        **unused,
    ):
        from fpt.model.fpt import FPTConfig  # deferred: fpt.model.fpt imports this module

        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise FPTError(
                f"{model_id} has no config.json written by FrozenPretrainedTransformer.save_pretrained "
                f"(expected format {FORMAT!r}); it is not a saved FPT model."
            )
        model_config = FPTConfig.from_dict({**config["model"], "revision": config["backbone"].get("revision")})
        model = cls.rebuilt(model_config)  # type: ignore[attr-defined]
        check_fingerprint({"fingerprint": config["fingerprint"]}, model, Path(model_id))
        if Path(model_id).is_dir():
            weights = str(Path(model_id) / WEIGHTS)
        else:
            weights = hf_hub_download(
                model_id,
                WEIGHTS,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        copy_trained(model, load_file(weights), model_id)
        model.summary = config.get("run")
        return model.to(map_location).eval()  # type: ignore[attr-defined]


def _task_text(config, summary: dict) -> str:
    shape = (
        f"Inputs: {config.max_length} tokens of {config.input_dim} "
        f"({config.input_kind}); outputs: {config.output_tokens} position(s) x {config.outputs_per_token} unit(s) "
        f"of {config.num_classes} classes."
    )
    if not summary.get("task"):
        return shape
    options = ", ".join(f"{k}={v}" for k, v in (summary.get("task_options") or {}).items())
    trained = f"Trained {summary.get('steps')} steps, policy `{summary.get('train', config.train)}`, seed {summary.get('seed')}."
    return f"`{summary['task']}`{f' ({options})' if options else ''}. {shape} {trained}"
