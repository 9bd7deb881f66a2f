"""A fuzzer for `fpt`: every subcommand (found from the argument parser, so new flags are fuzzed too)
and the Python entry points `train()`, `TensorTask` and `predict()`, driven with generated bad
arguments and files. Used by tests/test_fuzz.py (a short run) and benchmarks/fuzz_cli.py (a long one).

The newer surfaces (peft methods, --align, the Hub API, own-data arrays, compare/report, GGUF backbones,
generate options, reproduce --rows, signals and concurrent processes) have their fixtures and case
families in tests/fuzz_surfaces.py.

A case fails when it ends in anything but exit status 0 or 2 (an escaped exception is a traceback),
prints a traceback, takes longer than `CASE_TIMEOUT_S`, or changes a protected run directory or
dataset: on an error nothing may change; on success only `train --resume` (of that run) and
`data generate --force` may, and those are restored before the next case.

Commands run in-process through `fpt.cli.main(argv)`. Three expensive leaves are replaced so that a
case takes milliseconds to seconds: a sweep's per-run `fpt train` subprocess (which reports a failed
run), a bench case's timing (which returns a fixed record) and `torch.compile` of a training model
(which returns it eager: inductor takes minutes on a busy CPU); everything in front of them (parsing,
checks, files written) runs as shipped. Network access fails at once (proxy to a closed port).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import shutil
import signal
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tests import fuzz_surfaces

CASE_TIMEOUT_S = 120
SMALL_INTS = ["1", "2", "3"]
BAD_INTS = ["0", "-1", "-3", "2147483648", str(2**63), "99999999999999999999", "1.5", "1e29", "1e-3", "nan", "inf"]
TEXT = ["", "abc", "null", "None", "true", "[1, 2", "{a: 1}", "*x", "&a [*a]", "é\u202e", "x" * 5000, "-", "--", "%s"]


CLI_COMMANDS = [
    "train", "train", "train", "resume", "eval", "predict", "predict", "describe", "data list", "data verify",
    "data generate", "data download", "sweep", "reproduce", "attention", "bench", "train peft", "train peft",
    "train align", "train arrays", "train arrays", "train gguf", "eval lora", "compare", "report",
    "reproduce rows", "data generate recipe",
]  # fmt: skip
# values for flags of the newer surfaces, by argparse dest (the fuzzer's generic values otherwise)
NEWER_VALUES = {
    "train": lambda f: fuzz_surfaces.POLICIES,
    "method_option": lambda f: fuzz_surfaces.METHOD_OPTIONS,
    "align_steps": lambda f: ["1", "3", "0", "2147483647"],
    "rows": lambda f: fuzz_surfaces.ROWS,
    "backbone": lambda f: [f.backbone, f.surfaces["aligner"], *f.surfaces["gguf"]],
    "seeds": lambda f: ["0", "1", "-1", "2147483648"],
    "tasks": lambda f: ["", ",", "bit-xor", "bit-xor,bit-xor", "listops"],
    "min_length": lambda f: ["1", "20", "99", "100", "0"],
    "max_length": lambda f: ["2", "50", "100", "101"],
    "max_depth": lambda f: ["1", "2", "4", "64"],
    "max_args": lambda f: ["1", "2", "10"],
}


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout


def snapshot(path: Path) -> dict:
    """Relative path -> SHA-256 of every file under `path` (directories included as entries)."""
    found = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        found[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return found


@dataclass
class Report:
    cases: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)

    def add(self, kind: str, outcome: str, failure: str | None, case: object) -> None:
        self.cases[kind] += 1
        self.outcomes[f"{kind}: {outcome}"] += 1
        if failure:
            self.failures.append({"kind": kind, "case": repr(case)[:600], "failure": failure[-3000:]})


class Fuzzer:
    """Builds the fixtures under `root` once, then runs generated cases against them."""

    def __init__(self, root: Path, backbone: str, seed: int = 0, monkeypatch=None):
        """`monkeypatch` (pytest's): the stubs, environment and working directory are undone after the
        test; without it (the benchmark) they stay for the life of the process."""
        self.root, self.backbone, self.rng = Path(root), backbone, random.Random(seed)
        self.protected = self.root / "protected"
        self.scratch = self.root / "scratch"
        self.report = Report()
        self.counter = 0
        self.patch = monkeypatch
        env = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
        env |= {"FPT_CACHE": str(self.root / "cache")}  # converted GGUF backbones stay under the root
        for name, value in {**env, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
            monkeypatch.setenv(name, value) if monkeypatch else os.environ.__setitem__(name, value)
        (self.root / "cwd").mkdir(parents=True, exist_ok=True)
        (monkeypatch.chdir if monkeypatch else os.chdir)(self.root / "cwd")  # default outputs (runs/...) land here
        self._stub_expensive_leaves()
        self._build_fixtures()
        self.pristine = self.root / "pristine"
        if not self.pristine.exists():
            shutil.copytree(self.protected, self.pristine)
        self.expected = snapshot(self.protected)

    # -- fixtures --------------------------------------------------------------------------
    def _build_fixtures(self) -> None:
        from fpt import RunConfig, train
        from tests.datafiles import write_listops, write_mnist

        run = self.protected / "run"
        if not (run / "summary.json").exists():
            shutil.rmtree(run, ignore_errors=True)
            config = RunConfig(
                backbone=self.backbone,
                task_options={"val_size": 8, "test_size": 8},
                steps=4,
                eval_every=2,
                batch_size=4,
                out=str(run),
            )
            train(config, progress=False, log=lambda *a: None)
            data = self.protected / "data"
            write_mnist(data / "mnist")
            write_listops(data / "listops")
            edited = self.protected / "run-edited"  # task_options edited after training
            shutil.copytree(run, edited)
            text = (edited / "config.yaml").read_text().replace("n_bits: 5", "n_bits: 10", 1)
            (edited / "config.yaml").write_text(text)
            damaged = self.protected / "run-damaged"
            shutil.copytree(run, damaged)
            model_file = next((damaged / "checkpoints" / "best").glob("*.safetensors"))
            model_file.write_bytes(model_file.read_bytes()[:100])
            empty = self.protected / "run-no-checkpoint"
            empty.mkdir()
            (empty / "config.yaml").write_text((run / "config.yaml").read_text())
        self.run = run
        self.data = self.protected / "data"
        self.files = self._files(self.root / "files")
        self.surfaces = fuzz_surfaces.build(self)

    def _files(self, where: Path) -> dict[str, list[str]]:
        """Input files by role: good ones and many kinds of bad ones."""
        where.mkdir(parents=True, exist_ok=True)

        def put(name: str, data: bytes) -> str:
            (where / name).write_bytes(data)
            return str(where / name)

        def npy(name: str, array) -> str:
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=True)
            return put(name, buffer.getvalue())

        def npz(name: str, **arrays) -> str:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            return put(name, buffer.getvalue())

        good = np.sign(np.random.default_rng(0).standard_normal((3, 10, 1))).astype(np.float32)
        huge_header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            huge_header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 10, 1)}
        )
        (where / "dir.npy").mkdir(exist_ok=True)
        inputs = [
            npy("good.npy", good),
            npz("good.npz", inputs=good, mask=np.ones((3, 10), bool)),
            npz("left.npz", inputs=good, mask=np.array([[0] * 2 + [1] * 8] * 3, bool)),
            npz("float-mask.npz", inputs=good, mask=np.ones((3, 10), np.float32)),
            npz("names.npz", a=good, b=good),
            npy("wide.npy", np.zeros((3, 10, 4), np.float32)),
            npy("long.npy", np.zeros((3, 500, 1), np.float32)),
            npy("ints.npy", np.zeros((3, 10), np.int64)),
            npy("nan.npy", np.full((3, 10, 1), np.nan, np.float32)),
            npy("object.npy", np.array([{"a": 1}], dtype=object)),
            npy("strings.npy", np.array([["a"] * 10] * 3)),
            npy("empty.npy", np.zeros((0, 10, 1), np.float32)),
            npy("scalar.npy", np.float32(3)),
            npy("complex.npy", np.zeros((3, 10, 1), np.complex64)),
            put("huge-header.npy", huge_header.getvalue() + b"\0" * 64),
            put("truncated.npy", open(where / "good.npy", "rb").read()[:-7]),
            put("random.npy", bytes(self.rng.randrange(256) for _ in range(300))),
            put("random.npz", b"PK\x03\x04" + bytes(self.rng.randrange(256) for _ in range(300))),
            put("empty-file.npy", b""),
            put("text.txt", b"( [MAX 2 3 ] )\n"),
            put("binary.txt", b"\xff\xfe\x00"),
            str(where / "dir.npy"),
            str(where / "missing.npy"),
        ]
        bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
        tiny = f"task: bit-xor\nbackbone: {self.backbone}\nsteps: 2\neval_every: 1\nbatch_size: 4\n"
        tiny += "task_options: {val_size: 8, test_size: 8}\n"
        configs = [
            put("tiny.yaml", tiny.encode()),
            put("lr.yaml", (tiny + "lr: 1e-3\n").encode()),
            put("bomb.yaml", "\n".join(bomb).encode()),
            put("self.yaml", b"a: &a [*a]\n"),
            put("nonutf8.yaml", b"task: \xff\xfe\n"),
            put("list.yaml", b"- 1\n- 2\n"),
            put("tags.yaml", b"!!python/object/apply:os.system ['echo no']\n"),
            put("unknown.yaml", b"stepz: 3\n"),
            put("bad-options.yaml", (tiny + "task_options: {n_bits: 7, bits_per_token: 2}\n").encode()),
            put("huge-steps.yaml", (tiny.replace("steps: 2", "steps: 1e29")).encode()),
            put("huge-batch.yaml", (tiny.replace("batch_size: 4", "batch_size: 1e16")).encode()),
            put("big.yaml", b"a: " + b"x" * (1 << 21) + b"\n"),
            put("deep.yaml", b"[" * 20000),
            str(where / "dir.npy"),
            str(where / "missing.yaml"),
        ]
        grid = f"tasks: [bit-xor]\nlrs: [1e-3]\nsettings: {{backbone: {self.backbone}, steps: 1}}\n"
        grids = [
            put("grid.yaml", grid.encode()),
            put("grid-bad.yaml", b"tasks: [bit-xro]\nlrs: [fast]\nseeds: [-1, x]\nbackbones: [nope]\n"),
            put("grid-options.yaml", (grid + "task_settings: {bit-xor: {task_options: {n_bits: abc}}}\n").encode()),
            put("grid-many.yaml", b"tasks: [bit-xor]\nseeds: " + str(list(range(20000))).encode() + b"\n"),
            *configs[2:7],
        ]
        return {"input": inputs, "config": configs, "grid": grids}

    def _stub_expensive_leaves(self) -> None:
        from fpt import bench
        from fpt.experiments import sweep

        def failed_run(args, log_path, threads):  # a run subprocess that failed
            with open(log_path, "a") as log:
                log.write("fpt: error: not run (fuzzing)\n")
            return 1

        def timed(case, settings, log=print):
            load = [0.0, 0.0, 0.0]
            return {"case": case.name, "dtype": "fp32", "compile": settings.compile, "samples_per_s": 1.0} | {
                "loadavg_before": load,
                "loadavg_after": load,
            }

        def eager(model, device):  # torch.compile of the model: a minute or more of inductor on a busy CPU
            return model

        from fpt.training import loop

        stubs = ((sweep, "_train", failed_run), (bench, "bench_case", timed), (loop, "maybe_compile", eager))
        for module, name, stub in stubs:
            self.patch.setattr(module, name, stub) if self.patch else setattr(module, name, stub)

    # -- values ----------------------------------------------------------------------------
    def fresh(self, suffix: str = "") -> str:
        self.counter += 1
        return str(self.scratch / f"case-{self.counter}{suffix}")

    def path(self, suffix: str = "") -> str:
        """A path argument: fresh, existing (file, directory, protected run or data), odd, or inside the run."""
        choices = [
            self.fresh(suffix),
            self.fresh(suffix),
            str(self.run),
            str(self.run / "summary.json"),
            str(self.run / ("out" + suffix)),
            str(self.data),
            str(self.data / "mnist"),
            str(self.root / "files" / "text.txt"),
            str(self.root / "files" / "text.txt" / ("below" + suffix)),
            str(self.root / "files" / "dir.npy"),
            "/dev/null",
            "/proc/version",
            "",
            "x" * 300 + suffix,
            self.fresh(".yaml"),
            self.fresh(".png"),
            self.fresh(".json"),
        ]
        return self.rng.choice(choices)

    def value(self) -> str:
        kind = self.rng.random()
        if kind < 0.35:
            return self.rng.choice(SMALL_INTS)
        if kind < 0.65:
            return self.rng.choice(BAD_INTS)
        if kind < 0.85:
            return self.rng.choice(TEXT)
        return self.path()

    def task_option(self) -> str:
        key = self.rng.choice(["n_bits", "bits_per_token", "val_size", "test_size", "mask_prob", "width", "", "="])
        if self.rng.random() < 0.15:  # own data: another array file, good or bad
            return f"path={self.rng.choice(self.surfaces['arrays'])}"
        return f"{key}={self.value()}" if self.rng.random() < 0.9 else self.rng.choice(TEXT)

    # -- cases ------------------------------------------------------------------------------
    def base_argv(self, command: str) -> list[str]:
        run, tiny = str(self.run), self.backbone
        small = ["--task-option", "val_size=8", "--task-option", "test_size=8"]
        return {
            "train": ["train", "--task", "bit-xor", "--backbone", tiny, "--steps", "2", "--eval-every", "1"]
            + ["--batch-size", "4", *small, "--out", self.fresh(), "--quiet", "--device", "cpu"],
            "resume": ["train", "--resume", run, "--steps", "6", "--quiet", "--device", "cpu"],
            "eval": ["eval", run, "--device", "cpu"],
            "predict": ["predict", run, "--input", self.files["input"][0], "--device", "cpu"],
            "describe": ["describe", "--backbone", tiny, "--task", "bit-xor"],
            "data list": ["data", "list", "--data-dir", str(self.data)],
            "data verify": ["data", "verify", "listops", "--data-dir", str(self.data)],
            "data generate": ["data", "generate", "listops", "--data-dir", self.fresh()]
            + ["--train", "2", "--val", "2", "--test", "2"],
            "data download": ["data", "download", "mnist", "--data-dir", str(self.data)],
            "sweep": ["sweep", self.files["grid"][0], "--out", self.fresh()],
            "reproduce": ["reproduce", "main", "--tasks", "bit-xor", "--backbone", tiny, "--out", self.fresh()],
            "attention": ["attention", run, "--format", "json"],
            "bench": ["bench", "minilm-bit-xor", "--no-memory", "--out", self.fresh(".json")],
            **self._newer_base_argv(),
        }[command]

    def _newer_base_argv(self) -> dict[str, list[str]]:
        surfaces, run, lora = self.surfaces, str(self.run), self.surfaces["lora"]
        steps = ["--steps", "2", "--eval-every", "1", "--batch-size", "4", "--quiet", "--device", "cpu"]
        small = ["--task-option", "val_size=8", "--task-option", "test_size=8"]
        policy = self.rng.choice(["lora", "ia3", "ln-tuning", "fpt+lora", "prompt-tuning"])
        rank = ["--method-option", "rank=2"] if "lora" in policy else []
        return {
            "train peft": ["train", "--backbone", self.backbone, "--train", policy, *rank, *small, *steps]
            + ["--out", self.fresh()],
            "train align": ["train", "--backbone", str(surfaces["aligner"]), "--align", "mmd", "--align-steps", "2"]
            + [*small, *steps, "--out", self.fresh()],
            "train arrays": ["train", "--task", "arrays", "--task-option", f"path={surfaces['arrays'][0]}"]
            + ["--backbone", self.backbone, *steps, "--out", self.fresh()],
            "train gguf": ["train", "--backbone", surfaces["gguf"][0], *small, *steps, "--out", self.fresh()],
            "eval lora": ["eval", lora, "--device", "cpu"],
            "compare": ["compare", run, lora, "--out", self.fresh(".png")],
            "report": ["report", run, "--out", self.fresh(".html")],
            "reproduce rows": ["reproduce", "main", "--tasks", "bit-xor", "--backbone", self.backbone]
            + ["--rows", "fpt", "--out", self.fresh()],
            "data generate recipe": ["data", "generate", "listops", "--data-dir", self.fresh()]
            + ["--train", "3", "--val", "2", "--test", "2", "--min-length", "20", "--max-length", "100"],
        }

    def flags(self, argv: list[str]) -> list:
        """The argparse actions of argv's subcommand (options only)."""
        from fpt.cli import build_parser

        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        command = sub.choices[argv[0]]
        if argv[0] == "data":
            command = next(a for a in command._actions if a.__class__.__name__ == "_SubParsersAction").choices[argv[1]]
        return [a for a in command._actions if a.option_strings and a.dest != "help"]

    @staticmethod
    def _newer_flag(argv: list[str], dest: str) -> bool:
        """Whether `dest` has values of its own in NEWER_VALUES here (data generate's --train is a count)."""
        return dest in NEWER_VALUES and not (argv[0] == "data" and dest == "train")

    def mutate(self, argv: list[str]) -> list[str]:
        argv = list(argv)
        actions = self.flags(argv)
        for _ in range(self.rng.randint(1, 3)):
            move = self.rng.random()
            if move < 0.6 and actions:
                action = self.rng.choice(actions)
                if action.dest == "backend":
                    continue  # a Ray instance or SLURM job per case: tests/test_sweep_backends.py runs those
                flag = self.rng.choice(action.option_strings)
                if action.nargs == 0:
                    argv.append(flag)
                    continue
                if action.choices and self.rng.random() < 0.5:
                    new = self.rng.choice(list(action.choices))
                elif action.dest == "task_option":
                    new = self.task_option()
                elif self._newer_flag(argv, action.dest) and self.rng.random() < 0.7:
                    new = self.rng.choice(NEWER_VALUES[action.dest](self))
                elif action.dest in ("config",):
                    new = self.rng.choice(self.files["config"])
                elif action.dest in ("input",):
                    new = self.rng.choice(self.files["input"])
                elif action.dest in ("out", "output", "data_dir", "resume"):
                    new = self.path(self.rng.choice(["", ".json", ".npy", ".npz", ".png", ".yaml"]))
                else:
                    new = self.value()
                if flag in argv and action.dest not in ("task_option", "method_option"):  # those repeat
                    argv[argv.index(flag) + 1] = new
                else:
                    argv += [flag, new]
            elif move < 0.75:
                positional = [i for i, a in enumerate(argv[1:], 1) if not a.startswith("-") and argv[i - 1][:2] != "--"]
                if positional:
                    where = self.rng.choice(positional)
                    if argv[0] == "data" and where == 1:
                        continue
                    argv[where] = self.rng.choice([self.path(), self.value(), *self.files["grid"]])
            elif move < 0.85:
                argv += [self.rng.choice(["--nope", "-x", "--steps=", "--help-task", "--", "-"])]
            else:
                options = [i for i, a in enumerate(argv) if a.startswith("--") and i > 0]
                if options:
                    i = self.rng.choice(options)
                    if argv[0] == "data" and argv[1] == "generate" and argv[i] in ("--train", "--val", "--test"):
                        continue  # their defaults are LRA's full size (minutes to generate)
                    if argv[0] == "train" and argv[i] in ("--steps", "--resume"):
                        continue  # without them a case is a default run: 1000 steps, minutes (not a finding)
                    takes_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
                    del argv[i : i + 2 if takes_value else i + 1]
        return argv

    def cli_case(self, command: str | None = None) -> None:
        command = command or self.rng.choice(CLI_COMMANDS)
        argv = self.mutate(self.base_argv(command))
        allowed_change = command == "resume" and argv[:3] == ["train", "--resume", str(self.run)]
        allowed_change |= command.startswith("data generate") and "--force" in argv
        self._run(command, argv, lambda: _cli(argv), allowed_change)

    def signal_case(self) -> None:
        """A training command sent SIGINT or SIGTERM (once, or twice: a second Ctrl-C) at a random moment:
        it ends in exit 0, 2 or 130 without a traceback, and the run it leaves resumes (or is refused) cleanly."""
        command = self.rng.choice(["train", "train peft", "train align", "train arrays", "resume"])
        argv = self.base_argv(command)
        if command == "resume":  # a copy: the protected run stays as it is
            copy = self.fresh()
            shutil.copytree(self.run, copy)
            argv[2] = copy
        delays = sorted(self.rng.uniform(0, 4) for _ in range(self.rng.choice([1, 1, 2])))
        sig = self.rng.choice([signal.SIGINT, signal.SIGTERM])
        out = argv[argv.index("--out") + 1] if "--out" in argv else argv[2]

        def call() -> tuple[int | None, str | None]:
            rc, failure = fuzz_surfaces.interrupted(argv, delays, sig, _cli)
            if failure or rc == 0 or not (Path(out) / "config.yaml").exists():
                return rc, failure
            return _cli(["train", "--resume", out, "--steps", "3", "--quiet", "--device", "cpu"])

        self._run(f"signal {command}", (argv, delays, signal.Signals(sig).name), call)

    def concurrent_case(self, kind: str | None = None) -> None:
        fuzz_surfaces.concurrent_case(self, kind)

    def loaded_model(self):
        """The protected run's model, loaded once (predict and Hub cases share it)."""
        from fpt.model import load_run_model

        if getattr(self, "_model", None) is None:
            self._model = load_run_model(self.run)
        return self._model

    # -- Python entry points ---------------------------------------------------------------------
    def array(self):
        rng = self.rng
        n, tokens, width = rng.choice([0, 1, 4, 6]), rng.choice([0, 1, 6]), rng.choice([0, 1, 3])
        dims = rng.choice([(n, tokens, width), (n, tokens), (n,), (n, tokens, width, 1), ()])
        dtype = rng.choice([np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_, np.complex64])
        x = np.random.default_rng(rng.randrange(1000)).normal(size=dims) * rng.choice([1, 3, 1e30])
        with np.errstate(all="ignore"):  # huge values cast to small integer types: garbage, on purpose
            x = x.astype(dtype)
        if rng.random() < 0.2 and x.size and x.dtype.kind == "f":
            x.flat[0] = rng.choice([np.nan, np.inf, -np.inf])
        if rng.random() < 0.2 and x.size and x.dtype.kind in "i":
            x.flat[0] = -rng.randrange(1, 5)
        return torch.from_numpy(np.ascontiguousarray(x)) if rng.random() < 0.5 else x

    def split(self):
        parts = [self.array(), self.array()] + ([self.array()] if self.rng.random() < 0.3 else [])
        return tuple(parts) if self.rng.random() < 0.95 else self.rng.choice(TEXT)

    def api_case(self) -> None:
        from fpt import FPTError, RunConfig, TensorTask, train
        from fpt.predict import predict

        kind = self.rng.choice(["TensorTask", "TensorTask", "predict", "predict", "train", "hub", "hub", "arrays"])
        if kind == "hub":
            fuzz_surfaces.hub_case(self, _api)
        elif kind == "arrays":
            fuzz_surfaces.arrays_case(self, _api)
        elif kind == "TensorTask":
            splits = [self.split() for _ in range(3)]
            options = {
                "num_classes": self.rng.choice([None, None, 0, 2, 1.5, -1]),
                "output_tokens": self.rng.choice([1, 1, 2, 0]),
            }
            self._run(
                "api TensorTask", (splits, options), lambda: _api(lambda: TensorTask(*splits, **options), FPTError)
            )
        elif kind == "predict":
            x, mask = self.array(), self.array() if self.rng.random() < 0.4 else None
            model = self.loaded_model()
            self._run("api predict", (x, mask), lambda: _api(lambda: predict(model, x, mask), FPTError))
        else:
            width = self.rng.choice([1, 3])
            x = torch.randn(12, 6, width)
            y = torch.randint(0, 2, (12,))
            changes = {
                self.rng.choice(["batch_size", "grad_accum", "eval_every", "micro_batch_size", "lr", "steps"]): (
                    self.rng.choice([0, -1, 2, 3, 1e-3, 2**40, "x", None, True])
                )
            }

            def go():
                task = TensorTask((x[:8], y[:8]), (x[8:10], y[8:10]), (x[10:], y[10:]))
                values = {"backbone": self.backbone, "steps": 2, "eval_every": 1, "batch_size": 4, "out": self.fresh()}
                values.update(changes)
                return train(RunConfig.from_dict(values), task=task, progress=False, log=lambda *a: None)

            self._run("api train", changes, lambda: _api(go, FPTError))

    # -- running -------------------------------------------------------------------------------
    def _run(self, kind: str, case, call, allowed_change: bool = False) -> None:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CASE_TIMEOUT_S)
        try:
            rc, failure = call()
        except CaseTimeout:
            rc, failure = None, f"took longer than {CASE_TIMEOUT_S} s"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        now = snapshot(self.protected)
        if now != self.expected:
            changed = sorted(k for k in set(now) | set(self.expected) if now.get(k) != self.expected.get(k))
            if not (allowed_change and rc == 0) and failure is None:
                failure = f"changed protected files (exit {rc}): {changed[:8]}"
            shutil.rmtree(self.protected)
            shutil.copytree(self.pristine, self.protected)
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.report.add(kind, "failure" if failure else f"exit {rc}", failure, case)


def _cli(argv: list[str], allowed: tuple[int, ...] = (0, 2)) -> tuple[int | None, str | None]:
    from fpt.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as exit:  # argparse: usage errors exit 2, --help exits 0
        rc = exit.code if isinstance(exit.code, int) else 2
    except CaseTimeout:
        raise
    except BaseException:
        if "CaseTimeout" in traceback.format_exc():  # the timeout, wrapped by a library that caught it
            raise CaseTimeout from None
        return None, traceback.format_exc()
    if "Traceback (most recent call last)" in err.getvalue():
        return rc, "traceback printed:\n" + err.getvalue()[-3000:]
    if rc not in allowed:
        return rc, f"exit status {rc}:\n{err.getvalue()[-2000:]}"
    if rc == 2 and len(err.getvalue()) > 4000:
        return rc, f"error message of {len(err.getvalue())} characters (one paragraph expected)"
    return rc, None


def _api(call, expected) -> tuple[int | None, str | None]:
    try:
        call()
        return 0, None
    except CaseTimeout:
        raise
    except expected as error:
        if len(str(error)) > 4000:
            return 2, f"error message of {len(str(error))} characters"
        return 2, None
    except BaseException:
        return None, traceback.format_exc()
