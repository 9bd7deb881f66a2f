"""What model a run builds, besides the task's shapes: architecture, backbone, init, what trains.

One `ModelConfig`, declared once: `RunConfig.model` holds it (its keys are flat in YAML files and
flags: `backbone: gpt2`, `--lora-rank 4`), and `FPTConfig` extends it with the task's shapes. Plain
Python, so `fpt train --help` builds its flags without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Literal

from fpt.errors import FPTError
from fpt.fields import option, problems

Architecture = Literal["transformer", "lstm", "lstm-paper"]
LSTMS = ("lstm", "lstm-paper")  # the paper's recurrent baselines, trained fully unless told otherwise


@dataclass
class ModelConfig:
    backbone: str = option("minilm", "named backbone (minilm, gpt2, ...), hub id or local directory")
    init: str = option("pretrained", "pretrained | random | stats | from:FILE.safetensors | from:RUN_DIR")
    train: str = option(
        None,
        "freeze policy: a preset (fpt, output, all, ...) or trained groups, e.g. input,output,norm; "
        "unset: fpt for the transformer, all for the LSTMs",
    )
    dropout: float = option(0.1, "dropout of the input layer and the backbone", min=0, below=1)
    attn_implementation: str = option("sdpa", "attention kernel: sdpa, or eager (slow; returns attention maps)")
    architecture: Architecture = option(
        "transformer",
        "transformer (the FPT), lstm (a strong 3-layer layer-norm LSTM) or lstm-paper (the authors' layer-norm "
        "LSTM cell, the paper's LSTM row); the LSTMs need --init random",
    )
    layers: int | None = option(
        None, "transformer: keep only the first N blocks; lstm: number of layers (3 if unset)", min=1, max=10_000
    )
    fast_paths: bool = option(
        True, "build the model with the exact CPU fast paths (fused GELU, CPU dropout, last block on read positions)"
    )
    method_options: dict = option(
        {}, "options of the method's tuner, e.g. {rank: 4} for lora (`fpt list methods` shows each method's)"
    )

    invalid_hint: ClassVar[str] = ""  # what the error for a bad value adds (where such a value comes from)

    def __post_init__(self) -> None:
        if self.train is None:
            self.train = "all" if self.architecture in LSTMS else "fpt"
        found = problems(self)
        if found:
            raise FPTError(
                " ".join(filter(None, ["Invalid model config: " + "; ".join(found) + ".", self.invalid_hint]))
            )

    @property
    def is_lstm(self) -> bool:
        return self.architecture in LSTMS


def model_keys() -> list[str]:
    """The ModelConfig keys, as flags and YAML files name them."""
    return [f.name for f in fields(ModelConfig)]
