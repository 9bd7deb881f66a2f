"""fpt: Frozen Pretrained Transformers (Lu et al., 2021) on any Hugging Face backbone."""

from fpt.errors import FPTError
from fpt.model import FPTConfig, FreezePolicy, FrozenPretrainedTransformer
from fpt.tasks import Task, TensorTask, get_task, register_task
from fpt.training import RunConfig, evaluate, train

__version__ = "0.1.0"
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
    "register_task",
    "train",
]
