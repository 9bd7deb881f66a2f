"""Hub-ready FPT models: `save_pretrained`, `from_pretrained` and `push_to_hub` via huggingface_hub's
PyTorchModelHubMixin, storing only what training changed or drew at random.

A saved model is three files: `config.json` (the FPT config, the backbone's name and hub revision, and the
fingerprint of its frozen weights), `model.safetensors` (the trained parameters and any frozen random new
layer: kilobytes to a few MB instead of the whole backbone) and `README.md` (the model card, fpt.model.card).
Loading checks both files (fpt.model.hub_files), fetches the backbone by name and revision, rebuilds the
model and refuses it if the backbone's fingerprint differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, PyTorchModelHubMixin, try_to_load_from_cache
from safetensors.torch import load_file, save_file

from fpt.backbones.loading import hub_offline, hub_reachable
from fpt.errors import FPTError
from fpt.model.card import base_model, model_card, portable
from fpt.model.hub_files import (
    CARD,
    CONFIG,
    FORMAT,
    WEIGHTS,
    check_weights,
    hub_error,
    read_config,
    saved_files,
)
from fpt.runs.checkpoint import check_fingerprint, copy_trained
from fpt.runs.record import enclosing_run
from fpt.yamlsafe import short


def _exportable() -> list[str]:
    from fpt.model.methods import get_method, method_names

    return [n for n in method_names() if (t := get_method(n).tuner) is not None and t.export is not None]


def backbone_revision(model) -> str | None:
    """The hub commit the backbone's files came from (None for local directories and shipped configs)."""
    if model.config.revision or Path(model.backbone_source).is_dir():
        return model.config.revision
    cached = try_to_load_from_cache(model.backbone_source, "config.json")
    return Path(cached).parent.name if isinstance(cached, str) else None


def _readable_by_all(path: Path) -> None:
    """The permissions a new file gets under the umask (safetensors writes 0600, as for a secret)."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def check_save_directory(directory: Path) -> None:
    """Refuse a save directory whose files a save would mix with or overwrite: a run directory or a place
    inside one, a file, or a directory holding other files than an earlier save's."""
    run = enclosing_run(directory / CONFIG)
    if run is not None:
        raise FPTError(
            f"save_pretrained({directory}): that is, or lies inside, the run directory {run}; save the model "
            "outside it, so the run's files stay as training left them."
        )
    if directory.exists() and not directory.is_dir():
        raise FPTError(f"save_pretrained({directory}): that is a file; give a new or empty directory.")
    if not directory.is_dir():
        return
    others = sorted(p.name for p in directory.iterdir() if p.name not in (CONFIG, WEIGHTS, CARD))
    try:
        earlier = json.loads((directory / CONFIG).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        earlier = not (directory / CONFIG).exists()
    if others or not earlier:
        held = ", ".join(others[:5]) or f"a {CONFIG} not written by save_pretrained"
        raise FPTError(
            f"save_pretrained({directory}): the directory holds other files ({held}); save into a new or empty "
            "directory, or one an earlier save_pretrained wrote, so nothing of yours is overwritten."
        )


class FPTHubMixin(PyTorchModelHubMixin):
    """The Hub methods of FrozenPretrainedTransformer (which must have `config`, `fingerprint`,
    `trained_state()`, `saved_state()`, `rebuilt()`, `freeze_report()`, `backbone_source` and optionally
    `summary`)."""

    summary: dict | None = None  # the run's summary.json when built by from_run: task and metrics for the card

    def hub_config(self) -> dict:
        """What config.json holds: enough to rebuild the model and to check its backbone."""
        from dataclasses import asdict

        from fpt import __version__

        config: Any = self.config  # type: ignore[attr-defined]
        source = self.backbone_source  # type: ignore[attr-defined]
        return {
            "format": FORMAT,
            "fpt_version": __version__,
            "model": asdict(config),
            "backbone": {
                "name": config.backbone,
                "hub_id": base_model(config, source) or (None if Path(source).is_dir() else source),
                "revision": backbone_revision(self),
            },
            # where this machine found the weights is left out: the hashes identify them anywhere
            "fingerprint": {k: v for k, v in self.fingerprint.items() if k != "source"},  # type: ignore[attr-defined]
            "trained_parameters": sum(t.numel() for t in self.trained_state().values()),  # type: ignore[attr-defined]
            "run": portable(self.summary),
        }

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> Any:
        """Write config.json, model.safetensors and README.md into `save_directory`: a new or empty directory,
        or one an earlier save_pretrained wrote (refused otherwise, before anything is written)."""
        try:
            check_save_directory(Path(save_directory))
            Path(save_directory).mkdir(parents=True, exist_ok=True)
        except OSError as err:  # below a file, a name too long, no permission
            raise FPTError(
                f"save_pretrained({save_directory}): cannot create that directory ({err.strerror or err}); give a "
                "new or empty directory in a place you can write."
            ) from err
        return super().save_pretrained(save_directory, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        tensors = {n: t.detach().float().cpu().contiguous() for n, t in self.saved_state().items()}  # type: ignore[attr-defined]
        save_file(tensors, str(save_directory / WEIGHTS), metadata={"format": FORMAT})
        _readable_by_all(save_directory / WEIGHTS)
        (save_directory / CONFIG).write_text(json.dumps(self.hub_config(), indent=2, default=str) + "\n")
        (save_directory / CARD).unlink(missing_ok=True)  # the mixin writes the card only where none exists

    def save_peft_adapter(self, directory: str | Path) -> Path:
        """Write what the method added to the backbone in PEFT's format (lora, ia3, ln-tuning: an adapter
        loadable with `peft.PeftModel.from_pretrained` on the backbone; each method's tuner says how,
        fpt.model.methods). The FPT's input and output layers are not part of it; they travel in
        `save_pretrained`'s files, which hold every trained parameter of any method."""
        policy: Any = self.policy  # type: ignore[attr-defined]
        if policy.tuner is None or policy.tuner.export is None:
            raise FPTError(
                f"Policy {policy.spec!r} trains no adapter with a PEFT format of its own; the methods with one: "
                f"{', '.join(_exportable())}. Use save_pretrained, which stores every trained parameter."
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return policy.tuner.export(self, directory)

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs) -> str:
        """Upload config.json, model.safetensors and the card (its loading example names `repo_id`).

        Without a network it fails at once with an FPTError, as it does for a refused login or repo."""
        if hub_offline() or not hub_reachable():
            why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face Hub cannot be reached"
            raise FPTError(
                f"Cannot push to {short(repo_id, 200)}: {why}. Unset HF_HUB_OFFLINE on a machine with a network, "
                "or keep the files with save_pretrained(directory) and upload them later."
            )
        try:
            return super().push_to_hub(
                repo_id, model_card_kwargs={"repo_id": repo_id, **(model_card_kwargs or {})}, **kwargs
            )
        except Exception as err:  # huggingface_hub's HTTP errors, and transport errors of its HTTP client
            raise hub_error(err, f"push to {short(repo_id, 200)}") from err

    def generate_model_card(self, *args, repo_id: str | None = None, license: str | None = None, **kwargs) -> ModelCard:
        return model_card(self, self.hub_config(), repo_id, license)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, map_location: str = "cpu", **download):
        """The model saved in a directory or hub repo (`download`: hf_hub_download's revision, cache_dir,
        force_download, token, local_files_only). Both files are checked before the backbone is rebuilt."""
        name = str(pretrained_model_name_or_path)
        unknown = sorted(set(download) - {"revision", "cache_dir", "force_download", "token", "local_files_only"})
        if unknown:
            raise FPTError(f"from_pretrained got unknown argument(s) {', '.join(unknown)}.")
        directory = saved_files(name, **download)
        config = read_config(directory, name)
        return cls._load_checked(
            model_id=name, config=config, weights=check_weights(directory, name), map_location=map_location
        )

    @classmethod
    def _load_checked(cls, model_id: str, config: dict, weights: Path, map_location: str):
        """Rebuild the model of a checked config.json and load its checked weights."""
        from fpt.model.fpt import FPTConfig  # deferred: fpt.model.fpt imports this module

        try:
            model_config = FPTConfig.from_dict({**config["model"], "revision": config["backbone"].get("revision")})
        except (TypeError, ValueError) as err:
            raise FPTError(f"{CONFIG} of {short(model_id, 200)} holds a model config fpt cannot build: {err}") from err
        model = cls.rebuilt(model_config)  # type: ignore[attr-defined]
        check_fingerprint({"fingerprint": config["fingerprint"]}, model, Path(model_id))
        copy_trained(model, load_file(weights), model_id)
        model.summary = config.get("run")
        return model.to(map_location).eval()  # type: ignore[attr-defined]
