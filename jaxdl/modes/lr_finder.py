"""`--mode=lr_finder` (M4): an exponential learning-rate sweep with a divergence stop
(`training/lr_sweep.py`: the sweep, its stop rule and the suggestion rule).

Shows a progress bar (step, lr, smoothed loss) and why the sweep ended. Writes into a new
`logs/<run>/`: `lr_finder.csv` (step, lr, loss, smoothed loss), `lr_finder.png` (raw and smoothed
curves, the suggestion and the valley), `summary.json` (the JSON line: the suggested lr and the
rule that chose it) and the `lr_finder/*` TensorBoard scalars.
"""

import pathlib

import ml_collections
import numpy as np

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.errors import DataError
from jaxdl.training import group, lr_sweep, optim
from jaxdl.utils import distributed, files, plots, runs
from jaxdl.utils.logging import RunLogger


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    del args  # the sweep is configured entirely by `lr_finder.*` and `train.*`
    finder = config.lr_finder
    train_split = tasks.get(config).load_split(config, "train")
    # The sweep sets every step's lr: the optimizer applies it without the training schedule.
    model = group.build([optim.without_schedule(config)], train_split.class_names)
    batch_key = "lr_finder.batch_size" if finder.batch_size else "train.batch_size"
    batch_size = finder.batch_size or config.train.batch_size
    distributed.check_batch_size(batch_key, batch_size, model.mesh)
    if pipeline.num_train_batches(train_split.source, batch_size) == 0:
        raise DataError(
            f"the training split has {len(train_split.source)} examples, fewer than "
            f"one batch of {batch_key}={batch_size}"
        )

    log_dir = files.unique_dir(workdir / "logs", runs.run_name(config, "lr_finder"))
    print(
        f"LR finder {log_dir.name}: lr {finder.start:g} -> {finder.end:g} over {finder.steps} "
        f"steps, batch {batch_size}, optimizer {config.train.optimizer} "
        f"(weight decay {config.train.weight_decay:g})\n  logs: {log_dir}"
    )
    with RunLogger(log_dir, config.to_dict()) as logger:
        result = lr_sweep.sweep(config, model, train_split.source, batch_size, logger)
    rows, suggestion, stop_reason = result.rows, result.suggestion, result.stop_reason
    print(f"  {result.stop_message}")

    beta = lr_sweep.rule_smoothing(finder.smoothing)
    outputs = {
        "csv": str(log_dir / "lr_finder.csv"),
        "png": str(log_dir / "lr_finder.png"),
        "summary": str(log_dir / "summary.json"),
        "events": str(log_dir),
    }
    files.write_csv_atomic(log_dir / "lr_finder.csv", rows, ("step", "lr", "loss", "smoothed_loss"))
    plots.plot_lr_finder(
        np.array([row["lr"] for row in rows]),
        [row["loss"] for row in rows],
        np.array([row["smoothed_loss"] for row in rows]),
        suggestion.lr,
        log_dir / "lr_finder.png",
        window=suggestion.window if suggestion.rule == lr_sweep.VALLEY else None,
        rule=suggestion.rule,
        smoothing=beta,
    )
    summary = {
        "mode": "lr_finder",
        "run": log_dir.name,
        "suggested_lr": suggestion.lr,
        "rule": suggestion.rule,
        "window": list(suggestion.window),
        "stopped_early": stop_reason != lr_sweep.COMPLETED,
        "stop_reason": stop_reason,
        "steps_run": len(rows),
        "steps_planned": finder.steps,
        "min_loss": suggestion.min_loss,
        "lr_at_min": suggestion.lr_at_min,
        "smoothing": finder.smoothing,
        "rule_smoothing": beta,
        "batch_size": batch_size,
        "seconds": round(result.seconds, 3),
        "steps_per_s": round(result.steps_per_s, 3),
        "outputs": outputs,
    }
    files.write_json_atomic(log_dir / "summary.json", summary)

    print(
        f"  {len(rows)} steps in {result.seconds:.1f} s ({result.steps_per_s:.2f} steps/s after "
        f"the first)\n  lowest smoothed loss (EMA β {beta:g}) {suggestion.min_loss:.4f} at lr "
        f"{suggestion.lr_at_min:.3g}\n  suggested lr {suggestion.lr:.3g} ({suggestion.rule} rule"
        + (
            f", valley {suggestion.window[0]:.3g} – {suggestion.window[1]:.3g})"
            if suggestion.rule == lr_sweep.VALLEY
            else ": the loss never decreased; raise lr_finder.end, or check the data and model)"
        )
    )
    if stop_reason == lr_sweep.COMPLETED and suggestion.lr_at_min == rows[-1]["lr"]:
        print("  the loss was still falling at lr_finder.end: raise it to see the divergence")
    return summary
