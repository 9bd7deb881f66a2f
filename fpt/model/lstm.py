"""The paper's recurrent baselines: a layer-norm LSTM, fully trained or frozen at random init.

Same input layer and output head as the FPT, so the two differ only in what sits between them. Two
cells, both Ba et al.'s layer-norm LSTM (input and recurrent pre-activations normalised separately,
the cell state normalised before its tanh), kept under two names because they learn very differently:

- `lstm`: a strong, standard LN-LSTM: LayerNorm gains 1 and biases 0, forget-gate bias 1, zero
  initial state, the raw cell state carried to the next step, no dropout inside the recurrence.
- `lstm-paper`: the cell of the authors' code (the paper's LSTM row): every weight, bias and
  layer-norm gain/bias uniform in +-1/sqrt(n) (gains near zero, not 1), layer norm with the unbiased
  variance and eps 1e-6 inside the root, the *normalised* cell state carried, initial h0/c0 drawn
  from N(0, 2 / (in + hidden)) on every forward (training and evaluation alike, from torch's seeded
  generator), dropout on h_t (so on the carried state too).

Parameter groups reuse the FPT's names: input, output, norm, and `other` for the recurrent weights,
so `--train all` (the default for LSTMs) trains everything and `--train fpt` leaves the recurrent
weights frozen at random init with the input, output and norm parameters trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fpt.errors import FPTError
from fpt.model.embedders import make_embedder, require_new_layers
from fpt.model.fpt import config_from_dict
from fpt.model.freeze import FreezePolicy, GroupedParameters
from fpt.model.heads import head_for
from fpt.runs import load_trained, read_run_record
from fpt.runs.checkpoint import hash_tensors

RECURRENT = "other"  # the freeze group of the LSTM's recurrent and input-to-gate weights
ARCHITECTURES = ("lstm", "lstm-paper")


@dataclass
class LSTMConfig:
    """The task's shapes (as in `FPTConfig`) plus the LSTM's size and what trains."""

    input_dim: int
    max_length: int
    num_classes: int
    output_tokens: int = 1
    outputs_per_token: int = 1
    outputs: str = "classification"  # what the task predicts (fpt.tasks.outputs)
    head: str = "last"  # how the head reads its positions (fpt.model.heads)
    input_kind: str = "continuous"
    hidden: int = 768
    layers: int = 3
    train: str = "all"  # `all`: fully trained; `fpt`: frozen random recurrent weights
    init_seed: int = 0
    dropout: float = 0.1
    architecture: str = "lstm"  # lstm (strong cell) | lstm-paper (the authors' cell); see the module docstring

    @classmethod
    def from_dict(cls, values: dict) -> LSTMConfig:
        return config_from_dict(cls, values, "LSTM")


class LayerNormLSTMLayer(nn.Module):
    """One layer-norm LSTM layer over a whole sequence (batch, tokens, width)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.input_gates = nn.Linear(width, 4 * hidden, bias=False)
        self.recurrent_gates = nn.Linear(hidden, 4 * hidden, bias=True)
        self.input_norm = nn.LayerNorm(4 * hidden)
        self.recurrent_norm = nn.LayerNorm(4 * hidden)
        self.cell_norm = nn.LayerNorm(hidden)
        with torch.no_grad():  # forget-gate bias 1: the usual remedy for early vanishing memory
            self.recurrent_gates.bias.zero_()
            self.recurrent_gates.bias[hidden : 2 * hidden] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from_inputs = self.input_norm(self.input_gates(x))  # no recurrence: all time steps at once
        h = x.new_zeros(x.shape[0], self.hidden)
        c = x.new_zeros(x.shape[0], self.hidden)
        outputs = []
        for step_inputs in from_inputs.unbind(1):  # unbind, not [:, t]: one gradient buffer, not one per step
            gates = step_inputs + self.recurrent_norm(self.recurrent_gates(h))
            i, f, o, g = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(self.cell_norm(c))
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class PaperLayerNorm(nn.Module):
    """The authors' layer norm: unbiased variance, eps inside the root, gain and bias uniform +-1/sqrt(n)."""

    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        bound = 1 / math.sqrt(size)
        self.weight = nn.Parameter(torch.empty(size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + self.eps)
        return self.weight * x + self.bias


class PaperLayerNormLSTMLayer(nn.Module):
    """One layer of the authors' layer-norm LSTM (see the module docstring for how it differs)."""

    def __init__(self, width: int, hidden: int, dropout: float):
        super().__init__()
        self.width, self.hidden, self.dropout = width, hidden, dropout
        self.input_gates = nn.Linear(width, 4 * hidden)
        self.recurrent_gates = nn.Linear(hidden, 4 * hidden)
        bound = 1 / math.sqrt(hidden)
        for linear in (self.input_gates, self.recurrent_gates):
            for param in linear.parameters():
                nn.init.uniform_(param, -bound, bound)
        self.input_norm = PaperLayerNorm(4 * hidden)
        self.recurrent_norm = PaperLayerNorm(4 * hidden)
        self.cell_norm = PaperLayerNorm(hidden)

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        std = math.sqrt(2.0 / (self.width + self.hidden))
        h, c = (torch.randn(batch, self.hidden, device=like.device, dtype=like.dtype) * std for _ in range(2))
        return h, c

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        h, c = state if state is not None else self.initial_state(x.shape[0], x)
        from_inputs = self.input_norm(self.input_gates(x))
        outputs = []
        for step_inputs in from_inputs.unbind(1):
            i, f, o, g = (step_inputs + self.recurrent_norm(self.recurrent_gates(h))).chunk(4, dim=-1)
            c = self.cell_norm(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g))  # carried normalised
            h = F.dropout(torch.sigmoid(o) * torch.tanh(c), self.dropout, self.training)  # carried dropped
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class LSTMBaseline(GroupedParameters):
    """Input layer -> `layers` layer-norm LSTM layers -> output head reading the last k positions."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        if not isinstance(config.layers, int) or config.layers < 1:
            raise FPTError(f"The LSTM needs at least one layer, got layers={config.layers!r}.")
        if config.architecture not in ARCHITECTURES:
            raise FPTError(
                f"Unknown LSTM architecture {config.architecture!r}; expected one of {', '.join(ARCHITECTURES)}."
            )
        self.config = config
        self.policy = FreezePolicy.parse(config.train)
        if self.policy.adapter:
            raise FPTError(
                f"Freeze policy {config.train!r} adds a {self.policy.adapter} adapter to a pretrained transformer; "
                "the LSTM baseline has none to wrap. Train it with output, output+norm, output+norm+input or all."
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)  # the frozen random weights depend on this seed only
            require_new_layers(config, config.hidden)
            self.embedder = make_embedder(config.input_kind, config.input_dim, config.hidden, config.dropout)
            self.lstm = nn.ModuleList(
                PaperLayerNormLSTMLayer(config.hidden, config.hidden, config.dropout)
                if config.architecture == "lstm-paper"
                else LayerNormLSTMLayer(config.hidden, config.hidden)
                for _ in range(config.layers)
            )
            self.head = head_for(config, config.hidden)
        self.groups = {}
        for name, module in self.named_modules():
            for pname, _ in module.named_parameters(recurse=False):
                full = f"{name}.{pname}"
                self.groups[full] = (
                    "input"
                    if name.startswith("embedder")
                    else "output"
                    if name.startswith("head")
                    else "norm"
                    if isinstance(module, (nn.LayerNorm, PaperLayerNorm))
                    else RECURRENT
                )
        self.policy.check_against(set(self.groups.values()), "lstm")
        for name, param in self.named_parameters():
            param.requires_grad_(self.policy.trains(self.groups[name]))
        frozen = [(n, p) for n, p in self.named_parameters() if not p.requires_grad]
        self.backbone_name = config.architecture
        self.fast_paths: list[str] = []  # the FPT rewrites (fpt.model.fast_paths) do not apply to the LSTM
        self.fingerprint = {
            "backbone": config.architecture,
            "source": "random",
            "init": f"random:{config.init_seed}",
            "config_hash": str(sorted(asdict(config).items())),
            "weights_hash": hash_tensors(frozen),
            "train": config.train,
        }

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embedder(inputs)
        for layer in self.lstm:
            x = layer(x)  # right padding never reaches the real positions: the LSTM reads left to right
        return self.head(x, mask.sum(dim=1) if mask is not None else None)

    def freeze_report(self) -> str:
        counts = self.group_counts()
        total = sum(c for c, _ in counts.values())
        trained = sum(c for c, t in counts.values() if t)
        cell = "the authors' cell" if self.config.architecture == "lstm-paper" else "strong cell"
        lines = [
            f"LSTM baseline ({self.config.architecture}, {cell}): {self.config.layers} layer-norm LSTM layers, "
            f"{self.config.hidden} wide, random init (seed {self.config.init_seed}), policy {self.policy.spec!r}"
        ]
        lines.append(f"  {'group':<14}{'parameters':>14}  state")
        for group in ("input", "output", "norm", RECURRENT):
            count, is_trained = counts[group]
            label = "recurrent" if group == RECURRENT else group
            lines.append(f"  {label:<14}{count:>14,}  {'trained' if is_trained else 'frozen'}")
        lines.append(f"  trained {trained:,} of {total:,} parameters ({100 * trained / total:.3f}%)")
        return "\n".join(lines)

    def config_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "best") -> LSTMBaseline:
        model = cls(LSTMConfig.from_dict(read_run_record(run_dir).model))
        load_trained(model, Path(run_dir), which)
        return model
