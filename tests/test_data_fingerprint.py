"""Generated datasets are fingerprinted into the run: `--resume` and `fpt eval` refuse a copy written
again with other settings (same file names, same shapes: nothing else would notice), saying what
changed and the command that writes the run's copy back."""

from __future__ import annotations

import logging

import pytest
import yaml

from fpt import RunConfig, train
from fpt.cli import main
from fpt.data import generate
from fpt.errors import FPTError
from fpt.training import resume_config

SMALL = dict(train=40, val=10, test=10, min_length=20, max_length=100, max_depth=4)


@pytest.fixture
def listops_run(tmp_path, quiet_gpt2):
    """A 4-step ListOps run (checkpoints at steps 2 and 4) on a generated copy under tmp_path/data."""
    generate("listops", tmp_path / "data", seed=0, **SMALL)
    out = tmp_path / "run"
    config = RunConfig(
        task="listops",
        task_options={"max_length": 128},
        data_dir=str(tmp_path / "data"),
        backbone=quiet_gpt2,
        steps=4,
        eval_every=2,
        batch_size=4,
        out=str(out),
    )
    summary = train(config, progress=False, log=lambda *a: None)
    return out, summary


def test_the_run_records_the_files_and_the_generation_settings(listops_run):
    out, summary = listops_run
    recorded = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert recorded["generated"]["seed"] == 0 and recorded["generated"]["train"] == 40
    assert len(recorded["sha256"]) == 64 and summary["data"] == recorded


REGENERATED = [  # `fpt data generate listops --force` again with (changed settings, what the refusal says)
    ({"seed": 1}, "seed 1; the run's with seed 0"),
    ({"max_length": 90}, "max_length 90; the run's with max_length 100"),
    (
        {"min_length": 30, "max_length": 90},
        "min_length 30, max_length 90; the run's with min_length 20, max_length 100",
    ),
    ({"seed": 1, "max_length": 90}, "seed 1, max_length 90; the run's with seed 0, max_length 100"),
]


@pytest.mark.parametrize(("changed", "said"), REGENERATED)
def test_resume_on_a_copy_generated_otherwise_is_refused_saying_what_changed(listops_run, tmp_path, changed, said):
    out, _ = listops_run
    generate("listops", tmp_path / "data", force=True, **{"seed": 0, **SMALL, **changed})
    before = {name: (out / name).read_text() for name in ("metrics.jsonl", "summary.json", "config.yaml")}
    with pytest.raises(FPTError, match=said) as err:
        train(resume_config(out, steps=6), progress=False, log=lambda *a: None, resume=True)
    assert "--seed 0 --train 40 --val 10 --test 10 --min-length 20 --max-length 100" in str(err.value)
    assert {name: (out / name).read_text() for name in before} == before  # nothing written, the data record kept
    # the command it names writes the same files back, and the run goes on
    generate("listops", tmp_path / "data", seed=0, force=True, **SMALL)
    assert train(resume_config(out, steps=6), progress=False, log=lambda *a: None, resume=True)["steps"] == 6


@pytest.mark.parametrize(("changed", "said"), REGENERATED[:3])
def test_eval_on_a_copy_generated_otherwise_is_refused(listops_run, tmp_path, capsys, changed, said):
    out, _ = listops_run
    assert main(["eval", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    generate("listops", tmp_path / "data", force=True, **{"seed": 0, **SMALL, **changed})
    assert main(["eval", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Cannot evaluate" in err and said in err and "--force" in err
    # the CLI's own regeneration (`fpt data generate ... --force` with other flags) is refused the same way
    flags = _flags({"seed": 0, **SMALL, **{k: v + 1 for k, v in changed.items()}})
    assert main(["data", "generate", "listops", "--data-dir", str(tmp_path / "data"), "--force", *flags]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--device", "cpu"]) == 2
    assert "Cannot evaluate" in capsys.readouterr().err


def test_a_run_from_before_fingerprints_is_evaluated_with_a_warning(listops_run, caplog, capsys):
    out, _ = listops_run
    values = yaml.safe_load((out / "config.yaml").read_text())
    del values["data"]
    (out / "config.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    with caplog.at_level(logging.WARNING, logger="fpt"):
        assert main(["eval", str(out), "--device", "cpu"]) == 0
    assert "recorded no fingerprint of its listops data" in caplog.text


def test_generating_listops_prints_no_note_about_the_release_archive(tmp_path, capsys):
    assert main(["data", "generate", "listops", "--data-dir", str(tmp_path), "--seed", "0"] + _flags(SMALL)) == 0
    out = capsys.readouterr().out
    assert "listops: OK" in out and "lra_release" not in out


def _flags(settings: dict) -> list[str]:
    return [part for k, v in settings.items() for part in (f"--{k.replace('_', '-')}", str(v))]
