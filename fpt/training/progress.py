"""How a run reports progress: a tqdm bar on a terminal, plain lines in a log file, JSON lines, or nothing.

Logs that land in files (SLURM, CI, `fpt sweep`'s per-run logs) get one line per evaluation and never
carriage-return bars; `json` gives one object per event for machines; `quiet` leaves only the summary.
Long phases without steps (loading a dataset, caching features, the full test pass) report too, so a
run is never silent for minutes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

STYLES = ("auto", "bar", "text", "json", "quiet")
PHASE_DELAY = 2.0  # seconds a phase runs before it is announced: quick phases (and failures) print nothing
HEARTBEAT = 60.0  # seconds without a line before one says where a long run or pass is (text and json styles)
FIRST_BEAT = 10.0  # the first such line comes sooner: it gives the pace, hence an estimate, early


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _number(key: str, value: Any) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if key.endswith("_per_s") else f"{value:.4f}"


class Reporter:
    """Training progress in one of STYLES. `auto` is `bar` on a terminal or in a notebook, else `text`.

    `bar` and `text` write to `stream` (stderr by default); `json` writes one object per line to stdout,
    so `fpt train --log-format json > run.jsonl` holds every event, the summary last.
    """

    def __init__(
        self,
        style: str = "auto",
        stream: IO[str] | None = None,
        phase_delay: float | None = None,
        heartbeat: float | None = None,
    ):
        """`phase_delay` and `heartbeat`: seconds, PHASE_DELAY and HEARTBEAT by default."""
        if style not in STYLES:
            raise ValueError(f"progress style {style!r} is not one of {', '.join(STYLES)}")
        self.stream = stream or (sys.stdout if style == "json" else sys.stderr)
        if style == "auto":  # a notebook's output is no terminal, but shows tqdm.auto's widget
            interactive = getattr(self.stream, "isatty", lambda: False)() or "ipykernel" in sys.modules
            style = "bar" if interactive else "text"
        self.style = style
        self.phase_delay = PHASE_DELAY if phase_delay is None else phase_delay
        self.heartbeat = HEARTBEAT if heartbeat is None else heartbeat
        self._bar: Any = None
        self._total = self._last_step = self._step = self._first_step = 0
        self._last_time = self._started = self._last_line = time.time()
        self._before = 0.0  # seconds a resumed run trained before this process
        self._beat = min(FIRST_BEAT, self.heartbeat)

    def emit(self, event: str, line: str, **fields: Any) -> None:
        """One event: `line` of text, or `{"event": event, **fields}` in the json style."""
        if self.style == "quiet":
            return
        if self.style == "json":
            line = json.dumps({"event": event, **fields}, default=str)
        self._last_line = time.time()
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A free-form message (the freeze report, the run directory): `log=` for train()."""
        self.emit("message", text, text=text)

    def start(self, total: int, initial: int, description: str, elapsed: float = 0.0) -> None:
        """Training from step `initial` to `total`; `elapsed`: seconds it trained before (a resumed run),
        counted in every elapsed time shown."""
        self._total, self._last_step, self._started = total, initial, time.time()
        self._before = elapsed
        self._step = self._first_step = initial
        self._last_time = self._last_line = self._started
        self._beat = min(FIRST_BEAT, self.heartbeat)
        if self.style == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(initial=initial, total=total, desc=description, file=self.stream, dynamic_ncols=True)
            return
        where = f"from step {initial} " if initial else ""
        self.emit(
            "start",
            f"{description}: training {where}to step {total}",
            description=description,
            step=initial,
            total_steps=total,
        )

    def step(self) -> None:
        self._step += 1
        if self._bar is not None:
            self._bar.update()
        elif time.time() - self._last_line >= self._beat:
            self._where()
            self._beat = self.heartbeat

    def _where(self) -> None:
        """A line between evaluations, so a slow run is never silent for minutes: the step, the pace, an ETA."""
        now = time.time()
        pace = (now - self._started) / max(self._step - self._first_step, 1)
        eta = pace * (self._total - self._step)
        self.emit(
            "progress",
            f"step {self._step}/{self._total}  {pace:.2f} s/step  elapsed {clock(self._before + now - self._started)}  "
            f"ETA {clock(eta)} (before evaluations)",
            step=self._step,
            total_steps=self._total,
            seconds_per_step=round(pace, 3),
            eta_s=round(eta, 1),
        )

    def evaluation(self, record: dict) -> None:
        """One validation record (step, train loss, validation metrics, samples/s, ...), with an ETA."""
        now, step = time.time(), record["step"]
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        eta = (self._total - step) / rate if rate > 0 else None
        self._last_step, self._last_time = step, now
        if self._bar is not None:
            val = next(v for k, v in record.items() if k.startswith("val_"))  # the task's headline metric
            self._bar.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{val:.4f}")
            return
        shown = {k: v for k, v in record.items() if k not in ("step", "elapsed_s")}
        text = f"step {step}/{self._total}  " + "  ".join(f"{k} {_number(k, v)}" for k, v in shown.items())
        text += f"  elapsed {clock(record.get('elapsed_s', self._before + now - self._started))}"
        text += f"  ETA {clock(eta)}" if eta is not None else ""
        self.emit("eval", text, **record, total_steps=self._total, eta_s=None if eta is None else round(eta, 1))

    def end(self, status: str, step: int, elapsed: float | None = None) -> None:
        """The run's end; `elapsed`: its whole training time (default: since `start`, plus the time before it)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        seconds = self._before + time.time() - self._started if elapsed is None else elapsed
        self.emit(
            "end",
            f"training {status} at step {step} in {clock(seconds)}",
            status=status,
            step=step,
            elapsed_s=round(seconds, 3),
        )

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A phase without training steps: once it has run `phase_delay` seconds, a line says it is under
        way, and another when it ends (with its duration). Quick phases stay silent."""
        started, announced = time.time(), threading.Event()

        def announce() -> None:
            announced.set()
            self.emit("phase", f"{name} ...", phase=name, state="start")

        timer = threading.Timer(self.phase_delay, announce) if self.phase_delay > 0 else None
        if timer is None:
            announce()
        else:
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
        if announced.is_set():
            seconds = time.time() - started
            self.emit("phase", f"{name}: done in {seconds:.1f} s", phase=name, state="end", seconds=round(seconds, 2))

    @contextmanager
    def counting(self, name: str, total: int, unit: str = "items") -> Iterator[Callable[[int], None]]:
        """Phase `name` of `total` units, counted by calling what it yields: a bar on a terminal; elsewhere
        start and end lines and, for a long phase, a line now and then with the count and an ETA."""
        if self.style == "bar":
            from tqdm.auto import tqdm

            with tqdm(total=total, desc=name, file=self.stream, leave=False, dynamic_ncols=True) as bar:
                yield bar.update
            return
        done, started, beat = 0, time.time(), min(FIRST_BEAT, self.heartbeat)

        def advance(count: int = 1) -> None:
            nonlocal done, beat
            done, now = done + count, time.time()
            if now - self._last_line >= beat and 0 < done < total:
                beat, eta = self.heartbeat, (now - started) / done * (total - done)
                text = f"{name}: {done:,}/{total:,} {unit}, elapsed {clock(now - started)}, ETA {clock(eta)}"
                self.emit("phase", text, phase=name, state="progress", done=done, total=total, eta_s=round(eta, 1))

        with self.phase(name):
            yield advance

    def track(self, items: Iterable, name: str, total: int | None = None, unit: str = "batches") -> Iterator:
        """Iterate `items` as phase `name` of `total` `unit`s (see `counting`)."""
        with self.counting(name, total or 0, unit) as advance:
            for item in items:
                yield item
                advance(1)


def reporter(progress: bool | str | Reporter) -> Reporter:
    """train()'s `progress` argument: True (auto), False (quiet), a style name, or a Reporter."""
    if isinstance(progress, Reporter):
        return progress
    if isinstance(progress, bool):
        return Reporter("auto" if progress else "quiet")
    return Reporter(progress)
