"""ListOps (Long Range Arena): the value 0-9 of a nested MAX/MIN/MED/SM expression.

Reads basic_{train,val,test}.tsv from the data root's listops/ directory: the LRA release, or
the offline copy `fpt data generate listops` writes by the same recipe.

Two tokenizers:
- `lra` (default): every bracket is a token (see fpt.data.listops). max_length defaults to the
  longest example (about 2000 tokens), so nothing is truncated; backbones with fewer positions get
  their position table interpolated (recorded as `position_table` in summary.json).
- `paper`: the authors' pipeline, for the cell compared with the paper's figure: brackets dropped,
  vocabulary from the first 1,002 training examples, every input cut and padded to 512 tokens with
  the padding read as input (the head reads position 512), so no position table is stretched.
"""

from __future__ import annotations

from fpt.data import listops as data
from fpt.data.fingerprint import fingerprint
from fpt.data.registry import require
from fpt.errors import FPTError
from fpt.tasks.sequences import SequenceTask

PAPER_LENGTH = 512
TOKENIZERS = ("lra", "paper")
OPTIONS = {
    "max_length": {
        "type": int,
        "min": 1,
        "help": "tokens per example (null: the longest example; 512 with tokenizer=paper)",
    },
    "parentheses": {"help": "keep the parentheses as tokens (they are implied by the brackets)"},
    "overlong": {"choices": ("clip", "skip"), "help": "longer examples: clipped, or (train/val) skipped"},
    "tokenizer": {
        "choices": TOKENIZERS,
        "help": "lra: every bracket a token (default); paper: the authors' pipeline (brackets dropped, 512 tokens)",
    },
}


def listops(
    data_dir: str | None = None,
    max_length: int | None = None,
    parentheses: bool = False,
    overlong: str = "clip",
    tokenizer: str = "lra",
) -> SequenceTask:
    paper = tokenizer == "paper"
    if paper and (parentheses or overlong != "clip"):
        raise FPTError(
            "listops: tokenizer=paper drops every bracket and parenthesis and cuts inputs to max_length; "
            "leave parentheses and overlong at their defaults."
        )
    directory = require("listops", data_dir)
    vocabulary = data.paper_vocabulary(directory / data.SPLITS["train"]) if paper else None
    splits = {}
    for split, filename in data.SPLITS.items():
        read = data.read_tsv(directory / filename, parentheses, vocabulary)
        splits[split] = (read.tokens, read.targets)
    sources = {s: f"{f} ({data.origin(directory)}, {directory})" for s, f in data.SPLITS.items()}
    if paper:
        max_length = max_length or PAPER_LENGTH
    task = SequenceTask(
        "listops",
        splits,
        len(vocabulary) + 2 if vocabulary is not None else len(data.VOCAB),
        10,
        max_length,
        overlong,
        dict(max_length=max_length, parentheses=parentheses, overlong=overlong, tokenizer=tokenizer),
        sources,
        fixed_length=paper,
    )
    task.data_fingerprint = fingerprint("listops", directory)
    return task
