"""What every first-party task shares: the test fraction and the baselines' prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from steerkit import Dataset
from steerkit.checks import integer
from steerkit_datasets._split import check_test_size
from steerkit_datasets.prompts import TaskPrompts

__all__ = ["TaskDataset"]


class TaskDataset(Dataset):
    """A binary task (label 1 = the positive class) with its prompts.

    test_size: the fraction of each class held out for the test split (default 0.2).
    """

    prompts: ClassVar[TaskPrompts]

    def __init__(self, *, test_size: float = 0.2) -> None:
        self.test_size = check_test_size(type(self).__name__, test_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(test_size={self.test_size!r})"

    def contrastive_pairs(self) -> Sequence[tuple[str, str]]:
        """(negative, positive) prompt pairs written for this task."""
        return self.prompts.pairs

    def persona_prefixes(self) -> tuple[str, str]:
        """(negative, positive) persona prefixes."""
        return self.prompts.personas

    def neutral_queries(self) -> Sequence[str]:
        """Prompts with no class of their own."""
        return self.prompts.neutral

    def _check_seed(self, seed: Any) -> int:
        return integer(
            type(self).__name__, "seed", seed, minimum=0, expected="a non-negative integer"
        )
