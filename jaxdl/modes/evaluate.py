"""`--mode=evaluate` (M9): restore a run's best checkpoint and score one split.

Outputs: metrics (JSON line, `test/*` TensorBoard scalars), a confusion-matrix PNG, a per-class
CSV and a per-example `predictions.csv`. Only the evaluated split is read, so a dataset folder that
holds just the test fold is enough. Model and features come from the checkpoint's own config.
"""

import pathlib

import ml_collections
import numpy as np

from jaxdl.data import pipeline
from jaxdl.data.tasks import task_data
from jaxdl.errors import CheckpointError, DataError
from jaxdl.training import checkpoint, components, loop, metrics
from jaxdl.utils import files, plots
from jaxdl.utils.logging import RunLogger

# Sections of a checkpoint's config that define the model and its inputs; they override the
# command line so a checkpoint is always evaluated on what it was trained on.
_FROM_CHECKPOINT = ("model", "features")


def evaluation_config(config: ml_collections.ConfigDict, saved: dict) -> ml_collections.ConfigDict:
    if saved.get("task") != config.task:
        raise CheckpointError(f"the checkpoint was trained for task {saved.get('task')!r}, "
                              f"but the config is for task {config.task!r}")
    merged = ml_collections.ConfigDict(config.to_dict())
    for section in _FROM_CHECKPOINT:
        if section in saved:
            merged[section] = ml_collections.ConfigDict(saved[section])
    return merged


def _prediction_rows(split, probabilities: np.ndarray, names: tuple[str, ...]) -> list[dict]:
    predicted = probabilities.argmax(axis=-1)
    return [
        {"filename": split.source[i]["filename"], "true_label": names[split.source[i]["label"]],
         "predicted_label": names[predicted[i]], "probability": f"{probabilities[i, predicted[i]]:.6f}"}
        for i in range(len(probabilities))
    ]


def evaluate_checkpoint(config: ml_collections.ConfigDict, checkpoint_dir: str | pathlib.Path,
                        split: str, out_dir: pathlib.Path) -> dict:
    """Scores the best checkpoint of `checkpoint_dir` on `split`; writes outputs into `out_dir`."""
    checkpoints, step, meta = checkpoint.open_for_evaluation(checkpoint_dir)
    with checkpoints:
        config = evaluation_config(config, meta["config"])
        names = tuple(meta["class_names"])
        data = task_data(config).load_split(config, split)
        if tuple(data.class_names) != names:
            raise DataError(f"the {split} split's classes {list(data.class_names)[:5]}… differ from "
                            f"the checkpoint's {list(names)[:5]}… ({len(data.class_names)} vs "
                            f"{len(names)} classes)")
        parts = components.build(config, names)
        state = checkpoints.restore_state(step, parts.state)
    batch_size = config.train.eval_batch_size or config.train.batch_size
    sums, probabilities = loop.predict(
        parts.steps.predict, state,
        pipeline.eval_batches(data.source, parts.task, config, batch_size), parts.mesh)
    results = parts.objective.summary(sums)
    confusion = sums["confusion"]

    out_dir.mkdir(parents=True, exist_ok=True)
    files.write_csv_atomic(out_dir / "predictions.csv", _prediction_rows(data, probabilities, names),
                           ["filename", "true_label", "predicted_label", "probability"])
    files.write_csv_atomic(out_dir / "per_class.csv", metrics.per_class_report(confusion, names),
                           ["class", "support", "precision", "recall", "f1"])
    plots.plot_confusion_matrix(confusion, names, out_dir / f"confusion_matrix_{split}.png")
    with RunLogger(out_dir, config.to_dict()) as logger:
        logger.scalars(int(meta.get("epoch", step)), {f"{split}/{k}": v for k, v in results.items()})
    return {"split": split, "checkpoint": str(checkpoints.directory), "epoch": meta.get("epoch", step),
            "examples": len(probabilities), **results, "outputs": str(out_dir)}
