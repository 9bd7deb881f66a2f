"""Bad input anywhere ends in one clear FPTError: backbones with refused weight files, and more."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from fpt import FPTError
from fpt.backbones.loading import load_backbone


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def test_local_backbone_with_a_code_running_pickle_names_the_file(tmp_path, tiny_gpt2):
    folder = tmp_path / "backbone"
    folder.mkdir()
    (folder / "config.json").write_bytes((Path(tiny_gpt2) / "config.json").read_bytes())
    torch.save({"h.0.attn.c_attn.weight": _RunsCode()}, folder / "pytorch_model.bin")
    with pytest.raises(FPTError, match=r"pytorch_model.bin was refused.*safetensors") as err:
        load_backbone(str(folder))
    assert not isinstance(err.value.__cause__, FPTError) and isinstance(err.value.__cause__, pickle.UnpicklingError)


def test_npy_header_announcing_more_than_the_file_holds_is_refused_unread(tmp_path):
    import io

    import numpy as np

    from fpt.predict import read_inputs

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 10, 1)})
    (tmp_path / "huge.npy").write_bytes(header.getvalue() + b"\0" * 64)
    with pytest.raises(FPTError, match="Cannot read"):
        read_inputs(tmp_path / "huge.npy")


def test_config_key_typos_name_the_key_meant(tmp_path):
    from fpt.cli import main
    from fpt.training import RunConfig

    with pytest.raises(FPTError, match=r"Unknown key\(s\) in run.yaml: 'batch_sise' \(did you mean 'batch_size'\?\)"):
        RunConfig.from_dict({"batch_sise": 8, "lr": 1e-3}, source="run.yaml")
    with pytest.raises(FPTError, match=r"'zzz_qqq'\. Known keys"):  # nothing close: no guess
        RunConfig.from_dict({"zzz_qqq": 1})
    (tmp_path / "run.yaml").write_text("task: bit-xor\nevel_every: 5\n")
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--steps", "1"]) == 2  # before anything is built
    from fpt.experiments.sweep import expand

    with pytest.raises(FPTError, match=r"unknown grid key\(s\) 'seed' \(did you mean 'seeds'\?\)"):
        expand({"tasks": ["bit-xor"], "lrs": [1e-3], "seed": [0]})


def test_loading_a_backbone_draws_no_carriage_return_bar(tiny_gpt2, capfd):
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()  # as in a fresh Python session (fpt's CLI turns it off)
    load_backbone(tiny_gpt2)
    assert "\r" not in capfd.readouterr().err
    assert transformers_logging.is_progress_bar_enabled()  # the user's setting is left as it was
