"""The paper's synthetic bit tasks, generated on the fly (no files, works offline).

Bit Memory's input bits are +-1 (0 marks a masked bit); Bit XOR's are 0/1 by default, as in the authors'
code (`encoding=pm1` gives +-1). Targets are 0/1 class ids. Validation and test sets are fixed:
generated once with their own seeds, the same for every run and training seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from fpt.errors import FPTError
from fpt.tasks.base import Batch, Task, TaskSpec
from fpt.tasks.options import divisible, fits_in_memory
from fpt.tasks.stream import StreamCursor

VAL_SEED, TEST_SEED = 2_000_000_011, 2_000_000_033


class BitTask(Task):
    """Shared machinery: subclasses define `sample(n, generator) -> (inputs, target_bits)`."""

    def __init__(self, bits_per_token: int, val_size: int, test_size: int):
        self.bits_per_token = bits_per_token
        self.val_size, self.test_size = val_size, test_size
        self._fixed: dict[str, Batch] = {}

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _batch(self, n: int, generator: torch.Generator) -> Batch:
        bits, targets = self.sample(n, generator)
        tokens = bits.reshape(n, -1, self.bits_per_token)
        return Batch(tokens, targets.long())

    def train_batches(self, batch_size: int, seed: int, cursor: StreamCursor | None = None) -> Iterator[Batch]:
        generator = (cursor or StreamCursor()).generator("bits", seed)  # its state is where the stream stands
        while True:
            yield self._batch(batch_size, generator)

    def split_size(self, split: str) -> int:
        return {"val": self.val_size, "test": self.test_size}[split]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        if split not in self._fixed:
            seed = {"val": VAL_SEED, "test": TEST_SEED}[split]
            self._fixed[split] = self._batch(self.split_size(split), torch.Generator().manual_seed(seed))
        yield from self._fixed[split].chunks(batch_size)


def _random_signs(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


class BitMemory(BitTask):
    """Memorise `n_strings` strings, then recall one shown with each bit zeroed with `mask_prob`.

    The output is read from the last n_bits / bits_per_token tokens (the query's own tokens).
    """

    name = "bit-memory"
    metric_names = {"accuracy": "bit accuracy", "exact_match": "string accuracy"}

    def __init__(
        self,
        n_strings: int = 5,
        n_bits: int = 1000,
        bits_per_token: int = 50,
        mask_prob: float = 0.5,
        val_size: int = 1000,
        test_size: int = 1000,
    ):
        if n_bits % bits_per_token:
            raise FPTError(f"bit-memory: n_bits ({n_bits}) must be a multiple of bits_per_token ({bits_per_token}).")
        super().__init__(bits_per_token, val_size, test_size)
        self.n_strings, self.n_bits, self.mask_prob = n_strings, n_bits, mask_prob
        query_tokens = n_bits // bits_per_token
        self.spec = TaskSpec(
            "continuous", bits_per_token, (n_strings + 1) * query_tokens, 2, query_tokens, bits_per_token
        )

    def options(self) -> dict:
        return dict(
            n_strings=self.n_strings,
            n_bits=self.n_bits,
            bits_per_token=self.bits_per_token,
            mask_prob=self.mask_prob,
            val_size=self.val_size,
            test_size=self.test_size,
        )

    def sample(self, n, generator):
        strings = _random_signs((n, self.n_strings, self.n_bits), generator)
        which = torch.randint(0, self.n_strings, (n,), generator=generator)
        target = strings[torch.arange(n), which]
        keep = torch.rand((n, self.n_bits), generator=generator) >= self.mask_prob
        query = target * keep
        inputs = torch.cat([strings.reshape(n, -1), query], dim=1)
        return inputs, (target > 0)


class BitXOR(BitTask):
    """Two strings of `n_bits` bits; predict their XOR from the second string's tokens."""

    name = "bit-xor"
    metric_names = {"accuracy": "bit accuracy", "exact_match": "string accuracy"}

    ENCODINGS = ("01", "pm1")

    def __init__(
        self,
        n_bits: int = 5,
        bits_per_token: int = 1,
        val_size: int = 1000,
        test_size: int = 1000,
        encoding: str = "01",
    ):
        if n_bits % bits_per_token:
            raise FPTError(f"bit-xor: n_bits ({n_bits}) must be a multiple of bits_per_token ({bits_per_token}).")
        if encoding not in self.ENCODINGS:
            raise FPTError(
                f"bit-xor: encoding must be 01 (input bits 0/1, the paper's) or pm1 (bits -1/+1), got {encoding!r}."
            )
        super().__init__(bits_per_token, val_size, test_size)
        self.n_bits, self.encoding = n_bits, encoding
        out_tokens = n_bits // bits_per_token
        self.spec = TaskSpec("continuous", bits_per_token, 2 * out_tokens, 2, out_tokens, bits_per_token)

    def options(self) -> dict:
        return dict(
            n_bits=self.n_bits,
            bits_per_token=self.bits_per_token,
            val_size=self.val_size,
            test_size=self.test_size,
            encoding=self.encoding,
        )

    def sample(self, n, generator):
        a = _random_signs((n, self.n_bits), generator)
        b = _random_signs((n, self.n_bits), generator)
        inputs = torch.cat([a, b], dim=1)
        return (inputs > 0).float() if self.encoding == "01" else inputs, (a != b)


_SIZES = {
    "bits_per_token": {"min": 1, "help": "bits per input token (n_bits must be a multiple)"},
    "val_size": {"min": 1, "help": "examples in the fixed validation set"},
    "test_size": {"min": 1, "help": "examples in the fixed test set"},
}
# (refinements, rules) of each task's options; the fixed splits are generated at once, with ~3 float
# copies of each example while sampling
BIT_MEMORY_OPTIONS = (
    {
        **_SIZES,
        "n_strings": {"min": 1, "help": "strings to memorise"},
        "n_bits": {"min": 1, "help": "bits per string"},
        "mask_prob": {"type": float, "min": 0.0, "max": 1.0, "help": "chance each query bit is zeroed"},
    },
    (
        divisible("n_bits", "bits_per_token"),
        fits_in_memory(
            "the validation and test sets",
            lambda v: 12.0 * (v["val_size"] + v["test_size"]) * (v["n_strings"] + 1) * v["n_bits"],
        ),
    ),
)
BIT_XOR_OPTIONS = (
    {
        **_SIZES,
        "n_bits": {"min": 1, "help": "bits per string (two strings are XORed)"},
        "encoding": {
            "choices": BitXOR.ENCODINGS,
            "help": 'input bits 0/1 (01, the authors\') or -1/+1 (pm1); in YAML files quote it: "01"',
        },
    },
    (
        divisible("n_bits", "bits_per_token"),
        fits_in_memory(
            "the validation and test sets", lambda v: 12.0 * (v["val_size"] + v["test_size"]) * 2 * v["n_bits"]
        ),
    ),
)
