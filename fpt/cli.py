"""The `fpt` command line: train, eval, describe."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from fpt.errors import FPTError


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train an FPT on a task", description="Train a Frozen Pretrained Transformer. "
                       "Flags override keys of --config FILE.yaml; unset flags keep the file's or the default value.")
    p.add_argument("--config", help="YAML file of run config keys (see fpt.training.config.RunConfig)")
    p.add_argument("--task", help="task name, e.g. bit-xor, bit-memory")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a task option such as n_bits=5 (repeatable; values parsed as YAML)")
    p.add_argument("--backbone", help="named backbone (minilm, gpt2, ...), hub id or local directory")
    p.add_argument("--init", help="pretrained | random | stats | from:FILE.safetensors | from:RUN_DIR")
    p.add_argument("--train", help="freeze policy: preset (fpt, output, all, ...) or trained groups, e.g. input,output,norm")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--clip-norm", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--target-accuracy", type=float, help="stop once validation accuracy reaches this")
    p.add_argument("--out", help="run directory (default runs/<task>-<backbone>-<init>-s<seed>-<time>)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--attn-implementation", help="sdpa (default) or eager")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"],
                   help="autocast precision; trained parameters stay fp32 (default auto: bf16 on a GPU that has it, fp32 on CPU)")
    p.add_argument("--micro-batch-size", type=int, help="max examples per forward pass per process; gradient accumulation is computed from it")
    p.add_argument("--checkpoint-every", type=int, help="steps between resumable checkpoints (default: every evaluation)")
    p.add_argument("--keep-checkpoints", type=int, help="resumable checkpoints kept besides `best` (default 2)")
    p.add_argument("--log", choices=["tensorboard", "wandb"], help="also log metrics to TensorBoard or W&B (package must be installed)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest checkpoint (may raise --steps)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or report; print only the summary JSON")


def _parse_task_options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FPTError(f"--task-option expects KEY=VALUE, got {pair!r}.")
        options[key] = yaml.safe_load(value)
    return options


def cmd_train(args) -> int:
    from fpt.training import RunConfig, train

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "quiet", "task_option", "resume") and v is not None}
    log = (lambda *a: None) if args.quiet else print
    if args.resume:
        from fpt.training.loop import resume_config

        if args.config or args.task_option:
            raise FPTError("--resume continues a run with its own config.yaml; drop --config and --task-option.")
        summary = train(resume_config(args.resume, **flags), progress=not args.quiet, log=log, resume=True)
        _print_summary(summary)
        return 0
    if args.task_option:
        flags["task_options"] = _parse_task_options(args.task_option)
    config = RunConfig.from_yaml(args.config, **flags) if args.config else RunConfig.from_dict(flags, "flags")
    summary = train(config, progress=not args.quiet, log=log)
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    """Print the run summary once, from the main process (others exist under accelerate launch/torchrun)."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(summary, indent=2))


def cmd_predict(args) -> int:
    from fpt.predict import predict_run

    result = predict_run(args.run_dir, args.input, args.output, args.which, args.batch_size, args.device)
    if args.output is None:
        print(json.dumps({"classes": result["classes"].tolist()}))
    else:
        print(f"Wrote predictions for {len(result['classes'])} examples to {args.output}", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from fpt.model import FrozenPretrainedTransformer
    from fpt.tasks import get_task
    from fpt.training import evaluate
    from fpt.training.loop import resolve_device
    from fpt.training.rundir import read_run_config

    config = read_run_config(args.run_dir)
    task = get_task(config["task"], **config.get("task_options", {}))
    model = FrozenPretrainedTransformer.from_run(args.run_dir, args.which)
    device = resolve_device(args.device)
    result = evaluate(model.to(device), task, args.split, args.batch_size, device)
    print(json.dumps({"run": str(args.run_dir), "checkpoint": args.which, "split": args.split, **result}, indent=2))
    return 0


def cmd_describe(args) -> int:
    from fpt.model import FPTConfig, FrozenPretrainedTransformer
    from fpt.tasks import get_task

    spec = get_task(args.task).spec
    model = FrozenPretrainedTransformer(FPTConfig(**spec.model_fields(), backbone=args.backbone, init=args.init, train=args.train))
    print(f"Task {args.task}: {spec.max_length} tokens of {spec.input_dim} ({spec.input_kind}), "
          f"{spec.output_tokens} output token(s) x {spec.outputs_per_token} unit(s) of {spec.num_classes} classes")
    print(model.freeze_report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpt", description="Frozen Pretrained Transformers: train only the input, "
                                     "output, norm and position parameters of a language-pretrained transformer.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("eval", help="evaluate a finished run's checkpoint on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--which", default="best", choices=["best", "last"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p = sub.add_parser("predict", help="predict with a finished run on new inputs (.npy/.npz or the task's format)")
    p.add_argument("run_dir")
    p.add_argument("--input", required=True, help=".npy inputs, .npz with arrays `inputs` (and `mask`), or the task's own file format")
    p.add_argument("--output", help=".npy (classes), .npz (classes and probabilities) or .json; default: classes as JSON on stdout")
    p.add_argument("--which", default="best", help="checkpoint: best, last or step-NNNNNN")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p = sub.add_parser("describe", help="print a backbone's parameter groups and freeze report")
    p.add_argument("--backbone", default="minilm")
    p.add_argument("--init", default="pretrained")
    p.add_argument("--train", default="fpt", help="freeze policy")
    p.add_argument("--task", default="bit-xor", help="task whose input/output shapes to attach")
    return parser


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "describe": cmd_describe}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(format="fpt: %(message)s", level=logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        return COMMANDS[args.command](args)
    except FPTError as err:
        print(f"fpt: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
