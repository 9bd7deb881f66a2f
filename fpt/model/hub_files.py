"""The files of a saved FPT model, found and checked before anything is built.

`from_pretrained` takes a local directory or a hub repo id. Either way it needs `config.json` and
`model.safetensors`; every way they can be missing, unreachable or damaged ends here in one FPTError
that names the file and what to do, before the backbone (seconds to minutes) is rebuilt. With no
network the hub is probed once (a TCP connect), so an offline call fails at once instead of after
huggingface_hub's half minute of retries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from fpt.backbones.loading import hub_offline, hub_reachable
from fpt.errors import FPTError
from fpt.yamlsafe import short

FORMAT = "fpt-trained-parameters/1"
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
SAVED_BY = "FrozenPretrainedTransformer.save_pretrained"
OFFLINE_HINT = (
    "On a machine without a network, set HF_HUB_OFFLINE=1 so that hub calls use the local cache only and fail "
    "at once; to load a model you have as files, pass its directory."
)


def _looks_like_a_path(name: str) -> bool:
    """Whether `name` can only be meant as a local path (a hub id is `name` or `org/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "~", os.sep)) or os.path.exists(name) or name.count("/") > 1:
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return False


def saved_files(name: str, **download) -> Path:
    """The directory holding `name`'s config.json and model.safetensors (downloaded for a hub id).

    `download`: hf_hub_download's revision, cache_dir, force_download, token and local_files_only."""
    if not _looks_like_a_path(name):
        return _downloaded(name, **download)
    directory = Path(name).expanduser()
    if not directory.is_dir():
        problem = "is a file, not a directory" if directory.exists() else "does not exist"
        raise FPTError(
            f"Cannot load a saved FPT model from {short(name, 200)}: it {problem}. Pass the directory "
            f"{SAVED_BY} wrote (holding {CONFIG} and {WEIGHTS}) or a hub repo id such as `org/name`."
        )
    missing = [f for f in (CONFIG, WEIGHTS) if not (directory / f).is_file()]
    if missing:
        raise FPTError(
            f"{directory} has no {' and no '.join(missing)}; a saved FPT model is the directory {SAVED_BY} "
            f"writes ({CONFIG}, {WEIGHTS} and README.md). Save it again, or pass the right directory."
        )
    return directory


def _downloaded(repo_id: str, **download) -> Path:
    """Both files of hub repo `repo_id`, from the hub when it answers, else from the local cache."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = download.get("local_files_only") or hub_offline() or not hub_reachable()
    paths = []
    for filename in (CONFIG, WEIGHTS):
        try:
            paths.append(hf_hub_download(repo_id, filename, **{**download, "local_files_only": offline}))
        except LocalEntryNotFoundError as err:
            why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face Hub cannot be reached"
            if download.get("local_files_only"):
                why = "local_files_only=True was passed"
            raise FPTError(
                f"Cannot load {short(repo_id, 200)}: {why}, and its {filename} is not in the local Hugging Face "
                f"cache (nor is there a directory of that name here). {OFFLINE_HINT}"
            ) from err
        except Exception as err:  # huggingface_hub's HTTP errors, and transport errors of its HTTP client
            raise hub_error(err, f"download {filename} of {short(repo_id, 200)}") from err
    directory = Path(paths[0]).parent
    if Path(paths[1]).parent != directory:
        raise FPTError(f"The hub cache holds {CONFIG} and {WEIGHTS} of {repo_id} from different revisions.")
    return directory


def hub_error(err: Exception, action: str) -> Exception:
    """An FPTError for a failed hub call (`action`: what was being done); other errors are returned as they are."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    first_line = short(str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__, 300)
    if isinstance(err, GatedRepoError):
        advice = "the repo is gated: accept its terms on the hub, then log in with `hf auth login`."
    elif isinstance(err, RepositoryNotFoundError):
        advice = "no such model repo on the hub, or it is private (log in with `hf auth login`). Check the id."
    elif isinstance(err, RevisionNotFoundError):
        advice = "no such revision (branch, tag or commit) in the repo."
    elif isinstance(err, EntryNotFoundError):
        advice = f"the repo lacks the file: it holds no FPT model saved by {SAVED_BY}."
    elif isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        advice = "log in with `hf auth login` (a token with write access to push)." if status in (401, 403) else ""
        advice = advice or "the hub refused the request; try again later."
    elif isinstance(err, OSError) or type(err).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3"):
        advice = f"the network failed. {OFFLINE_HINT}"
    else:
        return err
    return FPTError(f"Could not {action}: {first_line}. {advice[0].upper()}{advice[1:]}")


def read_config(directory: Path, name: str) -> dict:
    """config.json as save_pretrained wrote it, with the keys loading reads checked."""
    path = directory / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FPTError(
            f"{CONFIG} of {short(name, 200)} is not valid JSON ({short(str(err), 120)}); it was damaged or "
            f"edited. Save the model again with {SAVED_BY}."
        ) from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = f"a JSON {type(config).__name__}" if not isinstance(config, dict) else f"format {config.get('format')!r}"
        raise FPTError(
            f"{short(name, 200)} has no {CONFIG} written by {SAVED_BY} (expected an object with format "
            f"{FORMAT!r}, got {short(got, 100)}); it is not a saved FPT model."
        )
    wrong = [key for key in ("model", "backbone", "fingerprint") if not isinstance(config.get(key), dict)]
    if wrong:
        raise FPTError(
            f"{CONFIG} of {short(name, 200)} lacks {', '.join(repr(k) for k in wrong)} (each an object: the "
            f"model config, the backbone and the fingerprint of its frozen weights); it was edited or cut short. "
            f"Save the model again with {SAVED_BY}."
        )
    return config


def check_weights(directory: Path, name: str) -> Path:
    """model.safetensors, whose header and size are checked (a damaged file is refused before the rebuild)."""
    path = directory / WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as weights:
            weights.keys()
    except (SafetensorError, OSError, ValueError) as err:
        raise FPTError(
            f"{WEIGHTS} of {short(name, 200)} cannot be read as safetensors ({short(str(err), 150)}); it is "
            f"damaged or cut short. Download or save the model again."
        ) from err
    return path
