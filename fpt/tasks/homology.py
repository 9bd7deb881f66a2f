"""Remote homology (TAPE): the SCOP fold (1195 classes) of a protein from its amino-acid sequence.

Reads TAPE's LMDB splits from the data root's remote-homology/ directory: train, valid, and one of
the three test sets (fold, superfamily or family holdout; `test_split`). Sequences longer than
max_length (1024, as in the paper) are counted and reported, then clipped or (train and valid
only) skipped; the paper dropped them silently and rescaled the accuracy instead.
"""

from __future__ import annotations

from fpt.data import tape
from fpt.data.registry import require
from fpt.errors import FPTError
from fpt.tasks.sequences import SequenceTask

RUN_DEFAULTS = {"lr": 1e-4}  # the paper's learning rate for this task
TEST_SPLITS = ("fold", "superfamily", "family")
OPTIONS = {
    "max_length": {"min": 1, "help": "tokens per protein; longer ones are clipped or skipped"},
    "overlong": {"choices": ("clip", "skip"), "help": "longer proteins: clipped, or (train/valid) skipped"},
    "test_split": {"choices": TEST_SPLITS, "help": "which holdout is the test set"},
}


def remote_homology(
    data_dir: str | None = None, max_length: int = 1024, overlong: str = "clip", test_split: str = "fold"
) -> SequenceTask:
    if test_split not in TEST_SPLITS:
        raise FPTError(f"remote-homology: test_split must be one of {', '.join(TEST_SPLITS)}, got {test_split!r}.")
    tape.require_lmdb()  # before anything else: without it nothing below can be read
    directory = require("remote-homology", data_dir)
    files = {"train": "train", "val": "valid", "test": f"test_{test_split}_holdout"}
    splits = {}
    for split, key in files.items():
        read = tape.read_lmdb(directory / tape.SPLITS[key])
        splits[split] = (read.tokens, read.targets)
    sources = {s: tape.SPLITS[k] for s, k in files.items()}
    return SequenceTask(
        "remote-homology",
        splits,
        len(tape.VOCAB),
        tape.NUM_FOLDS,
        max_length,
        overlong,
        dict(max_length=max_length, overlong=overlong, test_split=test_split),
        sources,
    )
