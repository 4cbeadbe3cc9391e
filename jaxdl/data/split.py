"""What every task's loader returns for one split: a random-access source and the label names."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a task.

    `source` supports `len()` and `__getitem__(i)`, returning a record dict (the task's keys plus
    `"label"` and `"filename"`), and is picklable so grain worker processes can read it.
    `class_names` are the class names (multi-class) or attribute names (multi-label), in label
    order.
    """

    name: str
    source: object
    class_names: tuple[str, ...]
