"""`from:` initialisations: a backbone state saved by another run (`from:RUN_DIR`) or in a file
(`from:FILE.safetensors`).

Why this is its own step: a run made with `--init from:runs/mem` must be rebuilt later by `fpt eval`
from any folder, so the path is stored absolute; the backbone it names must be the one the source
run trained, so a disagreement is refused instead of silently switching backbones; and the
source's weights are fingerprinted, so a source that was changed since is named as the cause.
"""

from __future__ import annotations

from pathlib import Path

from fpt.errors import FPTError
from fpt.runs import read_run_record

PREFIX = "from:"


def source_path(init: str) -> Path | None:
    """The absolute path an init of the form `from:PATH` names; None for pretrained/random/stats."""
    if not init.startswith(PREFIX):
        return None
    return Path(init[len(PREFIX) :]).expanduser().absolute()


def resolve_init(init: str) -> str:
    """`from:PATH` with PATH made absolute (relative paths are relative to the current folder)."""
    path = source_path(init)
    return init if path is None else f"{PREFIX}{path}"


def source_run_model(path: Path) -> dict | None:
    """The model section of the source run's config.yaml, or None when `path` is not a run directory."""
    if not (path / "config.yaml").is_file():
        return None
    return read_run_record(path).model


def check_source(init: str, backbone: str) -> None:
    """Refuse a `from:` init whose source does not exist, is an LSTM run, or trained another backbone."""
    path = source_path(init)
    if path is None:
        return
    model = source_run_model(path)
    if model is None:
        if not path.is_file():
            raise FPTError(
                f"Init {init!r}: {path} is neither a run directory (with config.yaml) nor a safetensors file of "
                "backbone weights."
            )
        return
    if model.get("architecture") == "lstm":
        raise FPTError(f"Init {init!r}: {path} trained the LSTM baseline, which has no transformer backbone to load.")
    if model.get("backbone") != backbone:
        raise FPTError(
            f"Init {init!r} loads the backbone state of a run whose backbone is {model.get('backbone')!r}, but this "
            f"run's backbone is {backbone!r}. Pass --backbone {model.get('backbone')} (backbone="
            f"{model.get('backbone')!r} in Python) so the run records the backbone it really uses."
        )
