"""A checkpoint scored on one split, and the evaluation outputs written from the scores.

Outputs: `scores.json` (split, checkpoint, epoch, examples and every metric), the same metrics as
`<split>/*` TensorBoard scalars and one `metrics.jsonl` line, and a per-example `predictions.csv`;
for multi-class tasks a confusion-matrix PNG and a per-class CSV, for multi-label tasks a
per-attribute CSV. Only the evaluated split is read, so a dataset folder that holds just the test
fold is enough. Model and features come from the checkpoint's own config.

Metric keys have one style everywhere (TensorBoard tags, `metrics.jsonl`, `scores.json` and every
mode's JSON line): `<split>/<metric>`, per attribute `<split>/<metric>/<attribute>`
(`test/accuracy`, `test/f1/Smiling`).
"""

import dataclasses
import pathlib

import ml_collections
import numpy as np

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.data.split import Split
from jaxdl.errors import CheckpointError, DataError
from jaxdl.training import checkpoint, group, loop, metrics
from jaxdl.utils import files, plots
from jaxdl.utils.logging import RunLogger

# Sections of a checkpoint's config that define the model and its inputs; they override the
# command line so a checkpoint is always evaluated on what it was trained on.
_FROM_CHECKPOINT = ("model", "features")
# train keys that shape the optimizer state stored in the checkpoint (restored whole).
_OPTIMIZER_LAYOUT = ("optimizer", "schedule", "warmup_steps")
SCORES_FILE = "scores.json"  # written last: an evaluation folder holding it is complete
# --mode=evaluate's outputs go to logs/<EVALUATIONS_DIR>/<run>_<split>/: apart from the runs, so
# no glob of run names (compare's --runs) matches an evaluation.
EVALUATIONS_DIR = "evaluate"


def evaluation_config(config: ml_collections.ConfigDict, saved: dict) -> ml_collections.ConfigDict:
    """`config` with the model and features of `saved` (the checkpoint's config), same task."""
    if saved.get("task") != config.task:
        raise CheckpointError(
            f"the checkpoint was trained for task {saved.get('task')!r}, "
            f"but the config is for task {config.task!r}"
        )
    merged = ml_collections.ConfigDict(config.to_dict())
    for section in _FROM_CHECKPOINT:
        if section in saved:
            merged[section] = ml_collections.ConfigDict(saved[section])
    for key in _OPTIMIZER_LAYOUT:
        if key in saved.get("train", {}):
            merged.train[key] = saved["train"][key]
    return merged


def _multiclass_outputs(
    split, probabilities: np.ndarray, sums: dict, names: tuple[str, ...], out_dir: pathlib.Path
) -> None:
    """predictions.csv (file, true, predicted, top probability), per_class.csv, confusion PNG."""
    predicted = probabilities.argmax(axis=-1)
    rows = [
        {
            "filename": split.source[i]["filename"],
            "true_label": names[split.source[i]["label"]],
            "predicted_label": names[predicted[i]],
            "probability": f"{probabilities[i, predicted[i]]:.6f}",
        }
        for i in range(len(probabilities))
    ]
    files.write_csv_atomic(
        out_dir / "predictions.csv",
        rows,
        ["filename", "true_label", "predicted_label", "probability"],
    )
    files.write_csv_atomic(
        out_dir / "per_class.csv",
        metrics.per_class_report(sums["confusion"], names),
        ["class", "support", "precision", "recall", "f1"],
    )
    plots.plot_confusion_matrix(
        sums["confusion"], names, out_dir / f"confusion_matrix_{split.name}.png"
    )


def _multilabel_outputs(
    split,
    probabilities: np.ndarray,
    sums: dict,
    results: dict,
    names: tuple[str, ...],
    out_dir: pathlib.Path,
) -> None:
    """predictions.csv (file, per attribute: target and probability), per_attribute.csv."""
    rows = []
    for i in range(len(probabilities)):
        row = {"filename": split.source[i]["filename"]}
        targets = split.source[i]["label"]
        for j, name in enumerate(names):
            row[f"{name}_true"] = int(targets[j])
            row[f"{name}_probability"] = f"{probabilities[i, j]:.6f}"
        rows.append(row)
    columns = ["filename"] + [f"{n}_{kind}" for n in names for kind in ("true", "probability")]
    files.write_csv_atomic(out_dir / "predictions.csv", rows, columns)
    kinds = ("accuracy", "precision", "recall", "f1")
    per_attribute = [
        {
            "attribute": name,
            "positives": int(sums["tp"][j] + sums["fn"][j]),
            **{m: results[f"{m}/{name}"] for m in kinds},
        }
        for j, name in enumerate(names)
    ]
    files.write_csv_atomic(
        out_dir / "per_attribute.csv",
        per_attribute,
        ["attribute", "positives", "accuracy", "precision", "recall", "f1"],
    )


@dataclasses.dataclass(frozen=True)
class Scores:
    """One split scored by one checkpoint, before anything is written."""

    config: ml_collections.ConfigDict
    checkpoint: pathlib.Path
    epoch: int
    split: Split
    names: tuple[str, ...]
    kind: str  # the objective's: multiclass | multilabel
    sums: dict
    probabilities: np.ndarray
    results: dict


def score_checkpoint(
    config: ml_collections.ConfigDict,
    checkpoint_dir: str | pathlib.Path,
    split: str,
    model: group.Group | None = None,
) -> Scores:
    """Scores the best checkpoint of `checkpoint_dir` on `split` (writes nothing).

    `model`: a group of one of the checkpoint's architecture to restore into and predict with
    (`train` passes its own, compiled already); else one is built from the checkpoint's config.
    """
    checkpoints, step, meta = checkpoint.open_for_evaluation(checkpoint_dir)
    with checkpoints:
        config = evaluation_config(config, meta["config"])
        names = tuple(meta["class_names"])
        data = tasks.get(config).load_split(config, split)
        if tuple(data.class_names) != names:
            raise DataError(
                f"the {split} split's classes {list(data.class_names)[:5]}… differ "
                f"from the checkpoint's {list(names)[:5]}… ({len(data.class_names)} vs "
                f"{len(names)} classes)"
            )
        model = model or group.build([config], names)
        state = checkpoints.restore_state(step, model.state)
    batch_size = config.train.eval_batch_size or config.train.batch_size
    sums, probabilities = loop.predict(
        model.steps.predict,
        state,
        model.zero_sums(train=False)[0],  # a group of one, sequential: a tuple of one
        pipeline.eval_batches(data.source, model.task, config, batch_size),
        model.mesh,
    )
    return Scores(
        config,
        checkpoints.directory,
        int(meta.get("epoch", step)),
        data,
        names,
        model.objective.kind,
        sums,
        probabilities,
        model.objective.summary(sums),
    )


def split_metrics(split: str, results: dict) -> dict:
    """`results` ({"accuracy": …, "f1/Smiling": …}) keyed as everywhere: `<split>/<metric>`."""
    return {f"{split}/{key}": value for key, value in results.items()}


def write_outputs(scores: Scores, out_dir: pathlib.Path) -> dict:
    """Writes the outputs of `scores` into `out_dir`; returns what `scores.json` holds (split,
    checkpoint, epoch, examples, `<split>/<metric>` values) and `outputs`, the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if scores.kind == "multiclass":
        _multiclass_outputs(scores.split, scores.probabilities, scores.sums, scores.names, out_dir)
    else:
        _multilabel_outputs(
            scores.split, scores.probabilities, scores.sums, scores.results, scores.names, out_dir
        )
    split = scores.split.name
    values = split_metrics(split, scores.results)
    with RunLogger(out_dir, scores.config.to_dict()) as logger:
        logger.scalars(scores.epoch, values)
        logger.log_epoch({"epoch": scores.epoch, **values})
    scored = {
        "split": split,
        "checkpoint": str(scores.checkpoint),
        "epoch": scores.epoch,
        "examples": len(scores.probabilities),
        **values,
    }
    files.write_json_atomic(out_dir / SCORES_FILE, scored)
    return {**scored, "outputs": str(out_dir)}


def evaluate_checkpoint(
    config: ml_collections.ConfigDict,
    checkpoint_dir: str | pathlib.Path,
    split: str,
    out_dir: pathlib.Path,
    model: group.Group | None = None,
) -> dict:
    """Scores the best checkpoint of `checkpoint_dir` on `split`; writes outputs into `out_dir`."""
    return write_outputs(score_checkpoint(config, checkpoint_dir, split, model), out_dir)
