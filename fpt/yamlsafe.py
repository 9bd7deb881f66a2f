"""The one YAML reader for config files, grids, run directories and `--task-option` values.

Safe (plain data, no tags), YAML 1.2 numbers (`lr: 1e-3` is a float; PyYAML's YAML 1.1 rules
read it as a string), and bounded: files over `MAX_BYTES` and documents whose aliases would
expand to more than `MAX_EXPANDED_NODES` nodes (a few hundred bytes can otherwise expand to
gigabytes, "billion laughs") are refused before anything is built. Every failure is an `FPTError`.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from fpt.errors import FPTError
from fpt.files import not_a_file

MAX_BYTES = 1 << 20  # config files and grids are a few kB
MAX_EXPANDED_NODES = 100_000


class DuplicateKey(yaml.YAMLError):
    """A mapping names one key twice; YAML would keep the last silently."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats, a bound on alias expansion and no duplicate keys."""

    def compose_document(self):
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node, deep=False):
        """Refuse a key given twice in one mapping (a merge `<<: *base` may still be overridden)."""
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKey(
                            f"key {short(repr(key), 80)} is given twice ({_lines(seen[key], line)}); YAML would "
                            "keep only the last value silently. Remove one of them."
                        )
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader refuses it itself
                    continue
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(  # YAML 1.2 floats without a dot: 1e-3, -2E+5
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|^[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _lines(first: int, second: int) -> str:
    return f"line {first}" if first == second else f"lines {first} and {second}"


def _check_expansion(root) -> None:
    """Refuse a document whose nodes, with every alias expanded, number more than MAX_EXPANDED_NODES."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes and sizes[id(node)] >= 0:
            continue
        children = (
            [c for pair in node.value for c in pair]
            if isinstance(node, yaml.MappingNode)
            else (node.value if isinstance(node, yaml.SequenceNode) else [])
        )
        if not children_done:
            if sizes.get(id(node)) == -1:
                raise FPTError("The YAML document refers to itself through an alias; write the values out instead.")
            sizes[id(node)] = -1  # in progress
            stack.append((node, True))
            stack.extend((c, False) for c in children if sizes.get(id(c), -1) < 0)
            continue
        sizes[id(node)] = 1 + sum(sizes.get(id(c), 1) for c in children)
        if sizes[id(node)] > MAX_EXPANDED_NODES:
            raise FPTError(
                f"The YAML document expands to more than {MAX_EXPANDED_NODES} values through its aliases (&/*); "
                "write the values out instead."
            )


def load(data: str | bytes, what: str) -> object:
    """The value of one YAML document; `what` names it in errors (e.g. "Config file runs/c.yaml")."""
    if len(data) > MAX_BYTES:
        raise FPTError(f"{what} is {len(data)} bytes; YAML inputs are limited to {MAX_BYTES} bytes.")
    try:
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKey as err:
        raise FPTError(f"{what}: {err}") from err
    except yaml.YAMLError as err:
        raise FPTError(f"{what} is not valid YAML: {short(str(err), 300)}") from err
    except RecursionError as err:
        raise FPTError(f"{what} is nested too deeply to read.") from err


def read_yaml_mapping(path: str | Path, what: str, holds: str) -> dict:
    """A YAML file that must hold a mapping; every way it can fail is an FPTError naming `what`."""
    path = Path(path)
    if not_a_file(path):
        raise FPTError(f"{what} {path} is {not_a_file(path)}, not a file.")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise FPTError(f"{what} {path} is {path.stat().st_size} bytes; YAML files are limited to {MAX_BYTES}.")
        data = path.read_bytes()  # bytes: undecodable files raise a YAMLError too
    except FileNotFoundError as err:
        raise FPTError(f"{what} {path} does not exist.") from err
    except OSError as err:
        raise FPTError(f"{what} {path} cannot be read ({err.strerror or err}).") from err
    values = load(data, f"{what} {path}") or {}
    if not isinstance(values, dict):
        raise FPTError(f"{what} {path} must hold a mapping of {holds}, not {type(values).__name__}.")
    return values


def short(text: object, limit: int = 200) -> str:
    """`text` (or a value's repr) cut to `limit` characters, for quoting bad input in an error."""
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"
