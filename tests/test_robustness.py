"""Property tests: malformed configs, wrong arrays, NaN/inf inputs, and truncated or random-byte
checkpoint and data files always end in an FPTError, never another exception, and never change a
run directory."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fpt import FPTError, FrozenPretrainedTransformer, RunConfig, train
from fpt.predict import predict, read_inputs
from fpt.runs.checkpoint import MANIFEST, MODEL_FILE, STATE_FILE, load_trained, read_training_state, resolve
from fpt.runs.record import read_run_record, read_summary
from fpt.training.config import DERIVED

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELDS = list(RunConfig().to_dict())  # flat keys, as files and flags name them (model keys included)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_gpt2):
    out = tmp_path_factory.mktemp("robust") / "run"
    train(
        RunConfig(
            backbone=tiny_gpt2,
            task_options={"val_size": 8, "test_size": 8},
            steps=2,
            eval_every=1,
            batch_size=4,
            out=str(out),
        ),
        progress=False,
        log=lambda *a: None,
    )
    return out


@pytest.fixture(scope="module")
def model(run):
    return FrozenPretrainedTransformer.from_run(run)


def _snapshot(path: Path) -> dict:
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@SETTINGS
@given(st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), VALUES, max_size=5))
def test_malformed_configs_are_fpt_errors(values):
    try:
        config = RunConfig.from_dict(values)
    except FPTError:
        return
    assert isinstance(config.steps, int) and config.batch_size % config.grad_accum == 0


def _yaml(data: bytes):
    """What PyYAML makes of `data`, or None where it cannot parse it."""
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


@SETTINGS
@given(st.binary(max_size=300))
@example(b"")  # no settings: the defaults
@example(b"seed: 3\nsteps: 7\n")  # a valid config
@example(b"seed: [1\n")  # broken YAML
@example(b"\xff\xfe")  # not text
@example(b"- 1\n")  # a list, not a mapping
@example(b"task: bit-xor\nmodel: {}\n")  # a run record's shape
def test_random_config_files_are_refused_or_read_as_written(tmp_path_factory, data):
    """Random bytes as config.yaml are refused with an FPTError, or read as exactly what they say."""
    path = tmp_path_factory.mktemp("yaml") / "config.yaml"
    path.write_bytes(data)
    parsed = _yaml(data)
    try:
        config = RunConfig.from_yaml(path)
    except FPTError:
        pass
    else:  # a mapping of known settings (or nothing): those settings, defaults for the rest
        assert isinstance(parsed or {}, dict)
        given_values = {k: v for k, v in (parsed or {}).items() if k not in (*DERIVED, "model")}
        section = (parsed or {}).get("model")
        if isinstance(section, dict) and "input_dim" not in section:  # model keys given as a section
            given_values.update(section)
        assert set(given_values) <= set(FIELDS)
        read = config.to_dict()
        assert all(read[k] == v for k, v in given_values.items())
        assert all(read[k] == v for k, v in RunConfig().to_dict().items() if k not in given_values)
    if isinstance(parsed, dict) and "task" in parsed and isinstance(parsed.get("model"), dict):
        record = read_run_record(path.parent)
        assert record.model == parsed["model"] and record.config["task"] == parsed["task"]
    else:  # not what `fpt train` writes
        with pytest.raises(FPTError):
            read_run_record(path.parent)


ARRAYS = hnp.arrays(
    dtype=st.one_of(
        hnp.floating_dtypes(),
        hnp.integer_dtypes(),
        hnp.boolean_dtypes(),
        hnp.complex_number_dtypes(),
        hnp.unicode_string_dtypes(max_len=2),
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
)


@SETTINGS
@given(
    ARRAYS,
    st.one_of(
        st.none(),
        hnp.arrays(
            st.sampled_from([np.bool_, np.int8, np.float32]), hnp.array_shapes(min_dims=1, max_dims=3, max_side=12)
        ),
    ),
)
def test_any_array_is_predicted_or_refused_clearly(model, inputs, mask):
    try:
        result = predict(model, inputs, mask)
    except FPTError:
        return
    assert result["classes"].shape == (inputs.shape[0], 5)  # accepted: a well-formed prediction
    assert np.isfinite(result["probabilities"]).all()


def _numpy_file(data: bytes, suffix: str):
    """What NumPy itself reads from `data` (the array, or an npz's `inputs`), or None where it cannot."""
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        return loaded["inputs"] if suffix == ".npz" else loaded
    except Exception:
        return None


@SETTINGS
@given(st.sampled_from([".npy", ".npz"]), st.one_of(st.binary(max_size=400), st.integers(0, 10_000)))
@example(".npy", 10_000)  # whole: read back
@example(".npz", 10_000)
@example(".npy", 100)  # cut inside the data
@example(".npz", 300)
def test_random_or_truncated_data_files_are_refused_and_whole_ones_read(tmp_path_factory, suffix, content):
    """A file cut short, or random bytes, is an FPTError; only a whole NumPy file is read, as NumPy reads it."""
    path = tmp_path_factory.mktemp("data") / f"x{suffix}"
    if isinstance(content, int):  # a valid file cut short at `content` bytes
        (np.save if suffix == ".npy" else lambda p, a: np.savez(p, inputs=a))(path, np.ones((4, 10, 1), np.float32))
        path.write_bytes(path.read_bytes()[:content])
    else:
        path.write_bytes(content)
    expected = _numpy_file(path.read_bytes(), suffix)
    if expected is None:
        with pytest.raises(FPTError):
            read_inputs(path)
    else:
        inputs, mask = read_inputs(path)
        assert np.array_equal(inputs, expected) and mask is None
        if isinstance(content, int):
            assert np.array_equal(inputs, np.ones((4, 10, 1), np.float32))  # only the whole file reads


@SETTINGS
@given(
    which=st.sampled_from(["best", "last"]),
    name=st.sampled_from([MODEL_FILE, STATE_FILE, MANIFEST, "summary.json"]),
    cut=st.floats(0, 0.9),
    noise=st.one_of(st.none(), st.binary(min_size=1, max_size=200)),
)
def test_damaged_checkpoints_are_refused_without_changing_the_run(
    tmp_path_factory, run, model, which, name, cut, noise
):
    copy = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(run, copy)
    target = copy / "summary.json" if name == "summary.json" else resolve(copy, which) / name
    if not target.exists():
        return  # `best` holds no optimizer state
    data = target.read_bytes()
    target.write_bytes(noise if noise is not None else data[: int(len(data) * cut)])
    before = _snapshot(copy)
    if name == "summary.json":  # not hashed: damage is caught unless the bytes happen to form a JSON object
        try:
            assert isinstance(read_summary(copy), dict)
        except FPTError:
            pass
    else:
        with pytest.raises(FPTError):
            read_training_state(resolve(copy, which)) if name == STATE_FILE else load_trained(model, copy, which)
    assert _snapshot(copy) == before


def test_resume_from_a_damaged_checkpoint_changes_nothing(tmp_path, run):
    from fpt.training import resume_config

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "summary.json").unlink()  # as after a crash
    state = resolve(copy, "last") / STATE_FILE
    state.write_bytes(state.read_bytes()[:-10])
    before = _snapshot(copy)
    with pytest.raises(FPTError, match="state.pt does not match the hash"):
        train(resume_config(copy), resume=True, progress=False, log=lambda *a: None)
    assert _snapshot(copy) == before
