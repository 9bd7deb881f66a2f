"""Ctrl-C and SIGTERM as a request to checkpoint and stop, opted into by whoever owns the process.

Signal handlers belong to the program, not to a library call: `fpt train` installs them around
training; a Python caller that wants the same passes `StopRequests.installed()` to `train(stop=...)`.
Without it, a signal does what the caller's program makes it do (e.g. KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from accelerate import Accelerator

STOP_CHECK_EVERY = 10  # with several processes, steps between collective checks for Ctrl-C/SIGTERM


class StopRequests:
    """While training steps (`checkpointing()`), the first SIGINT/SIGTERM asks training to checkpoint and
    stop and a second one stops at once; before that (loading data or a model, aligning the input layer)
    nothing would be checkpointed, so the first one stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.requested, self.listening, self.deferring = False, False, False

    @classmethod
    @contextmanager
    def installed(cls) -> Iterator[StopRequests]:
        """Handlers for SIGINT and SIGTERM while the block runs (main thread only), then the old ones."""
        stop, previous = cls(), {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, stop._handle)
            stop.listening = True
        try:
            yield stop
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested or not self.deferring:
            raise KeyboardInterrupt
        self.requested = True

    @contextmanager
    def checkpointing(self) -> Iterator[None]:
        """The training steps: a first signal is deferred to the next step's end, which checkpoints."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    def agreed(self, step: int, accelerator: Accelerator) -> bool:
        """Whether all processes stop after `step` (they must agree, so several processes check together)."""
        if accelerator.num_processes == 1 or not self.listening:
            return self.requested
        if step % STOP_CHECK_EVERY:
            return False
        flag = torch.tensor(float(self.requested), device=accelerator.device)
        return accelerator.reduce(flag, "sum").item() > 0
