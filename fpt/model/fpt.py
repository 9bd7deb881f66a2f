"""The Frozen Pretrained Transformer: new input layer -> frozen backbone -> new output layer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

import torch
from safetensors.torch import load_file
from torch import nn

from fpt.backbones import BackboneAdapter, adapter_for, load_backbone, load_config
from fpt.backbones.adapter import without_prefix
from fpt.backbones.groups import UNUSED
from fpt.errors import FPTError, unknown_keys
from fpt.fields import option, required
from fpt.model.config import ModelConfig
from fpt.model.embedders import ContinuousEmbedder, make_embedder, require_new_layers
from fpt.model.fast_paths import BackboneChoices, apply_fast_paths, choose
from fpt.model.freeze import ADAPTER_GROUP, GROUPS, FreezePolicy, GroupedParameters
from fpt.model.heads import head_for
from fpt.model.hub import FPTHubMixin
from fpt.model.init_source import check_source, resolve_init, source_path, source_run_model
from fpt.model.methods import tuner_options, upgrade_legacy_options
from fpt.model.unread import reading_last
from fpt.runs import load_trained, read_run_record, read_summary
from fpt.runs.checkpoint import hash_tensors

InputKind = Literal["continuous", "discrete"]
OutputKindName = Literal["classification", "regression"]
HeadName = Literal["last", "flatten"]


@dataclass(kw_only=True)
class FPTConfig(ModelConfig):
    """Everything needed to rebuild a model: the task's shapes plus the run's ModelConfig (backbone,
    init, freezing, ...), the seed of random inits, and what pins the backbone's weights."""

    input_dim: int = required("values per token (continuous) or vocabulary size (discrete)", min=1)
    max_length: int = required("longest input sequence, in tokens", min=1)
    num_classes: int = required("outputs per predicted unit: its classes (2 for bits); 1 for regression", min=1)
    output_tokens: int = option(1, "k: how many final positions the head reads", min=1)
    outputs_per_token: int = option(1, "units predicted from each read position", min=1)
    outputs: OutputKindName = option("classification", "what the task predicts (fpt.tasks.outputs)")
    head: HeadName = option("last", "last: each read position predicts its units; flatten: one map over all of them")
    input_kind: InputKind = option("continuous", "continuous (vectors) or discrete (token ids)")
    init_seed: int = option(0, "seed of `random` and `stats` initialisations", min=0)
    init_fingerprint: str | None = option(None, "from: inits: SHA-256 of the loaded backbone state, checked on rebuild")
    revision: str | None = option(None, "a hub backbone's commit, branch or tag (None: the cached or newest one)")

    # Read from a run's config.yaml or a saved model's config.json: a bad value was edited in after training.
    invalid_hint = (
        "(Read from a run's config.yaml `model:` or a saved model's config.json? Restore the values training wrote.)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.is_lstm:
            raise FPTError(f"FPTConfig builds a transformer; architecture {self.architecture!r} is an LSTMConfig's.")

    @classmethod
    def from_dict(cls, values: dict) -> FPTConfig:
        return config_from_dict(cls, upgrade_legacy_options(values), "model")


def config_from_dict(cls, values: dict, what: str):
    """`cls(**values)` for a config dataclass, naming any key it does not know."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(map(str, set(values) - set(known)))
    if unknown:
        raise unknown_keys(f"the {what} config", unknown, known)
    return cls(**values)


# Config keys that say where and with which library version a backbone was loaded, not what it computes:
# left out of the fingerprint so a checkpoint reloads in another install, folder or transformers release.
WHERE_LOADED = ("_name_or_path", "transformers_version")


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def architecture_hash(config, plain: dict | None = None) -> str:
    """A hash of the backbone's architecture config (see WHERE_LOADED for what it ignores), with the
    `plain` values of settings a fast path chose (fpt.model.fast_paths): the same with or without them."""
    values = config.to_dict() | (plain or {})
    return _sha256_json({k: v for k, v in values.items() if k not in WHERE_LOADED})


class FrozenPretrainedTransformer(GroupedParameters, FPTHubMixin):
    """A backbone whose groups are frozen or trained per `FPTConfig.train`, between new I/O layers.

    Build with `FrozenPretrainedTransformer(config)`; reload a trained run with `from_run(run_dir)`;
    share it with `save_pretrained(dir)` / `push_to_hub(repo)` and `from_pretrained(dir_or_repo)` (fpt.model.hub).
    """

    def __init__(self, config: FPTConfig):
        super().__init__()
        config = replace(config, init=resolve_init(config.init))  # absolute: rebuildable from any folder
        check_source(config.init, config.backbone)
        self.config = config
        self.policy = FreezePolicy.parse(config.train)
        self.method_options = tuner_options(self.policy, config.method_options)  # typed, checked
        self.backbone_choices = (
            choose(load_config(config.backbone, config.revision), config.attn_implementation)
            if config.fast_paths
            else BackboneChoices(config.attn_implementation)
        )
        backbone = self._load_backbone(config, self.backbone_choices)
        adapter = adapter_for(backbone.model)
        adapter.keep_first(config.layers)
        self.backbone_name, self.backbone_source = backbone.name, backbone.source
        # Recorded in summary.json: a stretched table makes a cell differ from one that cuts inputs.
        prompt = getattr(self.method_options, "prefix_tokens", 0)  # a soft prompt's tokens need positions too
        self.position_table = adapter.fit_positions(config.max_length + prompt)
        self.backbone = adapter.model
        hidden = adapter.width
        require_new_layers(config, hidden)
        self.embedder = make_embedder(config.input_kind, config.input_dim, hidden, config.dropout)
        # Rotary/relative backbones have no position table to train: give them a learned absolute
        # one, drawn small (the backbone's initializer_range) rather than zero. A zero table plus the
        # zero-bias input layer embeds a 0 bit to exactly zero, and in a bias-free stack with norms
        # after each sub-layer (Gemma 3) that token stays zero through every layer while each norm
        # scales its gradient by 1/sqrt(eps): gemma3-270m's gradients overflowed to NaN on step 1.
        # Policies that leave positions alone (lora, ia3, ln-tuning) get no table, so the input
        # layer's bias is drawn the same way instead, for the same reason.
        self.learned_positions = None
        self.input_bias_drawn = False
        if adapter.position_table() is None:
            std = float(getattr(self.backbone.config, "initializer_range", 0.02))
            if self.policy.trains("position"):
                self.learned_positions = nn.Parameter(torch.randn(config.max_length, hidden) * std)
            elif isinstance(self.embedder, ContinuousEmbedder):
                nn.init.normal_(self.embedder.proj.bias, std=std)
                self.input_bias_drawn = True
        self.head = head_for(config, hidden)
        self.soft_prompt: nn.Module | None = None  # a tuner's embeddings put before every input (prompt tuning)
        self.tuner_parameters = self._add_tuner()
        self.groups = self._classify()
        present = {g for g in self.groups.values() if g != UNUSED}
        self.policy.check_against(present, config.backbone)
        for name, param in self.named_parameters():
            param.requires_grad_(self.groups[name] != UNUSED and self.policy.trains(self.groups[name]))
        self.fingerprint = self._fingerprint()
        self.fast_paths = apply_fast_paths(self, self.backbone_choices) if config.fast_paths else []

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def _load_backbone(config: FPTConfig, choices: BackboneChoices):
        """The backbone per `config.init`, built with `choices`; a `from:` state is checked against (or
        recorded in) init_fingerprint."""
        attention, settings = choices.attn_implementation, choices.settings
        if not config.init.startswith("from:"):
            return load_backbone(config.backbone, config.init, config.init_seed, attention, config.revision, settings)
        path = cast(Path, source_path(config.init))  # a from: init (checked by check_source): a run directory or a file
        if source_run_model(path) is not None:
            source = FrozenPretrainedTransformer.from_run(path)
            if any(name.startswith("backbone.") for name in source.tuner_parameters):
                raise FPTError(
                    f"--init from:{path}: that run trained a {source.policy.adapter} adapter inside its backbone, "
                    "whose weights are not a plain backbone's. Start from a run without an adapter (fpt, all, ...)."
                )
            backbone = load_backbone(config.backbone, "random", 0, attention, settings=settings)
            adapter = adapter_for(backbone.model)
            adapter.keep_first(source.config.layers)
            state = source.backbone.state_dict()
            if source.backbone_adapter.position_limit is not None:
                adapter.fit_positions(source.backbone_adapter.position_limit)
            backbone.model = adapter.model
        else:
            backbone = load_backbone(config.backbone, "random", 0, attention, settings=settings)
            try:
                state = load_file(str(path))
            except Exception as err:
                raise FPTError(
                    f"Could not read backbone weights from {path}: {err}. Expected a safetensors file."
                ) from err
        result = backbone.model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise FPTError(
                f"Backbone weights in {path} do not fit backbone {backbone.name!r}: missing "
                f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}."
            )
        fingerprint = hash_tensors(sorted(state.items()))
        if config.init_fingerprint not in (None, fingerprint):
            raise FPTError(
                f"The backbone state in {path} changed since this model was made from it (fingerprint "
                f"{config.init_fingerprint[:12]}..., now {fingerprint[:12]}...); the trained parameters were fitted to "
                "the old one. Restore the source run or file, or train again."
            )
        config.init_fingerprint = fingerprint
        backbone.init = config.init
        return backbone

    @property
    def backbone_adapter(self) -> BackboneAdapter:
        """How this model drives its backbone (fpt.backbones.adapter)."""
        return adapter_for(self.backbone)

    @property
    def prefix_tokens(self) -> int:
        """Positions the backbone computes before the input's tokens (ViT's [CLS], a soft prompt's);
        outputs leave them out."""
        return self.backbone_adapter.prefix_tokens + self._prompt_tokens

    @property
    def _prompt_tokens(self) -> int:
        return 0 if self.soft_prompt is None else int(cast(Any, self.soft_prompt).prefix_tokens)

    def _add_tuner(self) -> set[str]:
        """Add the policy's tuner (fpt.model.methods) after the new layers, so that they start as in every
        other policy with this seed; returns the names of the parameters it created (the `adapter` group)."""
        if self.policy.tuner is None:
            return set()
        before = {id(p) for p in self.parameters()}  # PEFT moves wrapped weights (base_layer.), never copies them
        self.policy.tuner.add(self, self.method_options)
        return {name for name, p in self.named_parameters() if id(p) not in before}

    def _classify(self) -> dict[str, str]:
        groups = {f"backbone.{n}": g for n, g in self.backbone_adapter.groups().items()}
        groups.update({f"embedder.{n}": "input" for n, _ in self.embedder.named_parameters()})
        groups.update({f"head.{n}": "output" for n, _ in self.head.named_parameters()})
        if self.learned_positions is not None:
            groups["learned_positions"] = "position"
        groups.update({name: ADAPTER_GROUP for name in self.tuner_parameters})
        return groups

    def _fingerprint(self) -> dict:
        """Identifies the frozen weights a checkpoint depends on but does not store."""
        frozen = [(n, p) for n, p in self.backbone.named_parameters(prefix="backbone") if not p.requires_grad]
        return {
            "backbone": self.backbone_name,
            "source": self.backbone_source,
            "init": self.config.init,
            "config_hash": architecture_hash(self.backbone.config, self.backbone_choices.plain),
            "weights_hash": hash_tensors(frozen),
            "init_fingerprint": self.config.init_fingerprint,
            "train": self.config.train,  # not checked alone: it names the policy when the weights differ
        }

    def rebuildable(self, name: str) -> bool:
        """The backbone's frozen weights are fingerprinted; the new layers are random draws."""
        return name.startswith("backbone.")

    @classmethod
    def rebuilt(cls, config: FPTConfig) -> FrozenPretrainedTransformer:
        """The model as `fpt train` built it, right after seeding torch with the run's seed, so that frozen
        new layers a checkpoint from before they were saved lacks come out as they were trained."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            return cls(config)

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "best") -> FrozenPretrainedTransformer:
        """Rebuild the model of a finished run and load its trained parameters."""
        model = cls.rebuilt(FPTConfig.from_dict(read_run_record(run_dir).model))
        load_trained(model, Path(run_dir), which)
        model.summary = read_summary(run_dir)  # task and metrics, for the model card of save_pretrained
        return model

    # -- use ----------------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, units, classes) for `inputs`; `mask` (batch, tokens) marks real tokens."""
        length = inputs.shape[1]
        if length > self.config.max_length:
            raise FPTError(
                f"Input has {length} tokens but the model was built for at most {self.config.max_length}; "
                "rebuild it with a larger max_length."
            )
        with reading_last(self.backbone, self.head.output_tokens if mask is None else None):  # padded: all positions
            states = self.encode(inputs, mask).last_hidden_state
        lengths = mask.sum(dim=1) if mask is not None else None
        return self.head(states, lengths)

    def encode(self, inputs: torch.Tensor, mask: torch.Tensor | None = None, **backbone_kwargs):
        """The backbone's output on embedded `inputs`; pass output_attentions=True for attention maps."""
        x = self.embedder(inputs)
        if self.learned_positions is not None:
            x = x + self.learned_positions[: inputs.shape[1]]
        if self.soft_prompt is not None:
            x, mask = self.soft_prompt(x, mask)
        return without_prefix(self.backbone_adapter.forward(x, mask, **backbone_kwargs), self._prompt_tokens)

    def freeze_report(self) -> str:
        """A table of groups, counts and states, with notes on position handling."""
        counts = self.group_counts()
        total = sum(c for c, _ in counts.values())
        trained = sum(p.numel() for p in self.parameters() if p.requires_grad)
        lines = [
            f"Backbone {self.backbone_name} ({type(self.backbone).__name__}, init {self.config.init}), policy {self.policy.spec!r}"
        ]
        lines.append(f"  {'group':<14}{'parameters':>14}  state")
        for group in (*GROUPS, UNUSED):
            if group in counts:
                count, is_trained = counts[group]
                state = "never called" if group == UNUSED else ("trained" if is_trained else "frozen")
                label = self.backbone_adapter.unused_label if group == UNUSED else group
                lines.append(f"  {label:<14}{count:>14,}  {state}")
        lines.append(f"  trained {trained:,} of {total:,} parameters ({100 * trained / total:.3f}%)")
        lines += [f"  note: {note}" for note in self.backbone_adapter.report_notes()]
        if self.learned_positions is not None:
            lines.append(
                "  note: the backbone has no learned position table (rotary/relative); a learned "
                "absolute position embedding (normal, std = the backbone's initializer_range) was added and is trained"
            )
        if self.input_bias_drawn:
            lines.append(
                "  note: the backbone has no position table and this policy adds none; the input layer's bias is "
                "drawn small (normal, std = initializer_range) so that a zero input is not an exactly-zero token"
            )
        if self.policy.tuner:
            lines.append(f"  note: {self.policy.tuner.describe(self, self.method_options)}")
        if "attention-norm" in counts and not counts["attention-norm"][1]:
            lines.append(
                "  note: attention-norm (QK-norms inside attention) stays frozen as the paper's block-norm "
                "recipe has it; train it with --train fpt,attention-norm"
            )
        if self.config.layers is not None:
            lines.append(f"  note: only the first {self.config.layers} transformer blocks are kept")
        lines.append(f"  fast paths: {', '.join(self.fast_paths) or 'none'} (fpt.model.fast_paths)")
        if self.position_table:
            lines.append(
                f"  note: the position table was interpolated from {self.position_table['interpolated_from']} "
                f"to {self.position_table['to']} positions"
            )
        return "\n".join(lines)

    def config_dict(self) -> dict:
        return asdict(self.config)
