"""The methods that only choose which pretrained groups train: the paper's FPT recipe, its ablations
(Table 5: output only, + layer norm, + input, + position (FPT), + feed-forward, + attention) and full
fine-tuning. They add nothing to the model.

`norm` is the block layer norms the paper trains; `attention-norm` (QK-norms inside attention, Gemma 3
/ Qwen3) is part of attention, so it trains with `fpt+attention` and `all` only.
"""

from __future__ import annotations

from fpt.model.freeze import NAMED_GROUPS
from fpt.model.methods import Method, register_method

FPT = ("input", "output", "position", "norm")

register_method(Method("fpt", FPT, "the paper's recipe: new input and output layers, positions and layer norms", "FPT"))
register_method(Method("output", ("output",), "the output layer only (Table 5's first column)", "output only"))
register_method(Method("output+norm", ("output", "norm"), "output layer and layer norms"))
register_method(Method("output+norm+input", ("output", "norm", "input"), "output, layer norms and input layer"))
register_method(Method("fpt+ff", (*FPT, "feed-forward"), "FPT and the feed-forward layers"))
register_method(Method("fpt+attention", (*FPT, "attention-norm", "attention"), "FPT and the attention layers"))
register_method(Method("all", NAMED_GROUPS, "every parameter: full fine-tuning", "full fine-tuning"))
