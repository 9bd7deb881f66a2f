"""Resume in constant time: each kind of training stream continues from a saved `StreamCursor` with the
batches an uninterrupted stream draws next, without drawing those before; a run resumed from its
checkpoint ends bit-identical to an uninterrupted one, and a task without a cursor is still replayed."""

from __future__ import annotations

import io
import json

import pytest
import torch

from fpt import RunConfig, TensorTask, train
from fpt.runs.checkpoint import read_checkpoint, resolve
from fpt.tasks import Batch, Task, TaskSpec, bits, get_task, images, register_task, tensors
from fpt.tasks.stream import StreamCursor, takes_cursor
from fpt.training import resume_config
from tests.datafiles import write_cifar

QUIET = dict(progress=False, log=lambda *a: None)


def _arrays(n: int = 20) -> TensorTask:
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(n, 6, 3, generator=generator), torch.randint(0, 3, (n,), generator=generator)
    return TensorTask((x, y), (x[:8], y[:8]), (x[:8], y[:8]), num_classes=3)


def _task(kind: str, tmp_path) -> Task:
    if kind == "generated":
        return get_task("bit-xor", val_size=8, test_size=8)
    if kind == "arrays":
        return _arrays()
    if kind == "no cursor":
        return _NoCursor()
    write_cifar(tmp_path / "data" / "cifar10", per_batch=6)  # 30 training images; cifar10 augments them
    return get_task("cifar10", data_dir=str(tmp_path / "data"), val_size=6)


def _same(a: Batch, b: Batch) -> bool:
    return torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def _saved(cursor: StreamCursor) -> dict:
    """The cursor as a checkpoint holds it (saved, then loaded with weights_only)."""
    buffer = io.BytesIO()
    torch.save(cursor.state_dict(), buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


def _count_training_draws(monkeypatch) -> list:
    """Each training batch made from here on: drawn by a bit task's generator, taken from arrays, or an image
    batch augmented (a bit task's validation/test sets are made with 8 examples, batches here are 4)."""
    drawn: list = []

    def counting(method):
        def counted(self, first, *rest):
            if first in ("train", 4):
                drawn.append(first)
            return method(self, first, *rest)

        return counted

    monkeypatch.setattr(bits.BitTask, "_batch", counting(bits.BitTask._batch))
    monkeypatch.setattr(tensors.TensorTask, "_take", counting(tensors.TensorTask._take))
    monkeypatch.setattr(images.ImageTask, "_pixels", counting(images.ImageTask._pixels))
    monkeypatch.setattr(_NoCursor, "drawn", drawn)
    return drawn


@pytest.mark.parametrize("kind", ["generated", "arrays", "augmented images"])
def test_a_saved_cursor_continues_the_stream_without_drawing_the_batches_before(tmp_path, monkeypatch, kind):
    task, batch_size, seed = _task(kind, tmp_path), 4, 3
    stream = task.train_batches(batch_size, seed)
    uninterrupted = [next(stream) for _ in range(16)]  # arrays: 5 batches an epoch; images: 7
    assert takes_cursor(task)
    drawn = _count_training_draws(monkeypatch)
    for stop in (0, 1, 5, 7, 10, 14):  # epoch ends and middles
        cursor = StreamCursor()
        first = task.train_batches(batch_size, seed, cursor)
        for _ in range(stop):
            next(first)
        drawn.clear()
        resumed = task.train_batches(batch_size, seed, StreamCursor(_saved(cursor)))
        assert all(_same(next(resumed), expected) for expected in uninterrupted[stop:]), f"after {stop} batches"
        assert len(drawn) == 16 - stop  # the batches after the saved position, and none before


class _NoCursor(Task):
    """A task of a user's own whose stream takes no cursor: resumed by replaying it."""

    name = "no-cursor"
    spec = TaskSpec("continuous", 2, 4, 2)
    drawn: list = []

    def train_batches(self, batch_size, seed):
        generator = torch.Generator().manual_seed(seed)
        while True:
            self.drawn.append("train")
            x = torch.randn(batch_size, 4, 2, generator=generator)
            yield Batch(x, (x[:, :, 0].sum(1, keepdim=True) > 0).long())

    def eval_batches(self, split, batch_size):
        x = torch.randn(8, 4, 2, generator=torch.Generator().manual_seed(1))
        yield from Batch(x, (x[:, :, 0].sum(1, keepdim=True) > 0).long()).chunks(batch_size)

    def split_size(self, split):
        return 8


def _metrics(run) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in ("elapsed_s", "samples_per_s")} for line in lines]


def _same_run(one, other) -> None:
    assert _metrics(one) == _metrics(other)
    for which in ("last", "best"):
        ours, theirs = read_checkpoint(resolve(one, which))[0], read_checkpoint(resolve(other, which))[0]
        assert all(torch.equal(ours[name], theirs[name]) for name in ours), which
    summaries = [json.loads((run / "summary.json").read_text()) for run in (one, other)]
    for key in ("steps", "best_step", "best_val_accuracy", "test_accuracy", "test_exact_match"):
        assert summaries[0][key] == summaries[1][key], key


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["generated", "arrays", "augmented images", "no cursor"])
def test_a_resumed_run_is_bit_identical_and_draws_only_the_batches_after_its_checkpoint(
    tmp_path, tiny_gpt2, monkeypatch, kind
):
    """Stopped at step 7 (arrays: mid-epoch 2, 5 batches an epoch), resumed to 12, against 12 uninterrupted;
    dropout is on, so the RNG and the stream must both continue exactly."""
    import fpt.tasks as registry

    for table in ("_REGISTRY", "_RUN_DEFAULTS", "_SCHEMAS"):  # registered for this test only
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    register_task("no-cursor", _NoCursor)
    task = _task(kind, tmp_path)
    settings = dict(backbone=tiny_gpt2, batch_size=4, eval_every=1, seed=2, device="cpu", precision="fp32")
    if kind == "augmented images":
        settings.update(task="cifar10", data_dir=str(tmp_path / "data"), task_options={"val_size": 6})
    elif kind == "generated":
        settings.update(task="bit-xor", task_options={"val_size": 8, "test_size": 8})
    given = {"task": task} if kind in ("arrays", "no cursor") else {}
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    train(RunConfig(**settings, steps=12, out=str(reference)), **given, **QUIET)
    train(RunConfig(**settings, steps=7, out=str(stopped)), **given, **QUIET)
    drawn = _count_training_draws(monkeypatch)
    summary = train(resume_config(stopped, steps=12), resume=True, **QUIET)
    assert summary["resumed_from_step"] == 7
    _same_run(stopped, reference)
    assert len(drawn) == (12 if kind == "no cursor" else 5)  # without a cursor, the 7 steps before are redrawn
