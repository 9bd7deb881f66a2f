"""The long fuzz run: thousands of generated bad inputs against every `fpt` subcommand and the
Python entry points (see tests/fuzzing.py); records cases per subcommand, outcomes and failures.

    python benchmarks/fuzz_cli.py --cases 3000 --seed 0 --record benchmarks/results/fuzz_cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_backbone(path: Path) -> str:
    """A 2-layer, 32-wide GPT-2 with random weights (as the tests' fixture)."""
    import torch
    from transformers import GPT2Config, GPT2Model

    if not (path / "config.json").exists():
        torch.manual_seed(0)
        config = GPT2Config(
            n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=100, bos_token_id=0, eos_token_id=0
        )
        GPT2Model(config).save_pretrained(path)
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--api-fraction", type=float, default=0.15, help="share of cases on train/TensorTask/predict/Hub/arrays"
    )
    parser.add_argument("--signal-fraction", type=float, default=0.04, help="share of cases sent SIGINT/SIGTERM")
    parser.add_argument(
        "--concurrent-fraction", type=float, default=0.02, help="share of cases running two fpt processes at once"
    )
    parser.add_argument("--max-seconds", type=float, help="stop early after this long (the record says how many ran)")
    parser.add_argument("--record", help="JSON file to write (a .md summary is written beside it)")
    args = parser.parse_args()
    out = Path(args.record).resolve() if args.record else None  # resolved now: the fuzzer changes directory

    import torch

    torch.set_num_threads(1)
    from tests.fuzzing import Fuzzer

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fpt-fuzz-") as root:
        fuzzer = Fuzzer(Path(root), tiny_backbone(Path(root) / "backbone"), seed=args.seed)
        setup_s = time.time() - started
        for index in range(args.cases):
            if args.max_seconds and time.time() - started > args.max_seconds:
                print(f"stopped after {args.max_seconds:g} s: {index} of {args.cases} cases ran", flush=True)
                break
            draw = fuzzer.rng.random()
            if draw < args.api_fraction:
                fuzzer.api_case()
            elif draw < args.api_fraction + args.signal_fraction:
                fuzzer.signal_case()
            elif draw < args.api_fraction + args.signal_fraction + args.concurrent_fraction:
                fuzzer.concurrent_case()
            else:
                fuzzer.cli_case()
            if (index + 1) % 100 == 0:
                print(
                    f"{index + 1} cases, {len(fuzzer.report.failures)} failures, {time.time() - started:.0f} s",
                    flush=True,
                )
        report = fuzzer.report
    document = {
        "command": "python " + " ".join(sys.argv),
        "seed": args.seed,
        "cases": sum(report.cases.values()),
        "cases_asked": args.cases,
        "cases_by_kind": dict(sorted(report.cases.items())),
        "outcomes": dict(sorted(report.outcomes.items())),
        "failures": len(report.failures),
        "failure_details": report.failures,
        "setup_s": round(setup_s, 1),
        "wall_s": round(time.time() - started, 1),
        "machine": "2-core AMD EPYC (shared with parallel work), torch " + torch.__version__ + " CPU, 1 thread",
        "checks": "exit status 0 or 2 only (130 too for a case sent SIGINT/SIGTERM, whose run must then resume "
        "or be refused cleanly); no traceback; under 120 s a case; error messages under 4000 chars; protected run "
        "directories, saved model and datasets unchanged (on success only train --resume of that run and data "
        "generate --force may change them); two processes at once on one run directory, data root or GGUF cache "
        "each end in 0 or 2 and leave it whole (one run finished, one dataset, one converted backbone)",
    }
    print(json.dumps({k: v for k, v in document.items() if k != "failure_details"}, indent=2))
    for failure in report.failures[:20]:
        print(f"--- {failure['kind']}: {failure['case'][:300]}\n{failure['failure'][-1500:]}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n")
        lines = [
            "# fpt fuzz run",
            "",
            f"`{document['command']}` ({document['machine']}; {document['wall_s']} s wall)",
            "",
            f"{document['cases']} cases, **{document['failures']} failures**. {document['checks']}.",
            "",
            "| kind | cases |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in document["cases_by_kind"].items()),
            "",
            "| outcome | cases |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in document["outcomes"].items()),
        ]
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
