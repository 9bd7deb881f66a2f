"""Plugins that go wrong get an FPTError naming the plugin, never a traceback or a silent change: a
task or backbone name that is taken, a module or factory that raises, a factory that returns no Task,
and a backbone registered (or named) by a path that does not exist."""

from __future__ import annotations

import sys

import pytest

import fpt
import fpt.backbones.loading
import fpt.tasks
from fpt.backbones import register_backbone
from fpt.cli import main
from fpt.errors import FPTError
from fpt.tasks import BitXOR, get_task, register_task


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by the test are undone after it."""
    for registry in ("_REGISTRY", "_RUN_DEFAULTS", "_SCHEMAS"):
        monkeypatch.setattr(fpt.tasks, registry, dict(getattr(fpt.tasks, registry)))
    monkeypatch.setattr(fpt.backbones.loading, "_REGISTERED", dict(fpt.backbones.loading._REGISTERED))


def mine(n_bits: int = 5):
    return BitXOR(n_bits)


def test_a_built_in_task_name_is_refused_unless_replaced_deliberately(registries):
    with pytest.raises(FPTError, match=r"'bit-xor' is already registered \(fpt.tasks.bits.BitXOR\).*replace=True"):
        register_task("bit-xor", mine)
    assert fpt.tasks._REGISTRY["bit-xor"] is BitXOR
    register_task("mine", mine)
    register_task("mine", mine)  # the same factory again (a module imported twice) is fine
    with pytest.raises(FPTError, match="already registered"):
        register_task("mine", lambda: BitXOR())
    register_task("bit-xor", mine, replace=True)
    assert fpt.tasks._REGISTRY["bit-xor"] is mine


def test_a_built_in_backbone_name_is_refused_unless_replaced_deliberately(registries, tiny_gpt2):
    with pytest.raises(FPTError, match="'minilm' is already taken .one of fpt's own.*replace=True"):
        register_backbone("minilm", tiny_gpt2)
    register_backbone("mine", tiny_gpt2)
    register_backbone("mine", tiny_gpt2)
    with pytest.raises(FPTError, match="already taken"):
        register_backbone("mine", "org/other")
    register_backbone("minilm", tiny_gpt2, replace=True)
    assert fpt.register_backbone is register_backbone  # importable from fpt, as the README says


@pytest.mark.parametrize(
    ("returned", "said"), [(42, "returned 42 .type int."), (object.__new__(BitXOR), "returned a Task with no spec")]
)
def test_a_factory_that_returns_no_task_is_named(registries, returned, said):
    def factory():
        return returned

    register_task("odd", factory)
    with pytest.raises(FPTError, match=f"Task 'odd': its factory .*factory {said}"):
        get_task("odd")


def test_a_factory_that_raises_is_named_with_where_it_raised(registries):
    def broken():
        raise ValueError("my factory broke")

    register_task("broken", broken)
    with pytest.raises(FPTError, match=r"raised ValueError: my factory broke \(.*test_plugin_refusals.py, line \d+\)"):
        get_task("broken")


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ("raise RuntimeError('plugin broke at import')", "failed to import: RuntimeError: plugin broke at import"),
        ("import no_such_dependency_here", "failed to import: ModuleNotFoundError.*Install what it needs"),
        ("def broken(:\n    pass", "failed to import: SyntaxError"),
        ("from fpt import register_task\nregister_task('bit-xor', lambda: 1)", "'bit-xor' is already registered"),
    ],
)
def test_a_module_that_fails_at_import_is_named_without_a_traceback(
    registries, code, said, tmp_path, monkeypatch, capsys
):
    (tmp_path / "broken_plugin.py").write_text(code + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "broken_plugin", raising=False)
    assert main(["list", "tasks", "--import", "broken_plugin"]) == 2
    err = capsys.readouterr().err
    assert "Module 'broken_plugin'" in err and "Traceback" not in err
    assert __import__("re").search(said, err), err


@pytest.mark.parametrize(
    ("backbone", "said"),
    [("/nonexistent/model", "no such path: /nonexistent/model does not exist"), ("/proc/version", "is a file")],
)
def test_a_backbone_path_that_does_not_exist_says_so_not_hub_unreachable(registries, backbone, said, capsys):
    register_backbone("mine", backbone)
    for name in ("mine", backbone):
        assert main(["describe", "--backbone", name]) == 2
        err = capsys.readouterr().err
        assert said in err and "cannot be reached" not in err, err
