"""fpt: Frozen Pretrained Transformers (Lu et al., 2021) on any Hugging Face backbone.

The public names are imported on first use (PEP 562), so `import fpt` and the commands that need
no model (`fpt --help`, `fpt data list`) start without loading torch and transformers.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from fpt.errors import FPTError  # plain Python: cheap to import eagerly
from fpt.lazy import lazy_attributes

try:  # pyproject.toml holds the version, once; the installed metadata carries it here
    __version__ = version("frozen-pretrained-transformers")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

# public name -> module that defines it
_LAZY = {
    "FPTConfig": "fpt.model",
    "FreezePolicy": "fpt.model",
    "FrozenPretrainedTransformer": "fpt.model",
    "Task": "fpt.tasks",
    "TensorTask": "fpt.tasks",
    "get_task": "fpt.tasks",
    "register_task": "fpt.tasks",
    "register_backbone": "fpt.backbones",
    "register_backbone_adapter": "fpt.backbones",
    "register_method": "fpt.model.methods",
    "RunConfig": "fpt.training",
    "evaluate": "fpt.training",
    "train": "fpt.training",
}

if TYPE_CHECKING:
    from fpt.backbones import register_backbone, register_backbone_adapter
    from fpt.model import FPTConfig, FreezePolicy, FrozenPretrainedTransformer
    from fpt.model.methods import register_method
    from fpt.tasks import Task, TensorTask, get_task, register_task
    from fpt.training import RunConfig, evaluate, train


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "FPTConfig",
    "FPTError",
    "FreezePolicy",
    "FrozenPretrainedTransformer",
    "RunConfig",
    "Task",
    "TensorTask",
    "evaluate",
    "get_task",
    "register_backbone",
    "register_backbone_adapter",
    "register_method",
    "register_task",
    "train",
]
