"""The `fpt` command line: train, eval, predict, describe, data, sweep, reproduce, attention, bench,
list.

Each command imports its machinery inside its function: torch and transformers take seconds to
import, and `fpt --help` or `fpt data list` should not wait for them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fpt import __version__
from fpt.errors import OUT_OF_MEMORY, FPTError, is_out_of_memory
from fpt.yamlsafe import short


def _train_parser(sub) -> None:
    from fpt.training.config import RunConfig

    p = sub.add_parser(
        "train",
        help="train an FPT on a task",
        description="Train a Frozen Pretrained Transformer. "
        "Flags override keys of --config FILE.yaml; unset flags keep the file's or the default value. "
        "Every flag is also accepted with underscores (--batch_size).",
    )
    p.add_argument("--config", help="YAML file of run config keys (the flags below, with underscores)")
    for kind in ("task", "method"):
        p.add_argument(
            f"--{kind}-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"{_help(RunConfig, f'{kind}_options')}: one KEY=VALUE per flag (repeatable; values parsed as YAML)",
        )
    _config_flags(p, RunConfig)
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest checkpoint (may raise --steps)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or report; print only the summary JSON")
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text (default): a progress bar on a terminal, else one line per evaluation; json: one JSON "
        "object per event on stdout (start, eval, progress, phase, message, end, summary)",
    )
    p.add_argument(
        "--help-task", action="store_true", help="list the options of --task (type, range, default) and exit"
    )
    _import_argument(p)


def _help(config_class, name: str) -> str:
    from fpt.fields import flat_fields

    return next(f.metadata["help"] for f, _ in flat_fields(config_class) if f.name == name)


def _config_flags(p: argparse.ArgumentParser, config_class) -> None:
    """One flag per field of `config_class` (a RunConfig, its ModelConfig's fields flat): its help,
    choices (a Literal type) and default come from the field. Flags left out stay None, so a config
    file's value or the default applies. Mappings and lists (task options, imports) have their own
    repeatable flags."""
    from fpt.fields import allowed_values, field_default, flat_fields

    for f, hint in flat_fields(config_class):
        allowed = allowed_values(hint)
        kinds = [t for t in allowed if isinstance(t, type) and t is not type(None)]
        choices = [c for c in allowed if not isinstance(c, type)]
        if kinds and kinds[0] in (dict, list):
            continue
        default = field_default(f)
        shown = "unset" if default is None else str(default).lower() if isinstance(default, bool) else default
        kwargs: dict = {"help": f"{f.metadata['help']} (default: {shown})", "dest": f.name}
        if bool in kinds:
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
        elif choices:
            kwargs.update(choices=choices)
        else:
            kwargs.update(type=kinds[0], metavar=f.name.upper())
        p.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _import_argument(p) -> None:
    from fpt.training.config import RunConfig

    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE",
        help=f"{_help(RunConfig, 'imports')}; repeatable, recorded in the run",
    )


def _parse_options(pairs: list[str], flag: str = "--task-option") -> dict:
    from fpt import yamlsafe

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FPTError(f"{flag} expects KEY=VALUE, got {yamlsafe.short(repr(pair), 100)}.")
        parsed = yamlsafe.load(value, f"{flag} {yamlsafe.short(key, 40)}")
        # YAML reads a numeral with a leading zero as a number; here it names a choice (bit-xor encoding=01)
        leading_zero = value.strip().startswith("0") and value.strip().isdigit() and len(value.strip()) > 1
        options[key.strip()] = value.strip() if leading_zero else parsed
    return options


def _with_task_defaults(config, given: set[str]):
    """The task's recommended run settings (e.g. remote homology's lr 1e-4) where the user set none.

    The presets are the transformer's: the LSTM baselines keep their own lr (3e-4, the paper's)."""
    from dataclasses import replace

    from fpt.tasks import run_defaults

    chosen = {
        key: value
        for key, value in run_defaults(config.task).items()
        if key not in given and not (key == "lr" and config.model.is_lstm)
    }
    for key, value in chosen.items():
        print(
            f"fpt: {config.task}: {key} = {value} (the task's preset; pass --{key.replace('_', '-')} to change it)",
            file=sys.stderr,
        )
    return replace(config, **chosen)


def cmd_train(args) -> int:
    from fpt.importing import import_modules
    from fpt.model.methods import check_method_options
    from fpt.tasks import check_task_options, task_options_schema
    from fpt.training import RunConfig, StopRequests, resume_config, train
    from fpt.training.distributed import process_group_closed
    from fpt.training.occupancy import registered_training
    from fpt.training.options_used import check_options_used
    from fpt.yamlsafe import read_yaml_mapping

    flags = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "config", "quiet", "task_option", "method_option", "resume", "log_format", "help_task")
        and v is not None
    }
    if args.help_task:
        import_modules(args.imports or [])
        print(task_options_schema(args.task or "bit-xor").describe())
        return 0
    report = _train_reporter(args)
    log = report.message if report.style in ("json", "quiet") else print
    if args.resume:
        if args.config or args.task_option or args.method_option:
            raise FPTError(
                "--resume continues a run with its own config.yaml; drop --config, --task-option and --method-option."
            )
        config = resume_config(args.resume, **flags)
        # Ctrl-C/SIGTERM: checkpoint, then exit 2 with the resume command; a warning if the CPU is oversubscribed
        with process_group_closed(), StopRequests.installed() as stop, registered_training(config.device):
            summary = train(config, progress=report, log=log, resume=True, stop=stop)
        _print_summary(summary, report)
        return 0
    if args.task_option:
        flags["task_options"] = _parse_options(args.task_option)
    if args.method_option:
        flags["method_options"] = _parse_options(args.method_option, "--method-option")
    values = read_yaml_mapping(args.config, "Config file", "keys to values") if args.config else {}
    config = RunConfig.from_dict({**values, **flags}, source=args.config or "flags")
    import_modules(config.imports)  # before the task's presets and a plugin's method are looked up
    check_options_used(config, set(values) | set(flags))  # flags and keys given explicitly (not defaults)
    check_task_options(config.task, config.task_options)  # at parse time: nothing is built or written yet
    check_method_options(config.model.train, config.model.method_options)
    config = _with_task_defaults(config, set(values) | set(flags))
    with process_group_closed(), StopRequests.installed() as stop, registered_training(config.device):
        summary = train(config, progress=report, log=log, stop=stop)
    _print_summary(summary, report)
    return 0


def _train_reporter(args):
    """How `fpt train` reports: --quiet (the summary only), --log-format json, else a bar or lines."""
    from fpt.training.progress import Reporter

    return Reporter("quiet" if args.quiet else "json" if args.log_format == "json" else "auto")


def _print_summary(summary: dict, report=None) -> None:
    """Print the run summary once, from the main process (others exist under accelerate launch/torchrun)."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    if report is not None and report.style == "json":
        report.emit("summary", "", **summary)
    else:
        print(json.dumps(summary, indent=2))


def cmd_predict(args) -> int:
    from fpt.predict import predict_run

    result = predict_run(args.run_dir, args.input, args.output, args.which, args.batch_size, args.device)
    name, first = next(iter(result.items()))  # classes, or a regression model's values
    if args.output is None:
        print(json.dumps({name: first.tolist()}))
    else:
        print(f"Wrote predictions for {len(first)} examples to {args.output}", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from fpt.assess import assess, plot_confusion
    from fpt.model import load_run_model
    from fpt.runs import read_run_record
    from fpt.runs.record import check_output_file
    from fpt.tasks.outputs import output_kind
    from fpt.training.loop import resolve_device
    from fpt.training.precision import Precision
    from fpt.training.progress import Reporter

    if args.batch_size < 1:
        raise FPTError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    if args.data is not None and args.split is not None:
        raise FPTError("--split names a split of the run's task and --data a file of new examples; pass one of them.")
    if args.plot is not None:
        check_output_file(args.plot, (".png",), "the confusion matrix as a PNG", "--plot")  # before any work
    record = read_run_record(args.run_dir)
    report = Reporter("auto")  # on stderr: loading and the pass can take minutes
    task = None if args.data else _run_task(record, args, report)
    with report.phase(f"loading the {args.which} checkpoint of {args.run_dir}"):
        model = load_run_model(args.run_dir, args.which)
    device = resolve_device(args.device)
    precision = Precision.create(record.precision, device)  # as the run evaluated
    batches, where, loss = _eval_examples(args, task, model, device, report)
    result = assess(model.to(device), batches, output_kind(model.config), loss, device, precision)
    if args.plot and "confusion_matrix" in result:
        plot_confusion(result["confusion_matrix"], args.plot, f"{record.task}: {where['split'] or where['data']}")
        print(f"Written: {args.plot}", file=sys.stderr)
    head = {"run": str(args.run_dir), "checkpoint": args.which, **where, "precision": precision.name}
    print(json.dumps({**head, **result}, indent=2))
    return 0


def _run_task(record, args, report):
    """The run's own task, checked to be the one it trained on (config.yaml and data unchanged)."""
    from fpt.data.fingerprint import check_unchanged
    from fpt.tasks import get_task

    with report.phase(f"loading task {record.task}"):
        task = get_task(record.task, **record.task_kwargs(args.data_dir))
    record.check_task(task.spec)  # config.yaml edited after training: the checkpoint would not fit the task
    check_unchanged(record.data, task.data_fingerprint, args.run_dir, "evaluate")  # e.g. regenerated data
    return task


def _eval_examples(args, task, model, device, report):
    """(batches with a progress report, where they come from, the loss): a split of the run's task, or
    the labelled file of --data checked against the model."""
    import math

    from fpt.assess import read_labelled, require_pass_memory
    from fpt.tasks.outputs import output_kind
    from fpt.training.batch_memory import eval_batch_that_fits

    batch_size = args.batch_size
    if task is not None:
        split = args.split or "test"
        batch_size = eval_batch_that_fits(model, task, split, args.batch_size, device)
        if batch_size < args.batch_size:
            print(
                f"--batch-size {args.batch_size:,} does not fit in memory: evaluating in batches of {batch_size:,}.",
                file=sys.stderr,
            )
        batches, n, where, loss = task.eval_batches(split, batch_size), task.split_size(split), split, task.loss
        described = {"split": split, "data": None}
    else:
        examples, digest = read_labelled(args.data, model.config)
        require_pass_memory(model, examples, args.batch_size, device)
        loss = output_kind(model.config).loss
        batches, n, where = examples.chunks(args.batch_size), len(examples), str(args.data)
        described = {"split": None, "data": str(args.data), "data_sha256": digest}
    tracked = report.track(batches, f"{where} pass ({n} examples)", total=math.ceil(n / batch_size))
    return tracked, described, loss


def cmd_describe(args) -> int:
    from fpt.model import FPTConfig, FrozenPretrainedTransformer
    from fpt.tasks import get_task

    spec = get_task(args.task).spec
    model = FrozenPretrainedTransformer(
        FPTConfig(**spec.model_fields(), backbone=args.backbone, init=args.init, train=args.train)
    )
    print(
        f"Task {args.task}: {spec.max_length} tokens of {spec.input_dim} ({spec.input_kind}), "
        f"{spec.output_tokens} output token(s) x {spec.outputs_per_token} unit(s) of "
        + (f"{spec.num_classes} classes" if spec.num_classes is not None else f"{spec.output_kind.name} values")
    )
    print(model.freeze_report())
    adapter = model.backbone_adapter
    kind = (
        "causal decoder (each position sees those before it)" if adapter.causal else "encoder (every position sees all)"
    )
    print(
        f"Backbone: {len(adapter.blocks())} blocks, width {adapter.width}, {kind}; driven by {type(adapter).__name__}"
    )
    from fpt.backbones import named_backbones

    entry = named_backbones().get(args.backbone)
    if entry is not None and entry.note:
        print(f"About {args.backbone}: {entry.note}")
    return 0


def cmd_data(args) -> int:
    from fpt import data

    names = [args.name] if getattr(args, "name", None) else data.dataset_names()
    if args.action == "list":
        print(f"data root: {data.data_root(args.data_dir)}")
        for name in names:
            info = data.status(name, args.data_dir)
            state = f"present  {info['bytes'] / 2**20:8.1f} MiB" if info["present"] else "missing          "
            print(f"  {name:<16}{state}  {info['where']}  ({info['description']})")
            for line in info["checksums"]:
                if "pinned" not in line:
                    print(f"  {'':<16}checksum: {line}")
    elif args.action == "download":
        data.download(args.name, args.data_dir)
    elif args.action == "verify":
        failed = []
        for name in names:  # each dataset on its own: one damaged dataset does not stop the others
            if not args.name and data.locate(name, args.data_dir) is None:
                print(f"{name}: not present (skipped)")
                continue
            try:
                data.verify(name, args.data_dir)
            except (FPTError, OSError) as err:
                failed.append(name)
                print(f"{name}: FAILED: {err}", file=sys.stderr)
        if failed:
            raise FPTError(f"Verification failed for {', '.join(failed)} (details above).")
    elif args.action == "generate":
        _generate(args)
    return 0


def _generate(args) -> None:
    """`fpt data generate`: minutes for LRA's 100,000 ListOps examples, so the count and an ETA are shown."""
    from fpt import data
    from fpt.data.listops import LRA_SIZES
    from fpt.training.progress import Reporter

    settings = {k: getattr(args, k) for k in (*GENERATE_SETTINGS, "train", "val", "test")}
    settings = {k: v for k, v in settings.items() if v is not None}
    total = sum(settings.get(split, default) for split, default in LRA_SIZES.items())
    report = Reporter("auto")
    with report.counting(f"generating {args.name} ({total:,} examples)", total, "examples") as advance:
        target = data.generate(args.name, args.data_dir, seed=args.seed, force=args.force, progress=advance, **settings)
    with report.phase(f"reading back {target}"):
        data.verify(args.name, target.parent)
    print(f"Wrote {args.name} ({total:,} examples) to {target}", file=sys.stderr)


# `fpt data generate` flags of the ListOps recipe (fpt.data.listops.LRA_RECIPE holds LRA's values)
GENERATE_SETTINGS = {
    "min_length": "expressions are longer than this: values plus two per operator (default 500, as LRA)",
    "max_length": "expressions are shorter than this (default 2000, as LRA)",
    "max_depth": "operators nest at most max_depth - 1 deep (default 10, as LRA)",
    "max_args": "arguments per operator at most (default 10, as LRA)",
}


def _data_parser(sub) -> None:
    p = sub.add_parser(
        "data",
        help="list, download, verify or generate datasets",
        description="Datasets live under one data root: --data-dir, else $FPT_DATA, else ~/.cache/fpt.",
    )
    actions = p.add_subparsers(dest="action", required=True)
    for action, text in (
        ("list", "each dataset: present or not, where, size"),
        ("download", "fetch a dataset from its canonical source and verify it"),
        ("verify", "check checksums and read every file (all present datasets if no name)"),
        ("generate", "write a synthetic dataset offline (listops: the LRA recipe)"),
    ):
        a = actions.add_parser(action, help=text)
        if action in ("download", "generate"):
            a.add_argument("name")
        elif action == "verify":
            a.add_argument("name", nargs="?")
        a.add_argument("--data-dir", help="data root (default $FPT_DATA, else ~/.cache/fpt)")
        if action == "generate":
            a.add_argument("--seed", type=int, default=0)
            a.add_argument("--force", action="store_true", help="replace a dataset already in the data root")
            for split, default in (("train", 96000), ("val", 2000), ("test", 2000)):
                a.add_argument(f"--{split}", type=int, help=f"{split} examples (default {default}, as LRA)")
            for key, text in GENERATE_SETTINGS.items():
                a.add_argument(f"--{key.replace('_', '-')}", type=int, help=text)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors that quote at most a few hundred characters of the bad value."""

    def error(self, message: str):
        from fpt.yamlsafe import short

        super().error(short(message, 300))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fpt",
        description="Frozen Pretrained Transformers: train only the input, "
        "output, norm and position parameters of a language-pretrained transformer.",
    )
    parser.add_argument("--version", action="version", version=f"fpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _data_parser(sub)
    p = sub.add_parser(
        "eval",
        help="evaluate a finished run's checkpoint on a split or a new labelled file",
        description="Accuracy, loss, per-class recall and precision and the confusion matrix of a run's "
        "checkpoint, on a split of its task (default test) or on new labelled examples (--data).",
    )
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["val", "test"], help="split of the run's task (default test)")
    p.add_argument(
        "--data",
        metavar="FILE",
        help="a labelled .npz/.safetensors file (arrays inputs, targets, optional mask, as for --task arrays) "
        "to evaluate on instead of the task's split",
    )
    p.add_argument("--plot", metavar="FILE.png", help="also draw the confusion matrix (up to 50 classes)")
    p.add_argument("--which", default="best", choices=["best", "last"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--data-dir", help="data root for dataset tasks (default: the run's, else $FPT_DATA, else ~/.cache/fpt)"
    )
    p = sub.add_parser("predict", help="predict with a finished run on new inputs (.npy/.npz or the task's format)")
    p.add_argument("run_dir")
    p.add_argument(
        "--input",
        required=True,
        help=".npy inputs, .npz with arrays `inputs` (and `mask`), or the task's own file format",
    )
    p.add_argument(
        "--output", help=".npy (classes), .npz (classes and probabilities) or .json; default: classes as JSON on stdout"
    )
    p.add_argument("--which", default="best", help="checkpoint: best, last or step-NNNNNN")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p = sub.add_parser("describe", help="print a backbone's parameter groups and freeze report")
    p.add_argument("--backbone", default="minilm")
    p.add_argument("--init", default="pretrained")
    p.add_argument("--train", default="fpt", help="freeze policy")
    p.add_argument("--task", default="bit-xor", help="task whose input/output shapes to attach")
    _experiment_parsers(sub)
    _bench_parser(sub)
    _comparison_parsers(sub)
    _list_parser(sub)
    return parser


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="training/eval throughput and FLOP rate vs the machine's matmul rate",
        description="Times the default training path and the authors' reference recipe (fp32, eager "
        "attention, host batches, a host sync each step) interleaved in rounds, with a dense matmul "
        "timed each round; writes JSON plus a table. See fpt.bench.",
    )
    p.add_argument(
        "cases", nargs="*", help="cases to run (default all): gpt2-bit-memory, minilm-bit-xor, minilm-fashion-mnist"
    )
    p.add_argument(
        "--reference",
        choices=["interleaved", "only", "off"],
        help="the reference recipe: timed interleaved with the default path (default), alone, or not at all",
    )
    p.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16", "auto"], help="default path's precision (default auto)"
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the default path")
    p.add_argument("--warmup", type=int, help="untimed steps per path before timing (default 2)")
    p.add_argument(
        "--steps", type=int, help="timed steps per path per round (default: 2 for gpt2-bit-memory, 20 otherwise)"
    )
    p.add_argument("--rounds", type=int, help="rounds of interleaved timing (default 3)")
    p.add_argument("--blocks", type=int, help="turns each path takes per round, alternating with the other (default 5)")
    p.add_argument("--eval-batch-size", type=int, help="default path's evaluation batch (default 256)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, help="training batch of every case (default: the case's own, 16)")
    p.add_argument("--backbone", help="backbone of every case instead of its own (a name or a local directory)")
    p.add_argument(
        "--no-memory", dest="memory", action="store_false", default=None, help="skip the peak-memory child processes"
    )
    p.add_argument("--out", help="JSON file to write (a .txt table is written beside it)")


def cmd_bench(args) -> int:
    from fpt import bench

    given = {k: v for k, v in vars(args).items() if k not in ("command", "cases", "out") and v is not None}
    settings = bench.BenchSettings(**given)
    if args.out:
        bench.check_out(args.out)  # before minutes of measuring
    document = bench.run_bench(args.cases or list(bench.CASES), settings, log=lambda text: print(text, file=sys.stderr))
    document["command"] = "fpt " + " ".join(sys.argv[1:])
    if args.out:
        print(f"Written: {bench.write(document, args.out)} (and the table beside it)", file=sys.stderr)
    print(bench.table(document))
    return 0


def _sweep_flags(p) -> None:
    """The flags `fpt sweep` and `fpt reproduce` share: tabulate only, or a quick look."""
    p.add_argument(
        "--tabulate-only",
        action="store_true",
        help="train nothing: rebuild results.md/.csv and plots from the runs --out holds (or their kept evidence)",
    )
    p.add_argument("--steps", type=int, help="quick look: train every run this many steps (noted in results.md)")
    p.add_argument(
        "--max-runs",
        type=int,
        help="quick look: only this many runs, one per task and condition first (noted in results.md)",
    )


def _backend_flags(p) -> None:
    p.add_argument(
        "--jobs",
        type=int,
        help="runs trained at the same time: subprocesses here (default 1); with --backend ray or submitit "
        "at most this many (default: as many as the cluster holds)",
    )
    g = p.add_argument_group("where the runs train (fpt.experiments.backends)")
    g.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray", "submitit"],
        help="local: subprocesses here; ray: Ray tasks (`pip install -e '.[ray]'`); submitit: a SLURM array job "
        "(`pip install -e '.[slurm]'`). --out and the current directory must be on storage every node sees",
    )
    g.add_argument("--address", help="ray: join this cluster (HOST:PORT of its head); default: a local Ray instance")
    g.add_argument("--cpus-per-run", type=int, help="ray, submitit: CPUs (training threads) per run (default 1)")
    g.add_argument(
        "--gpus-per-run", type=float, help="ray, submitit: GPUs per run (default 0; ray: 0.5 lets two runs share one)"
    )
    g.add_argument("--partition", help="submitit: SLURM partition (default: the cluster's default)")
    g.add_argument(
        "--time",
        help="submitit: each run's time limit, MINUTES or H:MM:SS (default 4:00:00); "
        "a run that reaches it checkpoints and is requeued",
    )
    g.add_argument(
        "--slurm",
        action="append",
        metavar="KEY=VALUE",
        help="submitit: a further sbatch option, e.g. --slurm account=proj --slurm qos=high (repeatable)",
    )
    g.add_argument(
        "--submitit-cluster",
        choices=["slurm", "local"],
        help="submitit: slurm (default), or local to run the same jobs on this machine first",
    )


def _backend(args):
    from fpt.experiments.backends import make_backend

    slurm = None
    if args.slurm:
        bad = [item for item in args.slurm if "=" not in item or not item.partition("=")[0].strip()]
        if bad:
            raise FPTError(f"--slurm expects KEY=VALUE (an sbatch option without its dashes), got {bad[0]!r}.")
        slurm = {k.strip(): v for k, _, v in (item.partition("=") for item in args.slurm)}
    return make_backend(
        args.backend,
        args.jobs,
        address=args.address,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        partition=args.partition,
        time=args.time,
        slurm=slurm,
        submitit_cluster=args.submitit_cluster,
    )


def _experiment_parsers(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of tasks x conditions x lrs x seeds; tabulate mean +- std",
        description="Run every run of GRID.yaml (see fpt.experiments.sweep for its keys) as a normal "
        "`fpt train` run under --out, skipping finished runs, then write results.csv, results.md and plots/.",
    )
    p.add_argument("grid", help="grid YAML file")
    p.add_argument("--out", required=True, help="sweep directory (runs/, results.md, results.csv, plots/)")
    _backend_flags(p)
    _sweep_flags(p)
    p.add_argument(
        "--list",
        action="store_true",
        help="write each run's config under --out/configs and print `KEY<TAB>COMMAND` lines (for SLURM, "
        "submitit) instead of running; the same `fpt sweep` afterwards tabulates the finished runs",
    )
    p = sub.add_parser(
        "reproduce",
        help="run one of the paper's experiments at a budget",
        description="Ready-made grids for the paper's experiments; the table puts the paper's figure "
        "beside each measured cell. Re-running the same command resumes.",
    )
    p.add_argument("experiment", help="main | init | ablation | size | convergence | methods")
    p.add_argument(
        "--budget", default="smoke", help="smoke (minutes on a CPU) | cpu (hours on a 2-core CPU) | small | paper"
    )
    p.add_argument("--tasks", help="comma-separated tasks (default: every task of the paper's table)")
    p.add_argument("--seeds", type=int, help="number of seeds (default: 1 for smoke, 3 otherwise)")
    p.add_argument("--backbone", help="override the budget's backbone")
    p.add_argument("--lrs", help="comma-separated learning rates (default: the budget's)")
    p.add_argument(
        "--rows",
        help="comma-separated rows to run, e.g. fpt,full (main), random,stats (init), output,fpt (ablation); "
        "default the budget's. Split a table's work; the same command without --rows then tabulates all rows",
    )
    p.add_argument("--out", help="output directory (default runs/reproduce-<experiment>-<budget>)")
    _backend_flags(p)
    _sweep_flags(p)
    p = sub.add_parser(
        "attention",
        help="attention map of a trained run on one example (PNG or JSON)",
        description="Attention weights of a finished run, averaged over heads, for one example of a "
        "split; for bit-xor the JSON gives, per layer, the mass on each output's two source bits.",
    )
    p.add_argument("run_dir")
    p.add_argument("--example", type=int, default=0, help="index of the example in the split")
    p.add_argument("--layer", type=int, help="layer to draw, from 0 (default: every layer, one panel each)")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--format", default="png", choices=["png", "json"])
    p.add_argument("--out", help="output file (needed for png; JSON goes to stdout when omitted)")


def _list_parser(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list tasks (with their options), backbones or methods (with theirs)",
        description="What --task, --backbone and --train accept here: fpt's own, installed plugins "
        "(fpt.tasks / fpt.backbones / fpt.methods entry points) and modules named with --import.",
    )
    p.add_argument("what", choices=["tasks", "backbones", "methods"])
    _import_argument(p)


def cmd_list(args) -> int:
    from fpt.importing import import_modules
    from fpt.listing import LISTS

    import_modules(args.imports or [])
    print(LISTS[args.what]())
    return 0


def cmd_sweep(args) -> int:
    from fpt.experiments.sweep import expand, list_runs, load_grid, quick_look, sweep

    backend = _backend(args)
    if args.list:
        if args.backend != "local":
            raise FPTError("--list prints the runs' commands for you to submit; it runs nothing, so give no --backend.")
        grid = quick_look(expand(load_grid(args.grid)), args.steps, args.max_runs)
        for key, command in list_runs(grid, args.out):
            print(f"{key}\t{command}")
        return 0
    path = sweep(
        args.grid,
        args.out,
        steps=args.steps,
        max_runs=args.max_runs,
        tabulate_only=args.tabulate_only,
        backend=backend,
    )
    print(path.read_text())
    return 0


def cmd_reproduce(args) -> int:
    from fpt.experiments.reproduce import reproduce

    tasks = None if args.tasks is None else [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        lrs = None if args.lrs is None else [float(x) for x in args.lrs.split(",") if x.strip()]
    except ValueError as err:
        raise FPTError(f"--lrs expects comma-separated numbers such as 1e-4,1e-3, got {args.lrs!r}.") from err
    path = reproduce(
        args.experiment,
        args.budget,
        tasks,
        args.seeds,
        args.backbone,
        lrs,
        args.out,
        steps=args.steps,
        max_runs=args.max_runs,
        rows=None if args.rows is None else [r.strip() for r in args.rows.split(",") if r.strip()],
        tabulate_only=args.tabulate_only,
        backend=_backend(args),
    )
    print(path.read_text())
    print(f"Written: {path} (and results.csv, plots/ beside it)")
    return 0


def cmd_attention(args) -> int:
    from fpt.experiments.attention import attention_command

    print(attention_command(args.run_dir, args.example, args.layer, args.split, args.format, args.out))
    return 0


def _comparison_parsers(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs: a table and one plot of their validation curves",
        description="Compare finished (or running) runs side by side. RUN may be a run directory, a glob "
        "(quote it: 'runs/xor-*') or a sweep directory (all its runs).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument(
        "--metric",
        help="metrics.jsonl key to plot (default: the runs' selection metric, e.g. val_accuracy or val_mse)",
    )
    p.add_argument("--out", help="write the plot of --metric against step to this PNG file")
    p.add_argument("--format", choices=["text", "markdown", "csv"], default="text", help="table format")
    p = sub.add_parser(
        "report",
        help="a self-contained HTML report of a run, a sweep, or several runs side by side",
        description="Write one HTML file (images embedded) with a run's summary, curves, freeze report and "
        "config; a sweep's results table, plots and runs; or, given several runs (directories, quoted globs, "
        "sweep directories), their comparison table, curves and summaries.",
    )
    p.add_argument("sources", nargs="+", metavar="RUN_OR_SWEEP")
    p.add_argument("--out", required=True, help="HTML file to write")


def cmd_compare(args) -> int:
    from fpt.experiments.compare import find_runs, plot_curves, read_run, table
    from fpt.runs.record import check_output_file

    if args.out:
        check_output_file(args.out, (".png",), "a PNG plot")  # before anything is read or printed
    runs = [read_run(path) for path in find_runs(args.runs)]
    print(table(runs, args.format))
    if args.out:
        plot_curves(runs, args.metric or f"val_{runs[0].selection_metric}", args.out)
        print(f"Written: {args.out}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    from fpt.experiments.report import write_report

    print(f"Written: {write_report(args.sources, args.out)}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "describe": cmd_describe,
    "data": cmd_data,
    "sweep": cmd_sweep,
    "reproduce": cmd_reproduce,
    "attention": cmd_attention,
    "bench": cmd_bench,
    "compare": cmd_compare,
    "report": cmd_report,
    "list": cmd_list,
}


def _dashed(argv: list[str]) -> list[str]:
    """`--batch_size 8` read as `--batch-size 8`: every flag is also accepted with underscores, as the
    config file's keys are written."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            argv[index] = name.replace("_", "-") + eq + value
    return argv


class _GoneReaderTolerant:
    """stdout or stderr whose reader may leave (`fpt train ... | head -2`): from then on the output is
    dropped and the command goes on. Without this, the next print raises BrokenPipeError and kills a
    training that had hours to go."""

    def __init__(self, stream):
        self.stream, self.gone = stream, False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        """Point the descriptor at /dev/null, so buffered text and child processes write nowhere, quietly."""
        self.gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no descriptor (a captured stream): dropping is enough
            pass

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextmanager
def _tolerating_gone_readers() -> Iterator[None]:
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _GoneReaderTolerant(sys.stdout), _GoneReaderTolerant(sys.stderr)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = streams


def main(argv: list[str] | None = None) -> int:
    with _tolerating_gone_readers():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(_dashed(list(sys.argv[1:] if argv is None else argv)))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers and huggingface_hub read these when first imported (lazily, by the commands that load a
    # model): no "Loading weights" bars or library warnings in fpt's output.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (fpt.cli.main called from Python): set it directly
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    logging.basicConfig(format="fpt: %(message)s", level=logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except FPTError as err:
        print(f"fpt: error: {short(str(err), 1500)}", file=sys.stderr)  # quoted bad values stay short
        return 2
    except OSError as err:  # the file system refused (a path too long, not a directory, read-only, full)
        where = f" ({short(str(err.filename), 200)})" if err.filename else ""
        print(
            f"fpt: error: {err.strerror or err}{where}; check the paths given and their permissions.", file=sys.stderr
        )
        return 2
    except MemoryError:
        print(f"fpt: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if not is_out_of_memory(err):
            raise
        print(f"fpt: error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
