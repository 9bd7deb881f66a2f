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
