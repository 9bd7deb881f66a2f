"""PEFT adapters in the frozen backbone, through Hugging Face `peft`: the methods lora, fpt+lora, ia3
and ln-tuning, and their export as PEFT adapters.

`peft.inject_adapter_in_model` wraps the targeted modules of the backbone in place, so the backbone
stays the same `transformers` model and every parameter keeps a stable name (the wrapped layer's
weights move under `base_layer.`). Adapter tensors form their own parameter group, `adapter`: they
are found structurally, as the `adapter_layer_names` of each PEFT tuner layer, never by name.

Target modules default to peft's per-architecture tables (GPT-2's Conv1D `c_attn`, BERT's
`query`/`value`, Llama-style `q_proj`/`v_proj` for LoRA; keys/values and the feed-forward output
for IA3). LN-tuning differs from the `norm` group in two ways: it trains a copy of each targeted
norm and leaves the pretrained norm frozen and intact (the adapter can be removed again), and it
targets the norms in peft's table for the architecture, which for some families is fewer than
every norm (Qwen2/3: only the post-attention norms). Where peft has no table (BERT/MiniLM), every
module of our `norm` group is targeted, so `ln-tuning` then computes what `output+norm+input` does.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from safetensors.torch import save_file
from torch import nn

from fpt.backbones.adapter import adapter_for
from fpt.backbones.groups import is_norm
from fpt.errors import FPTError, install_hint
from fpt.memory import require
from fpt.model.methods import Method, Tuner, register_method
from fpt.model.methods.groups import FPT

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ADAPTERS = ("lora", "ia3", "ln-tuning")


@dataclass(frozen=True)
class TargetOptions:
    """Options of IA3 and LN-tuning (`--method-option targets=...`)."""

    targets: str | None = None  # modules the adapter wraps, comma-separated, e.g. q_proj,v_proj; unset: peft's table

    def __post_init__(self) -> None:
        _check_named(self.targets)


@dataclass(frozen=True)
class LoraOptions:
    """Options of LoRA (`--method-option rank=4`): PEFT's LoraConfig `r`, `lora_alpha`, `target_modules`."""

    rank: int = 8  # LoRA rank
    alpha: float = 16.0  # updates are scaled by alpha / rank
    targets: str | None = None  # modules wrapped, comma-separated, e.g. q_proj,v_proj; unset: peft's table

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0:
            raise FPTError(f"LoRA needs rank >= 1 and alpha > 0 (got rank {self.rank}, alpha {self.alpha}).")
        _check_named(self.targets)


def _check_named(targets: str | None) -> None:
    """Targets given must name a module: `,,` would fall back to peft's defaults without a word."""
    if targets is not None and not any(t.strip() for t in targets.split(",")):
        raise FPTError(
            f"targets {targets!r} names no module; give module names such as q_proj,v_proj (matched at the end of "
            "each module's name), or leave it out for peft's defaults."
        )


def _peft():
    try:
        import peft
    except ImportError as err:
        raise FPTError(
            "The adapter policies (lora, fpt+lora, ia3, ln-tuning) use Hugging Face's `peft`, which is not "
            f"installed. Install it with {install_hint('peft', 'peft')}."
        ) from err
    return peft


def _default_targets(method: str, backbone: nn.Module) -> list[str] | None:
    """None where peft has a table for the architecture; our norm modules for LN-tuning without one."""
    from peft import __version__ as peft_version
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    tables: dict[str, dict] = {
        "lora": TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
        "ia3": TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        "ln-tuning": TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING,
    }
    model_type = getattr(backbone.config, "model_type", None)
    if model_type in tables[method]:
        return None
    if method == "ln-tuning":  # our `norm` group: not the queries'/keys' norms (`attention-norm`)
        groups = adapter_for(cast("PreTrainedModel", backbone)).groups()
        names = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, m in backbone.named_modules()
                if name
                and is_norm(m)
                and any(groups.get(f"{name}.{p}") == "norm" for p, _ in m.named_parameters(recurse=False))
            }
        )
        if names:
            return names
    raise FPTError(
        f"peft {peft_version} has no default {method} target modules for backbone type {model_type!r}; "
        "name the modules to wrap with --method-option, e.g. `--method-option targets=q_proj,v_proj` (module names "
        "as in `fpt describe`'s backbone, matched at the end of each module's name), or upgrade peft "
        "(`pip install -U peft`), whose newer releases know more architectures."
    )


def _config(peft, method: str, targets: list[str] | None, rank: int, alpha: float, backbone: nn.Module):
    from transformers.pytorch_utils import Conv1D

    conv1d = any(isinstance(m, Conv1D) for m in backbone.modules())  # GPT-2 stores its linear layers transposed
    if method == "lora":
        return peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, fan_in_fan_out=conv1d)
    if method == "ia3":
        # IA3 needs its feed-forward modules named too; peft's table has both where it has one.
        return peft.IA3Config(
            target_modules=targets, feedforward_modules=[] if targets else None, fan_in_fan_out=conv1d
        )
    return peft.LNTuningConfig(target_modules=targets)


def inject_adapter(backbone: nn.Module, method: str, rank: int = 8, alpha: float = 16, targets: str | None = None):
    """Wrap `backbone`'s target modules with `method`'s adapter, in place. Returns the backbone."""
    if method not in ADAPTERS:
        raise FPTError(f"Unknown adapter {method!r}; known: {', '.join(ADAPTERS)}.")
    peft = _peft()
    wanted = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    wanted = wanted or _default_targets(method, backbone)
    if method == "lora":
        _require_lora_memory(backbone, wanted, rank)
    config = _config(peft, method, wanted, rank, alpha, backbone)
    # peft resolves its per-architecture table from the model's config; it only reads `model_type`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            peft.inject_adapter_in_model(config, backbone)
        except ValueError as err:
            said = str(err).strip().splitlines()[0][:300]  # peft may print a whole module tree after it
            raise FPTError(
                f"peft could not add {method} to backbone {type(backbone).__name__}: {said} Check its targets "
                "(module names matched at the end of each module's name; `fpt describe` lists them)."
            ) from err
    return backbone


def _require_lora_memory(backbone: nn.Module, targets: list[str] | None, rank: int) -> None:
    """Refuse (before peft allocates it) a LoRA whose matrices cannot fit: rank x (inputs + outputs) per
    wrapped matrix, each parameter held with its gradient and Adam's two moments (fpt.memory's floor)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    names = targets or TABLE.get(str(getattr(backbone.config, "model_type", "")), [])
    shapes = [
        tuple(module.weight.shape)
        for name, module in backbone.named_modules()
        if any(name == t or name.endswith("." + t) for t in names) and getattr(module, "weight", None) is not None
    ]
    shapes = [shape for shape in shapes if len(shape) == 2]
    parameters = rank * sum(rows + columns for rows, columns in shapes)
    widest = max((min(shape) for shape in shapes), default=0)
    if shapes and rank > widest:
        raise FPTError(
            f"LoRA rank {rank:,} exceeds the rank any adapted matrix can take ({widest:,}, the smaller side of the "
            f"largest of its {len(shapes)} matrices): a LoRA update of higher rank is no different, only larger "
            f"({parameters:,} parameters here). Use a rank of {widest:,} or less (usually 4 to 64)."
        )
    require(
        f"LoRA rank {rank:,} on {len(shapes)} matrices ({parameters:,} adapter parameters, trained with Adam)",
        16.0 * parameters,
        f"Lower the rank (--method-option rank=N): LoRA's ranks are usually 4 to 64, and a rank above {widest:,} (the smaller side of "
        "the matrices it adapts) adds parameters but nothing a full-rank update could not do.",
    )


def check_targets(backbone_name: str, targets: str | None) -> None:
    """Refuse adapter targets that match no module of the backbone, as peft matches them (a module's name,
    or its end after a dot), from the backbone's config alone: the model is built on the meta device, no
    weights are read, so a grid is checked before its first run."""
    if targets is None:
        return
    wanted = [t.strip() for t in targets.split(",") if t.strip()]
    import torch
    from transformers import AutoModel

    from fpt.backbones import load_config

    with torch.device("meta"):
        model = AutoModel.from_config(load_config(backbone_name))
    names = [name for name, module in model.named_modules() if name]
    missing = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if n and not list(m.children())})
        raise FPTError(
            f"Adapter targets {', '.join(missing)}: backbone {backbone_name!r} has no module of that name (names "
            f"match at the end of a module's name); its layers are named {', '.join(leaves[:30])}."
        )


def adapter_modules(model: nn.Module) -> dict[str, Any]:
    """The PEFT tuner layers in `model`, by name."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no peft: no adapter can be in the model
        return {}
    return {name: m for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)}


def adapter_parameters(model: nn.Module) -> set[str]:
    """Names (relative to `model`) of every PEFT adapter tensor in it."""
    names: set[str] = set()
    for prefix, module in adapter_modules(model).items():
        for attr in module.adapter_layer_names:
            holder = getattr(module, attr, None)
            if isinstance(holder, nn.Module):
                base = f"{prefix}.{attr}" if prefix else attr
                names.update(f"{base}.{n}" for n, _ in holder.named_parameters())
    return names


def wrapped_modules(backbone: nn.Module) -> list[str]:
    """The backbone modules an adapter wraps, with block numbers as N."""
    return sorted({re.sub(r"\.\d+\.", ".N.", name) for name in adapter_modules(backbone)})


def export_peft_adapter(model: Any, directory: Path) -> Path:
    """Write the backbone's trained adapter as PEFT does: adapter_config.json and adapter_model.safetensors,
    loadable with `peft.PeftModel.from_pretrained` on the backbone. The FPT's input and output layers are
    not part of the backbone; they travel in `save_pretrained`'s files."""
    import peft

    from fpt.model.card import base_model
    from fpt.model.hub import backbone_revision

    backbone = model.backbone
    adapters = {f"backbone.{n}" for n in adapter_parameters(backbone)}
    others = sorted(n for n in model.trained_state() if n.startswith("backbone.") and n not in adapters)
    if others:
        raise FPTError(
            f"Policy {model.config.train!r} also trains {', '.join(others[:3])} in the backbone, which a PEFT "
            "adapter cannot hold. Use save_pretrained, which stores every trained parameter."
        )
    adapter = backbone.peft_config["default"]
    adapter.base_model_name_or_path = base_model(model.config, model.backbone_source) or model.backbone_source
    adapter.revision = backbone_revision(model)
    adapter.save_pretrained(str(directory))
    state = peft.get_peft_model_state_dict(backbone)  # named as PeftModel.save_pretrained names them:
    tensors = {f"base_model.model.{n}": t.detach().float().cpu().contiguous() for n, t in state.items()}
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    return directory


def _tuner(name: str, options: type) -> Tuner:
    def add(model: Any, chosen: Any) -> None:
        if isinstance(chosen, LoraOptions):
            inject_adapter(model.backbone, name, chosen.rank, chosen.alpha, chosen.targets)
        else:  # IA3 and LN-tuning have no rank or scale
            inject_adapter(model.backbone, name, targets=chosen.targets)

    def describe(model: Any, chosen: Any) -> str:
        return f"adapter {name} (peft) on {', '.join(wrapped_modules(model.backbone))}"

    def precheck(backbone_name: str, chosen: Any) -> None:
        check_targets(backbone_name, chosen.targets)

    return Tuner(name, add, describe, options, export_peft_adapter, precheck)


LORA = _tuner("lora", LoraOptions)
NEW_LAYERS = ("input", "output")  # nothing else reads or writes the new modality: they train with every adapter
register_method(
    Method(
        "ln-tuning",
        (*NEW_LAYERS, "adapter"),
        "PEFT LN-tuning: trained copies of the norms",
        "LN-tuning",
        _tuner("ln-tuning", TargetOptions),
    )
)
register_method(Method("lora", (*NEW_LAYERS, "adapter"), "PEFT LoRA in the frozen attention", "LoRA", LORA))
register_method(Method("fpt+lora", (*FPT, "adapter"), "FPT's groups and LoRA", "FPT+LoRA", LORA))
register_method(
    Method(
        "ia3",
        (*NEW_LAYERS, "adapter"),
        "PEFT IA3: learned rescaling of keys, values and feed-forward",
        "IA3",
        _tuner("ia3", TargetOptions),
    )
)
