"""Reader for TAPE's remote homology LMDB files (`remote_homology_<split>.lmdb`).

Each database holds a pickled `num_examples` count under b"num_examples" and one pickled dict per
example under b"0", b"1", ...; the dict has `primary` (the amino-acid string) and `fold_label`
(besides class, superfamily and family labels, which this task does not use).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpt.data import safe_pickle
from fpt.errors import FPTError, install_hint

SPLITS = {
    "train": "remote_homology_train.lmdb",
    "valid": "remote_homology_valid.lmdb",
    "test_fold_holdout": "remote_homology_test_fold_holdout.lmdb",
    "test_superfamily_holdout": "remote_homology_test_superfamily_holdout.lmdb",
    "test_family_holdout": "remote_homology_test_family_holdout.lmdb",
}
NUM_FOLDS = 1195
PAD = "<pad>"
# The 25 IUPAC letters TAPE's tokenizer knows: 20 standard residues, then X (unknown), B, Z, U, O.
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWYXBZUO"
VOCAB = (PAD, *AMINO_ACIDS)  # id = position
_LOOKUP = np.full(256, 255, dtype=np.uint8)
for _id, _letter in enumerate(AMINO_ACIDS, start=1):
    _LOOKUP[ord(_letter)] = _id


@dataclass
class HomologySplit:
    tokens: list[np.ndarray]  # one uint8 id array per protein
    targets: np.ndarray  # (n,) int64 fold labels


def require_lmdb():
    """The lmdb package, imported on first use: only remote homology needs it (the `homology` extra)."""
    try:
        import lmdb
    except ImportError as err:
        raise FPTError(
            "Remote homology reads TAPE's LMDB databases with the lmdb package, which is not installed. Install it "
            f"with {install_hint('homology', 'lmdb')}."
        ) from err
    return lmdb


def read_lmdb(path: str | Path, label: str = "fold_label", num_classes: int = NUM_FOLDS) -> HomologySplit:
    """All examples of one split, in key order."""
    path = Path(path)
    lmdb = require_lmdb()
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=path.is_dir())
    except lmdb.Error as err:
        raise FPTError(
            f"{path} is not a readable LMDB database ({err}); expected TAPE's {path.name} directory."
        ) from err
    tokens, targets = [], []
    with env, env.begin() as txn:
        count = txn.get(b"num_examples")
        if count is None:
            raise FPTError(f"{path} has no b'num_examples' key: it is not a TAPE dataset LMDB.")
        count = _record(path, b"num_examples", count)
        for index in range(int(count)):
            key = str(index).encode()
            value = txn.get(key)
            if value is None:
                raise FPTError(f"{path} announces {count} examples but has no key {key!r}; the database is incomplete.")
            record = _record(path, key, value)
            if not isinstance(record, dict) or "primary" not in record or label not in record:
                found = sorted(record)[:8] if isinstance(record, dict) else type(record).__name__
                raise FPTError(f"{path}, key {key!r}: expected a dict with 'primary' and {label!r}, found {found}.")
            sequence = record["primary"]
            sequence = sequence.decode() if isinstance(sequence, bytes) else str(sequence)
            ids = _LOOKUP[np.frombuffer(sequence.upper().encode("ascii", "replace"), dtype=np.uint8)]
            if not len(ids) or (ids == 255).any():
                raise FPTError(
                    f"{path}, key {key!r}: the sequence holds characters outside the amino-acid alphabet "
                    f"{AMINO_ACIDS} (or is empty): {sequence[:40]!r}."
                )
            target = int(record[label])
            if not 0 <= target < num_classes:
                raise FPTError(f"{path}, key {key!r}: {label} {target} is outside [0, {num_classes}).")
            tokens.append(ids)
            targets.append(target)
    return HomologySplit(tokens, np.asarray(targets, dtype=np.int64))


def _record(path: Path, key: bytes, value: bytes):
    try:
        return safe_pickle.loads(value)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise FPTError(f"{path}, key {key!r}: the value is not a pickled TAPE record ({err}).") from err
