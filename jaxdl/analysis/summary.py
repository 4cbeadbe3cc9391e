"""Analyze's run: every analysis of the data and the untrained model (course items D1–D11, M0,
M1–M2), composed into one folder, `summary.json` and `analysis.md` (`--mode=analyze` runs it).

Writes into `logs/<run>/` (run = `<task>_analyze_<model hparams>_<time>`, never reused) and prints
its headline figures and the path of `analysis.md`:
- `config.json`: the resolved config;
- `summary.json`: every number below (read by `--mode=report`);
- `analysis.md`: the same, readable, in the course's item order;
- `class_distribution.csv` / `.png`: examples per class and split (multi-label: positives and
  positive rate per attribute and split);
- `census_problems.csv`: every missing or corrupt raw file (group, file, problem, detail);
- `examples.png`: train examples before/after augmentation and the model input;
- `layers.csv`: the model layer by layer; `parameter_grid.csv`: parameters per combination of
  the grid's two model hyper-parameters; `gradients.csv`: per-tensor norms at the first batch.

The census reads the raw files before the loaders do, so a dataset with a bad file still gets its
census (printed, and `census_problems.csv`) before `data.on_corrupt=error` stops the run.

summary.json keys:
- mode ("analyze"), task, run, out_dir, seed, seconds;
- card: dataset, homepage, raw_format, source, data_dir, task_type ("multiclass" |
  "multilabel"), objective, num_classes (from the data), real_num_classes, class_names,
  input_shape (the task's model input per example), split_protocol;
- splits: {train, val, test: exact example counts}; split_overlap: {"train&val", "train&test",
  "val&test": file names found in both};
- distribution: per split, multi-class {examples, classes, classes_present, min_count,
  max_count, imbalance_ratio (max/min, null if a class is absent), majority_share,
  minority_share, normalized_entropy (H / ln C)}; multi-label {examples, positives,
  positive_rate, imbalance_ratio (per attribute: majority/minority side), label_cardinality};
- census: kind ("audio" | "image"), root, groups {name: summary}, all (summary), problems
  [{group, file, problem ("missing" | "corrupt"), detail}], unlisted; a summary holds files, ok,
  missing, corrupt, formats and, for images, modes, distinct_sizes, most_common_sizes [[w, h, n]],
  width/height {min, median, max}; for audio, sample_rates, channels, subtypes,
  distinct_lengths, most_common_seconds [[s, n]], seconds {min, median, max};
- pipelines: preprocessing [{op, params}], output_shape (one example, as batched),
  augmentation {enabled, applies_to, steps [{op, p, params}]}, eval_deterministic;
- examples: [{index, filename, label, input_shape, input_min, input_max, augmentation_changed,
  denormalized_max_abs_diff (images)}];
- batch: x_shape, x_dtype, y_shape, y_dtype, expected_x_shape, expected_y_shape, x_matches,
  y_matches, logits_shape, logits_match;
- baselines: majority {multi-class: class_index, class, train_share, tied_classes; multi-label:
  predicted_positive, train_rate; and per split train/val/test the evaluation summary: loss,
  accuracy, macro_f1, top5_accuracy, or loss, mean_accuracy, micro_f1, macro_f1 and
  accuracy/precision/recall/f1 per attribute}; random {method, expected {val, test: accuracy,
  macro_f1 | mean_accuracy, micro_f1, macro_f1, f1/<attribute>}, simulated {val, test: draws,
  seed, <metric>, <metric>_std}};
- model: name, hyperparameters; parameters: input_shape, total, non_trainable, layers [{layer,
  type, output_shape, params, param_shapes, state}], grid [{<hp1>, <hp2>, params, configured}];
- first_batch: loss, chance_loss, chance_formula, relative_gap, within_tolerance, tolerance,
  global_grad_norm, all_finite, all_nonzero, loss_independent, negligible, negligible_fraction,
  gradients
  [{parameter, shape, param_norm, grad_norm, finite, nonzero}];
- mean_std: null, or {mean, std, examples, config_mean, config_std, max_abs_diff};
- files: {name: file name in out_dir}.
"""

import pathlib
import time

import ml_collections
import numpy as np

from jaxdl import tasks
from jaxdl.analysis import (
    baselines,
    card,
    census,
    distribution,
    examples,
    first_batch,
    markdown,
    model_summary,
    pipelines,
)
from jaxdl.errors import DataError
from jaxdl.training import group
from jaxdl.utils import files, plots, runs

SPLITS = ("train", "val", "test")
_PROBLEMS_SHOWN = 5  # census problems printed; census_problems.csv lists them all
FILES = {
    "summary": "summary.json",
    "analysis": "analysis.md",
    "config": "config.json",
    "class_distribution_csv": "class_distribution.csv",
    "class_distribution_png": "class_distribution.png",
    "census_problems_csv": "census_problems.csv",
    "examples_png": "examples.png",
    "layers_csv": "layers.csv",
    "parameter_grid_csv": "parameter_grid.csv",
    "gradients_csv": "gradients.csv",
}


def _write_distribution(
    out: pathlib.Path, kind: str, names: tuple[str, ...], labels: dict[str, np.ndarray]
) -> dict:
    """Per-split figures, and the CSV and bar chart of class shares or positive rates."""
    if kind == "multiclass":
        counts = {split: distribution.class_counts(y, len(names)) for split, y in labels.items()}
        rows = [
            {
                "class_index": c,
                "class": name,
                **{split: int(counts[split][c]) for split in labels},
                **{
                    f"{split}_share": float(counts[split][c] / max(len(labels[split]), 1))
                    for split in labels
                },
            }
            for c, name in enumerate(names)
        ]
        files.write_csv_atomic(
            out / FILES["class_distribution_csv"],
            rows,
            ["class_index", "class", *labels, *[f"{s}_share" for s in labels]],
        )
        plots.plot_grouped_bars(
            {split: [r[f"{split}_share"] for r in rows] for split in labels},
            names,
            out / FILES["class_distribution_png"],
            "class distribution per split",
            "share of the split",
        )
        return {split: distribution.imbalance(c) for split, c in counts.items()}
    stats = {split: distribution.positive_rates(y, names) for split, y in labels.items()}
    rows = [
        {
            "attribute": name,
            **{
                key: value
                for split in labels
                for key, value in (
                    (f"{split}_positives", stats[split]["positives"][name]),
                    (f"{split}_rate", stats[split]["positive_rate"][name]),
                )
            },
        }
        for name in names
    ]
    columns = [f"{s}_{k}" for s in labels for k in ("positives", "rate")]
    files.write_csv_atomic(out / FILES["class_distribution_csv"], rows, ["attribute", *columns])
    plots.plot_grouped_bars(
        {split: [r[f"{split}_rate"] for r in rows] for split in labels},
        names,
        out / FILES["class_distribution_png"],
        "positive rate per attribute and split",
        "positive rate",
    )
    return stats


def headline(summary: dict) -> dict:
    """The mode's JSON line: split sizes, baselines on val/test, initial loss, parameters."""
    multiclass = summary["card"]["task_type"] == "multiclass"
    metrics = ("accuracy", "macro_f1") if multiclass else ("mean_accuracy", "macro_f1")
    majority = summary["baselines"]["majority"]
    expected = summary["baselines"]["random"]["expected"]
    return {
        "mode": "analyze",
        "run": summary["run"],
        "out_dir": summary["out_dir"],
        **summary["splits"],
        "classes": summary["card"]["num_classes"],
        "census_problems": len(summary["census"]["problems"]),
        **{
            f"majority/{split}/{m}": majority[split][m]
            for split in ("val", "test")
            for m in metrics
        },
        **{f"random/{split}/{m}": expected[split][m] for split in ("val", "test") for m in metrics},
        "initial_loss": summary["first_batch"]["loss"],
        "chance_loss": summary["first_batch"]["chance_loss"],
        "global_grad_norm": summary["first_batch"]["global_grad_norm"],
        "params": summary["parameters"]["total"],
        "seconds": summary["seconds"],
    }


def brief(summary: dict) -> list[str]:
    """What analyze prints when it ends: the headline figures and where analysis.md holds the rest
    (its 180 lines would bury them)."""
    splits = summary["splits"]
    sizes = ", ".join(f"{name} {count:,}" for name, count in splits.items())
    line = headline(summary)
    scored = [k.removeprefix("majority/val/") for k in line if k.startswith("majority/val/")]
    majority = ", ".join(f"{m} {line[f'majority/val/{m}']:.4f}" for m in scored)
    random = ", ".join(f"{m} {line[f'random/val/{m}']:.4f}" for m in scored)
    check = summary["first_batch"]
    verdict = "within" if check["within_tolerance"] else "OUTSIDE"
    problems = line["census_problems"]
    return [
        f"analyze {summary['run']} done in {summary['seconds']:.1f} s",
        f"  splits: {sizes}; {line['classes']} classes ({summary['card']['task_type']})",
        f"  census: {summary['census']['all']['files']:,} raw files, {problems} problem(s)"
        + (f", listed in {FILES['census_problems_csv']}" if problems else ""),
        f"  val baselines: majority {majority}; random {random}",
        f"  initial loss {check['loss']:.4f} vs {check['chance_formula']} = "
        f"{check['chance_loss']:.4f} ({verdict} {check['tolerance']:.0%}); first-batch "
        f"gradient norm {check['global_grad_norm']:.4g}",
        f"  parameters: {line['params']:,}",
        f"  everything else (figures, tables, census, pipelines): "
        f"{pathlib.Path(summary['out_dir']) / FILES['analysis']}",
    ]


def analyze(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    """Runs every analysis into a new `logs/<run>/` of `workdir`, writes the outputs, prints
    the headline figures (`brief`); returns summary.json's content."""
    started = time.perf_counter()
    task = tasks.get(config)
    raw = census.census(config)  # before the run folder: a missing dataset leaves no empty run
    out = files.unique_dir(workdir / "logs", runs.run_name(config, "analyze"))
    files.write_json_atomic(out / FILES["config"], config.to_dict())
    print(f"analyze {out.name}: outputs in {out}", flush=True)
    files.write_csv_atomic(
        out / FILES["census_problems_csv"], raw["problems"], ["group", "file", "problem", "detail"]
    )
    shown = raw["problems"][:_PROBLEMS_SHOWN]
    more = len(raw["problems"]) - len(shown)
    print(
        f"census: {raw['all']['files']:,} raw files, {raw['all']['missing']} missing, "
        f"{raw['all']['corrupt']} corrupt"
        + "".join(f"\n  {p['problem']}: {p['detail']}" for p in shown)
        + (f"\n  … {more} more in {out / FILES['census_problems_csv']}" if more else ""),
        flush=True,
    )

    splits = {name: task.load_split(config, name) for name in SPLITS}
    names = splits["train"].class_names
    for name, split in splits.items():
        if split.class_names != names:
            raise DataError(
                f"the {name} split's classes differ from train's "
                f"({len(split.class_names)} vs {len(names)})"
            )
    labels, filenames = {}, {}
    for name, split in splits.items():
        labels[name], filenames[name] = distribution.read_labels(split.source, f"{name} labels")
    distributions = _write_distribution(out, task.objective_kind, names, labels)

    parts = group.build([config], names)
    batch_size = config.train.batch_size
    if len(splits["train"].source) < batch_size:
        raise DataError(
            f"the train split has {len(splits['train'].source)} examples, fewer than "
            f"one batch of train.batch_size={batch_size}"
        )
    batch = first_batch.first_train_batch(splits["train"].source, task, config, batch_size)
    example_shape = tuple(batch["x"].shape[1:])
    layers = model_summary.layer_table(parts.model, example_shape)
    gradients = first_batch.gradient_check(parts, batch, [row["layer"] for row in layers])
    files.write_csv_atomic(
        out / FILES["layers_csv"],
        layers,
        ["layer", "type", "output_shape", "params", "param_shapes", "state"],
    )
    grid = model_summary.grid_counts(config, len(names), example_shape)
    files.write_csv_atomic(out / FILES["parameter_grid_csv"], grid, list(grid[0]))
    files.write_csv_atomic(
        out / FILES["gradients_csv"],
        gradients["gradients"],
        ["parameter", "shape", "param_norm", "grad_norm", "finite", "nonzero"],
    )

    described = pipelines.describe(config, example_shape)
    described["eval_deterministic"] = pipelines.eval_is_deterministic(
        splits["val"].source, task, config, config.train.eval_batch_size or batch_size
    )
    shown = examples.example_grid(
        config, task, splits["train"].source, names, out / FILES["examples_png"]
    )

    objective = parts.objective
    evaluated = {split: labels[split] for split in ("val", "test")}
    summary = {
        "mode": "analyze",
        "task": config.task,
        "run": out.name,
        "out_dir": str(out),
        "seed": config.seed,
        "card": card.dataset_card(config, task, names, raw["root"]),
        "splits": {name: len(split.source) for name, split in splits.items()},
        "split_overlap": distribution.shared_files(filenames),
        "distribution": distributions,
        "census": raw,
        "pipelines": described,
        "examples": shown,
        "batch": first_batch.batch_shapes(batch, parts, task.input_shape(config)),
        "baselines": {
            "majority": baselines.majority(objective, labels["train"], labels),
            "random": {
                "method": "expected: exact (1/C or 0.5, F1 by binomial sums); simulated: seeded "
                "draws scored by the evaluation metrics",
                "expected": {
                    split: baselines.random_expected(objective.kind, names, y)
                    for split, y in evaluated.items()
                },
                "simulated": {
                    split: baselines.random_simulated(objective, y, config.seed)
                    for split, y in evaluated.items()
                },
            },
        },
        "model": {
            "name": config.model.name,
            "hyperparameters": {
                k: model_summary.plain(config.model[k]) for k in task.hyperparameters
            },
        },
        "parameters": {
            "input_shape": list(example_shape),
            "total": sum(row["params"] for row in layers),
            "non_trainable": sum(row["state"] for row in layers),
            "layers": layers,
            "grid": grid,
        },
        "first_batch": gradients,
        "mean_std": (
            task.mean_std(config, splits["train"].source) if config.analyze.mean_std else None
        ),
        "files": FILES,
    }
    summary["seconds"] = time.perf_counter() - started
    files.write_json_atomic(out / FILES["summary"], summary)
    files.write_text_atomic(out / FILES["analysis"], markdown.render(summary))
    print("\n".join(brief(summary)), flush=True)
    return summary
