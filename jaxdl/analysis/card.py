"""D1–D3: the dataset card (origin, raw format, task, shapes, classes) and how splits are made."""

import ml_collections

from jaxdl.tasks.spec import Task


def _source(config: ml_collections.ConfigDict) -> str:
    if config.data.source == "synthetic":
        return (
            f"generated stand-in in the official layout (data.source=synthetic, "
            f"{config.data.synthetic.to_dict()})"
        )
    if config.data.dir:
        return f"local folder (data.dir={config.data.dir})"
    return f"official archive {config.data.get('url', '')}, downloaded into the cache"


def dataset_card(
    config: ml_collections.ConfigDict, task: Task, class_names: tuple[str, ...], data_dir: str
) -> dict:
    """The card's fields; `class_names` come from the data, `task.num_classes` is the real count."""
    info = task.card
    multilabel = task.objective_kind == "multilabel"
    return {
        "dataset": info.name,
        "homepage": info.homepage,
        "raw_format": info.raw_format,
        "source": _source(config),
        "data_dir": data_dir,
        "task_type": task.objective_kind,
        "objective": "sigmoid binary cross-entropy per attribute"
        if multilabel
        else "softmax cross-entropy",
        "num_classes": len(class_names),
        "real_num_classes": task.num_classes,
        "class_names": list(class_names),
        "input_shape": list(task.input_shape(config)),
        "split_protocol": task.split_protocol(config),
    }
