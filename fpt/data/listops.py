"""ListOps in the Long Range Arena TSV format: reader, tokenizer and generator.

A file has a `Source<TAB>Target` header, then one expression and its value (0-9) per line, e.g.
`( ( ( [MAX 2 ) 9 ) ] )<TAB>9`. Every symbol that carries meaning is a token, the brackets
included: `[MAX` opens an operator, `]` closes it. (LRA's and the FPT paper's tokenizer dropped
`[`, `]`, `(` and `)`, so where an argument list ends was lost and the task could not be solved as
posed.) The parentheses only spell out the binary tree the generator built; they are implied by the
brackets, so they are dropped by default and kept with `parentheses=True`.

The paper's tokenizer is available too, for the cell that compares with its figure (`paper_vocabulary`,
`read_tsv(..., vocabulary=...)`): words are runs of letters and digits, so `[ ] ( )` vanish and
`[MAX` becomes `MAX`; the vocabulary comes from the first training examples only (the authors'
loader stops after index 1000, 1,002 examples); unseen words share one out-of-vocabulary id.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpt.errors import FPTError
from fpt.files import atomic_write
from fpt.memory import require

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
PAD = "<pad>"
VOCAB = (PAD, "]", *OPERATORS, "[FIRST", "[LAST", *"0123456789", "(", ")")  # id = position
DIGITS = tuple("0123456789")  # the values (str.isdigit would also pass "²", which int() refuses)
SPLITS = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}

# Each multi-character token becomes one character, so a line is tokenised by one table lookup.
_SHORT = {"[MAX": "A", "[MIN": "B", "[MED": "C", "[SM": "D", "[FIRST": "E", "[LAST": "F"}
_LOOKUP = np.full(256, 255, dtype=np.uint8)
for _token, _id in {**{_SHORT.get(t, t): i for i, t in enumerate(VOCAB) if t != PAD}}.items():
    _LOOKUP[ord(_token)] = _id
_PARENS = (VOCAB.index("("), VOCAB.index(")"))
_WORD = re.compile(r"[A-Za-z0-9]+")
PAPER_VOCAB_EXAMPLES = 1002  # the authors' loader reads training examples until index > 1000


@dataclass
class ListOpsSplit:
    tokens: list[np.ndarray]  # one uint8 id array per example
    targets: np.ndarray  # (n,) int64 values 0-9


def tokenize(source: str, parentheses: bool = False) -> np.ndarray | None:
    """Token ids of one expression, or None if it holds a symbol outside the vocabulary."""
    short = source
    for token, char in _SHORT.items():
        short = short.replace(token, char)
    compact = short.replace(" ", "")
    if len(compact) != short.count(" ") + 1:  # not single-spaced: check piece by piece
        pieces = short.split()
        if any(len(p) != 1 for p in pieces):
            return None
        compact = "".join(pieces)
    ids = _LOOKUP[np.frombuffer(compact.encode("ascii", "replace"), dtype=np.uint8)]
    if (ids == 255).any():
        return None
    return ids if parentheses else ids[(ids != _PARENS[0]) & (ids != _PARENS[1])]


def paper_vocabulary(path: str | Path, examples: int = PAPER_VOCAB_EXAMPLES) -> dict[str, int]:
    """The paper's vocabulary: the words of the first `examples` lines of a training file, ids from 1
    (0 pads; len + 1 is the out-of-vocabulary id), in sorted order so that runs are reproducible."""
    words: set[str] = set()
    for index, (_, source, _) in enumerate(_lines(Path(path))):
        if index >= examples:
            break
        words.update(_WORD.findall(source))
    if len(words) > 253:  # ids are stored as uint8, with 0 (padding) and len + 1 (unknown) taken
        raise FPTError(f"{path}: the first {examples} examples hold {len(words)} distinct words; ListOps has 16.")
    return {word: i for i, word in enumerate(sorted(words), start=1)}


def _lines(path: Path):
    """(line number, expression, value) of each example line; a malformed line is an FPTError."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise FPTError(
                    f"{path}, line {number}: not UTF-8 text (byte {raw[err.start : err.start + 1]!r} at column "
                    f"{err.start + 1}); LRA ListOps files are ASCII. Replace the file with an intact copy."
                ) from err
            fields = line.rstrip("\r\n").split("\t")
            if number == 1 and fields[:2] == ["Source", "Target"]:
                continue
            if len(fields) != 2 or fields[1].strip() not in DIGITS:
                raise FPTError(
                    f"{path}, line {number}: expected `expression<TAB>value` with a value 0-9, got "
                    f"{line.strip()[:80]!r}. Fix or remove the line (LRA files have a `Source<TAB>Target` header)."
                )
            yield number, fields[0], int(fields[1])


def read_tsv(path: str | Path, parentheses: bool = False, vocabulary: dict[str, int] | None = None) -> ListOpsSplit:
    """Read one LRA ListOps TSV file; a malformed line is reported with its number.

    With a `vocabulary` (see `paper_vocabulary`) lines are tokenised the paper's way instead.
    """
    path = Path(path)
    tokens, targets = [], []
    if vocabulary is not None:
        unknown = len(vocabulary) + 1
        for _, source, target in _lines(path):
            tokens.append(np.array([vocabulary.get(w, unknown) for w in _WORD.findall(source)], dtype=np.uint8))
            targets.append(target)
    else:
        for number, source, target in _lines(path):
            ids = tokenize(source, parentheses)
            if ids is None or not len(ids):
                raise FPTError(
                    f"{path}, line {number}: the expression holds a symbol outside the ListOps vocabulary "
                    f"({' '.join(t for t in VOCAB[1:])}); tokens must be separated by spaces."
                )
            tokens.append(ids)
            targets.append(target)
    if not tokens:
        raise FPTError(f"{path} holds no examples; expected LRA ListOps lines `expression<TAB>value`.")
    return ListOpsSplit(tokens, np.asarray(targets, dtype=np.int64))


# -- generator: the Long Range Arena recipe (lra_benchmarks/data/listops.py) ------------------
_OPERATOR_P = 0.25  # chance that a node above max_depth is an operator rather than a value
LRA_RECIPE = {"min_length": 500, "max_length": 2_000, "max_depth": 10, "max_args": 10}  # LRA's listops-1000
LRA_SIZES = {"train": 96_000, "val": 2_000, "test": 2_000}
# generate() gives up after this many draws, or drawn tokens (about half a minute), in a row with no new expression
FRUITLESS_DRAWS, FRUITLESS_TOKENS = 100_000, 10_000_000
MAX_MEAN_DRAW = 10_000  # nodes per drawn tree, on average, that check_recipe allows (LRA's: about 110)


def _tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> tuple[int | tuple, int, int]:
    """(node, value, LRA length) of a random expression; a node is a value or (operator, children)."""
    if depth >= max_depth or rng.random() > _OPERATOR_P:
        value = rng.randrange(10)
        return value, value, 1
    children = [_tree(rng, depth + 1, max_depth, max_args) for _ in range(rng.randint(2, max_args))]
    op = rng.choice(OPERATORS)
    values = [c[1] for c in children]
    reducers: dict[str, Callable[[list[int]], int]] = {
        "[MAX": max,
        "[MIN": min,
        "[SM": lambda v: sum(v) % 10,
        "[MED": lambda v: int(np.median(v)),
    }
    value = reducers[op](values)
    return (op, [c[0] for c in children]), value, 2 + sum(c[2] for c in children)


def _write(node: int | tuple, out: list[str]) -> None:
    """LRA's spelling of a node: ((((op a) b) c) ]), one "(" per argument plus one for the bracket."""
    if isinstance(node, int):
        out.append(str(node))
        return
    op, children = node
    out += ["("] * (len(children) + 1) + [op]
    for child in children:
        _write(child, out)
        out.append(")")
    out += ["]", ")"]


def longest(max_depth: int, max_args: int) -> int:
    """The longest expression (LRA length) the recipe can draw: every operator full, down to max_depth."""
    return 1 if max_depth <= 1 else 2 + max_args * longest(max_depth - 1, max_args)


def mean_draw(max_depth: int, max_args: int) -> float:
    """Mean nodes of one drawn tree: the recipe draws a whole tree before it checks the length, and above
    1.33 children per node (max_args 3 and up) that grows geometrically with max_depth."""
    children = _OPERATOR_P * (2 + max_args) / 2
    total, level = 0.0, 1.0
    for _ in range(min(max_depth, 10_000)):
        total, level = total + level, level * children
        if total > MAX_MEAN_DRAW or level < 1e-9:
            break
    return total


def check_recipe(min_length: int, max_length: int, max_depth: int, max_args: int) -> None:
    """Refuse settings no expression meets, or whose drawing would not finish, before any drawing."""
    values = {"min-length": min_length, "max-length": max_length, "max-depth": max_depth, "max-args": max_args}
    bad = [f"--{k} {v!r}" for k, v in values.items() if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise FPTError(f"fpt data generate: {', '.join(bad)} is not an integer. Nothing was written.")
    lra = "LRA's: --min-length 500 --max-length 2000 --max-depth 10 --max-args 10"
    small = [
        f"--{k} {v}"
        for k, v, least in (("min-length", min_length, 1), ("max-depth", max_depth, 2), ("max-args", max_args, 2))
        if v < least
    ]
    if small:
        raise FPTError(
            f"fpt data generate: {', '.join(small)} is not allowed: --min-length takes 1 or more, --max-depth and "
            f"--max-args 2 or more ({lra}). Nothing was written."
        )
    if mean_draw(max_depth, max_args) > MAX_MEAN_DRAW:
        raise FPTError(
            f"fpt data generate: --max-depth {max_depth} with --max-args {max_args} draws trees of over "
            f"{MAX_MEAN_DRAW:,} nodes on average (the recipe draws a whole tree, then checks its length), so "
            f"generating would not finish. Lower --max-depth or --max-args ({lra}). Nothing was written."
        )
    most = longest(min(max_depth, 64), max_args)  # past depth 64 the exact figure is of no use, only huge
    if max(min_length + 1, 4) > min(max_length - 1, most):
        raise FPTError(
            f"fpt data generate: no ListOps expression has a length strictly between --min-length {min_length} and "
            f"--max-length {max_length}: lengths count values plus two per operator, an operator takes 2 to "
            f"--max-args arguments, so lengths run from 4 to {'over ' * (max_depth > 64)}{most:,} here (--max-depth {max_depth}, --max-args "
            f"{max_args}). Choose a range that holds one of them ({lra}). Nothing was written."
        )


def generated_record(directory: Path) -> dict | None:
    """The settings a generated copy's GENERATED file records; None if it is missing or unreadable."""
    try:
        recorded = json.loads((directory / "GENERATED").read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def origin(directory: Path) -> str:
    """Where a ListOps folder's files come from, naming every recipe setting of a generated copy that
    is not LRA's, so that a shortened copy is never reported as LRA's task."""
    if not (directory / "GENERATED").exists():
        return "LRA release"
    recorded = generated_record(directory)
    if recorded is None:
        return "generated (its GENERATED record is unreadable)"
    recipe = {k: recorded.get(k, v) for k, v in LRA_RECIPE.items()}  # records before the flags: LRA's
    lengths = ("min_length", "max_length")
    changes = [
        f"{k.replace('_', ' ')} {recipe[k]} (LRA: {v})"
        for k, v in LRA_RECIPE.items()
        if k not in lengths and recipe[k] != v
    ]
    if any(recipe[k] != LRA_RECIPE[k] for k in lengths):
        changes.insert(0, f"lengths {recipe['min_length']}-{recipe['max_length']} (LRA: 500-2000)")
    return "generated by the LRA recipe" + (f", except {', '.join(changes)}" if changes else "")


def generate(
    directory: str | Path,
    seed: int = 0,
    train: int = LRA_SIZES["train"],
    val: int = LRA_SIZES["val"],
    test: int = LRA_SIZES["test"],
    min_length: int = LRA_RECIPE["min_length"],
    max_length: int = LRA_RECIPE["max_length"],
    max_depth: int = LRA_RECIPE["max_depth"],
    max_args: int = LRA_RECIPE["max_args"],
    progress=None,
) -> dict[str, Path]:
    """Write basic_{train,val,test}.tsv by the LRA recipe; the same seed gives the same files.

    Lengths count values plus two per operator (LRA's measure, the token count without parentheses)
    and lie strictly between `min_length` and `max_length`; expressions are distinct across splits.
    Drawing gives up (FPTError) when FRUITLESS_DRAWS draws or FRUITLESS_TOKENS tokens in a row add
    nothing: expressions of those lengths are then too rare, or too few distinct ones exist.
    """
    check_recipe(min_length, max_length, max_depth, max_args)
    largest = max(train, val, test)
    require(  # every source string (2+ characters a token) is kept, and the largest split joined once more
        f"Generating {train + val + test:,} ListOps examples of over {min_length} tokens",
        2.0 * min_length * (train + val + test + largest),
        "Generate fewer examples (--train, --val, --test).",
    )
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[tuple[str, int]] = []
    total, draws, drawn = train + val + test, 0, 0  # draws and their tokens since the last new expression
    while len(examples) < total:
        if draws >= FRUITLESS_DRAWS or drawn >= FRUITLESS_TOKENS:
            raise FPTError(
                f"fpt data generate: {draws:,} draws ({drawn:,} tokens) in a row gave no new ListOps expression of length "
                f"strictly between {min_length} and {max_length} (max depth {max_depth}, max args {max_args}); "
                f"{len(examples):,} of the {total:,} examples asked for were found. Such expressions are too rare, "
                "or too few distinct ones exist: widen the length range, raise --max-depth or --max-args, or ask for "
                "fewer examples (--train, --val, --test). Nothing was written."
            )
        node, value, length = _tree(rng, 1, max_depth, max_args)
        draws, drawn = draws + 1, drawn + length
        if not min_length < length < max_length:
            continue
        tokens: list[str] = []
        _write(node, tokens)
        source = " ".join(tokens)
        if source not in seen:
            seen.add(source)
            examples.append((source, value))
            draws = drawn = 0
            if progress is not None:
                progress(1)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written, start = {}, 0
    for split, count in (("train", train), ("val", val), ("test", test)):
        lines = ["Source\tTarget"] + [f"{s}\t{v}" for s, v in examples[start : start + count]]
        atomic_write(directory / SPLITS[split], ("\n".join(lines) + "\n").encode())
        written[split], start = directory / SPLITS[split], start + count
    return written
