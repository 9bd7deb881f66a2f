"""What a frozen Gemma 3 270M does with Bit XOR inputs (+-1) before any training: pretrained vs random init.

Builds the untrained FPT (`fpt train`'s model at step 0: fresh input layer, zero learned positions)
for each init, runs the Bit XOR validation inputs through it with eager attention, and reports per
layer, averaged over heads, examples and the 5 output positions (which see 6 to 10 tokens, causal):
the attention entropy as a fraction of the uniform entropy over the visible tokens, the mass on the
first token (an attention sink), on the query itself, and on the XOR partner bit; and the RMS of the
residual stream. A sharp, sink-dominated pattern is one the trained input/position/norm layers must
work against; a diffuse one mixes every visible token.

    python benchmarks/gemma_init_attention.py [--examples 200] [--record]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import transformers

from fpt import FPTConfig, FrozenPretrainedTransformer
from fpt.experiments.attention import split_tensors
from fpt.tasks import get_task

RESULTS = Path(__file__).parent / "results"


@torch.inference_mode()
def profile(init: str, inputs: torch.Tensor, k: int) -> list[dict]:
    task_fields = get_task("bit-xor", encoding="pm1").spec.model_fields()
    torch.manual_seed(0)  # the fresh input layer: the same draw for both inits
    model = FrozenPretrainedTransformer(
        FPTConfig(**task_fields, backbone="gemma3-270m", init=init, attn_implementation="eager", dropout=0.0)
    ).eval()
    out = model.encode(inputs, output_attentions=True, output_hidden_states=True)
    rows = []
    j = torch.arange(k)
    for layer, attn in enumerate(out.attentions):
        queries = attn[:, :, k:, :]  # (batch, heads, k output positions, 2k keys)
        visible = (k + j + 1).float()  # causal: output position k+j sees k+j+1 tokens
        entropy = -(queries.clamp_min(1e-12).log() * queries).sum(-1)  # (batch, heads, k)
        rows.append(
            {
                "layer": layer,
                "entropy_of_uniform": round((entropy / visible.log()).mean().item(), 3),
                "first_token": round(queries[..., 0].mean().item(), 3),
                "self": round(queries[:, :, j, k + j].mean().item(), 3),
                "partner": round(queries[:, :, j, j].mean().item(), 3),
                "uniform_share": round((1 / visible).mean().item(), 3),
                "residual_rms": round(out.hidden_states[layer + 1].pow(2).mean().sqrt().item(), 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    task = get_task("bit-xor", val_size=args.examples, encoding="pm1")  # as the Bit XOR runs (gemma_bit_xor.py)
    inputs = split_tensors(task, "val")[0]
    k = task.spec.output_tokens
    result = {init: profile(init, inputs, k) for init in ("pretrained", "random")}
    lines = [
        "| layer | entropy/uniform (pre, rand) | first token (pre, rand) | self (pre, rand) | partner (pre, rand) | "
        "residual RMS (pre, rand) |",
        "|---|---|---|---|---|---|",
    ]
    for pre, rand in zip(result["pretrained"], result["random"], strict=True):
        lines.append(
            f"| {pre['layer']} | {pre['entropy_of_uniform']}, {rand['entropy_of_uniform']} | {pre['first_token']}, "
            f"{rand['first_token']} | {pre['self']}, {rand['self']} | {pre['partner']}, {rand['partner']} | "
            f"{pre['residual_rms']}, {rand['residual_rms']} |"
        )
    uniform = result["pretrained"][0]["uniform_share"]
    text = (
        "\n".join(lines) + f"\n\nA uniform pattern puts {uniform} on each visible token (mean over output positions). "
        "The last layer's residual RMS is read after the backbone's final norm."
    )
    print(text)
    if args.record:
        (RESULTS / "gemma3_270m_init_attention.json").write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / "gemma3_270m_init_attention.md").write_text(
            "# Frozen Gemma 3 270M on Bit XOR inputs before training: attention per layer\n\n"
            f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
            f"`python benchmarks/gemma_init_attention.py --examples {args.examples} --record` (fp32, eager attention, "
            f"{args.examples} validation examples, heads averaged; entropy relative to log(visible tokens)).\n\n"
            f"{text}\n"
        )


if __name__ == "__main__":
    main()
