"""Start-up: `import fpt`, `fpt --help` and `fpt data list` load neither torch nor transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fpt

HEAVY = ("torch", "transformers", "accelerate")


def _modules_after(code: str) -> set[str]:
    """The heavy modules loaded by running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m in {HEAVY!r})))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_fpt_is_lazy():
    assert _modules_after("import fpt; fpt.FPTError; fpt.__version__") == set()


def test_public_names_still_import():
    assert _modules_after("from fpt import RunConfig, train, TensorTask") >= {"torch"}
    assert fpt.FrozenPretrainedTransformer.__name__ == "FrozenPretrainedTransformer"
    assert set(fpt.__all__) == {"FPTError", *fpt._LAZY} and set(fpt.__all__) <= set(dir(fpt))


def test_help_version_and_data_list_need_no_model():
    for argv in (["--help"], ["train", "--help"], ["data", "list"]):
        code = f"import sys\nfrom fpt.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
        assert _modules_after(code) == set(), argv


def test_version_flag(capsys):
    from fpt.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"fpt {fpt.__version__}"
