"""GGUF backbones through a convert-once cache of plain Hugging Face directories.

`transformers` reads a GGUF file by dequantising every tensor, which takes minutes for a few hundred
MB: far too slow to repeat per run. So the first use converts the file once into
`<cache root>/backbones/<key>/` (config.json + model.safetensors, fp32, dequantised), and every
later load is an ordinary `AutoModel.from_pretrained` of that directory (seconds).

The language token embedding is cut to its first `KEEP_TOKENS` rows: FPT never calls it (inputs
enter as embeddings), and Gemma 3's 262,144 x 640 table alone would be most of the file. Only ORCA's
alignment (fpt.training.align) embeds language tokens, so the whole table is kept beside the model in
`TOKEN_TABLE` (bf16, read by nothing else), with the tokenizer the GGUF file carries. A
GGUF-loaded model refuses `save_pretrained`, so the weights go through a fresh model built from the
same config. The directory is written beside its final place and renamed into it, so a killed
conversion never leaves a half-written cache behind; the working directories such a process leaves
(named with its process id) are removed by the next conversion once that process is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fpt.errors import FPTError
from fpt.files import cache_root

KEEP_TOKENS = 256  # rows of the token embedding kept (never called by FPT; kept so the model class builds)
MARKER = "fpt-gguf.json"  # written last into a finished cache directory: what it was converted from
TOKEN_TABLE = "token_embedding.safetensors"  # the uncut token embedding ("weight"), for text alignment only
FORMAT = 2  # in the cache directory's name; 2: the tokenizer and TOKEN_TABLE are kept (1: model only)


def _say(message: str) -> None:
    print(f"fpt: {message}", file=sys.stderr, flush=True)


def require_gguf(what: str, install: str) -> None:
    """Fail with what to install when the `gguf` reader that transformers needs is missing."""
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise FPTError(f"{what} needs the `gguf` package to read GGUF files; install it with {install}.") from err


def check_complete(gguf_file: Path) -> None:
    """Refuse, before any work, a file that is not a whole GGUF file (a download or copy cut short, another
    format): its header, metadata and tensor table must parse and every tensor's data lie within the file."""
    from gguf import GGUFReader

    size = gguf_file.stat().st_size
    with gguf_file.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise FPTError(
            f"{gguf_file} is not a GGUF file ({size:,} bytes starting with {magic!r}, not the GGUF magic b'GGUF'); "
            "pass a .gguf model file as written by llama.cpp's converters. Nothing was converted."
        )
    try:
        tensors = GGUFReader(str(gguf_file), "r").tensors
        end = max((int(t.data_offset) + int(t.n_bytes) for t in tensors), default=0)
        problem = "it holds no tensors" if not tensors else None
        problem = problem or (f"its tensors end at byte {end:,}" if end > size else None)
    except Exception as err:  # gguf's reader raises struct.error, ValueError, IndexError... on cut files
        problem = f"reading it stopped: {type(err).__name__}: {str(err)[:200]}"
    if problem:
        raise FPTError(
            f"{gguf_file} is not a complete GGUF file ({size:,} bytes; {problem}). A download or copy was probably "
            "cut short: fetch the file again (its publisher's checksum tells a whole copy). Nothing was converted."
        )


def convert(gguf_file: Path, target: Path, note: str = "") -> Path:
    """Dequantise `gguf_file` into the Hugging Face directory `target` (created atomically)."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel

    check_complete(gguf_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _say(f"converting {gguf_file.name} once into {target} (dequantising every tensor; this takes a few minutes)")
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise FPTError(
            f"transformers could not read {gguf_file} as a GGUF model: {err}. Only architectures that "
            "`transformers` loads from GGUF (with AutoModelForCausalLM) can be used as backbones this way."
        ) from err
    base: PreTrainedModel = loaded.base_model  # type: ignore[assignment]
    state = base.state_dict()
    values = base.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path"):  # a plain fp32 model from now on
        values.pop(key, None)
    config = AutoConfig.for_model(**values)
    token = base.get_input_embeddings().weight
    token_key = next(n for n, p in base.named_parameters() if p is token)
    full_table = state[token_key].to(torch.bfloat16)
    pad = getattr(config, "pad_token_id", None)
    keep = max(KEEP_TOKENS, pad + 1 if isinstance(pad, int) else 0)
    config.vocab_size = min(keep, config.vocab_size)
    state[token_key] = state[token_key][: config.vocab_size]
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the caller's RNG alone
        fresh = AutoModel.from_config(config)
    missing = set(fresh.state_dict()) ^ set(state)
    if missing:
        raise FPTError(
            f"Converting {gguf_file}: the GGUF model's tensors do not match a fresh {type(fresh).__name__} "
            f"(differing names: {sorted(missing)[:5]}). This architecture cannot be converted."
        )
    fresh.load_state_dict(state)
    work = _working_dir(target.parent, target.name)
    work.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
    try:
        fresh.config.save_pretrained(work)
        save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, str(work / "model.safetensors"))
        save_file({"weight": full_table.contiguous()}, str(work / TOKEN_TABLE))
        _save_tokenizer(gguf_file, work)
        marker = {"gguf": gguf_file.name, "kept_token_rows": config.vocab_size, "dtype": "float32", "note": note}
        (work / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _publish(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _say(f"converted in {time.perf_counter() - started:.0f} s; later loads read {target}")
    return target


WORKING = re.compile(r"^\..+\.fpt-tmp-(\d+)@(.+)\.[^.]+$")  # _working_dir's names: process id, host


def _working_dir(parent: Path, name: str) -> Path:
    """A new hidden directory in `parent` for `name`'s work in progress, named with this process's id and
    host so that a later conversion can tell one left by a killed process from one still in use."""
    return Path(tempfile.mkdtemp(prefix=f".{name}.fpt-tmp-{os.getpid()}@{socket.gethostname()}.", dir=parent))


def _remove_dead_working_dirs(parent: Path) -> None:
    """Remove the working directories that processes on this host left in `parent` when they were killed
    mid-conversion (SIGKILL, power loss: no `finally` ran), naming each; another host's are left alone."""
    for path in parent.iterdir():
        found = WORKING.match(path.name)
        if not found or found[2] != socket.gethostname() or not path.is_dir() or _alive(int(found[1])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        _say(f"removed {path}: a conversion's work left by process {found[1]}, which ended before finishing it")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _publish(work: Path, target: Path) -> None:
    """Rename the finished `work` directory to `target`. A `target` without the marker is a conversion cut
    short (or an older fpt's): it is replaced. One with the marker is another process's finished
    conversion of the same file: it is kept."""
    if target.exists() and not (target / MARKER).is_file():
        stale = _working_dir(target.parent, f"{target.name}.stale")
        target.rename(stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
        _say(f"replaced {target}: it was an incomplete conversion (no {MARKER})")
    try:
        work.rename(target)
    except OSError:
        if not (target / MARKER).is_file():
            raise
        # another process finished the same conversion first: keep theirs


def _save_tokenizer(gguf_file: Path, target: Path) -> None:
    """The tokenizer the GGUF file carries, saved as Hugging Face files; a file without one is fine (FPT
    itself reads no text: only alignment does, and it says so when the tokenizer is missing)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    except (OSError, ValueError, KeyError, TypeError) as err:
        _say(f"{gguf_file.name} carries no tokenizer transformers can read ({str(err)[:200]}); none kept")
        return
    tokenizer.save_pretrained(str(target))


def cached(key: str, gguf_source: Callable[[Path], Path], note: str = "") -> Path:
    """The converted directory for `key`, converting on first use.

    `gguf_source(scratch)` yields the GGUF file, possibly writing it into the scratch directory
    `scratch`, which is deleted once the conversion is done.
    """
    target = cache_root() / "backbones" / f"{key}-f{FORMAT}"  # an older format's directory is left unread
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_working_dirs(target.parent)
    scratch = _working_dir(target.parent, f"{key}.gguf")
    try:
        return convert(gguf_source(scratch), target, note)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def gguf_file_dir(path: Path) -> Path:
    """The converted directory of a GGUF file given by path (keyed by its name, size and mtime)."""
    require_gguf(f"Backbone {path}", "`pip install gguf`")
    path = path.expanduser().resolve()
    stat = path.stat()
    stamp = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cached(f"{path.stem}-{stamp}", lambda _: path, note=f"converted from {path}")
