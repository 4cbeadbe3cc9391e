"""Template §3–§9 (M3–M9): overfit, LR finder, grid search, full training, comparisons, extra
iteration, test evaluation — each from the latest finished run of its kind (`discover`).

The training curves (train/val loss and the main metric) are drawn here from `metrics.jsonl`; the
LR finder, compare and evaluate figures are the runs' own, copied."""

import csv
import json
import pathlib

from jaxdl.analysis.markdown import table
from jaxdl.report import discover
from jaxdl.report.context import (
    Context,
    Section,
    grid_rows,
    model_keys,
    not_run,
    records,
    scores,
    todo,
    value,
)
from jaxdl.report.figures import image
from jaxdl.training import lr_sweep

MAX_EPOCH_ROWS = 30  # longer histories show their first and last 10 epochs


def _epoch_table(history: list[dict], metric: str) -> list[str]:
    """train/val loss and metric per epoch (first and last 10 when the run is long)."""
    tags = ("train/loss", f"train/{metric}", "val/loss", f"val/{metric}")
    shown = history if len(history) <= MAX_EPOCH_ROWS else [*history[:10], None, *history[-10:]]
    rows = [
        ("…", *[""] * len(tags)) if r is None else (r["epoch"], *[r.get(t) for t in tags])
        for r in shown
    ]
    return table(("epoch", *tags), rows)


def _curves(ctx: Context, run: discover.Run, history: list[dict], prefix: str) -> list[str]:
    """Loss and main-metric curves of one run, drawn and embedded."""
    metric = run.config["train"]["best_metric"]
    loss = ctx.figures.curves(
        history, ("train/loss", "val/loss"), f"{prefix}_loss.png", f"{run.name}: loss", "loss"
    )
    main = ctx.figures.curves(
        history,
        (f"train/{metric}", f"val/{metric}"),
        f"{prefix}_{metric}.png",
        f"{run.name}: {metric}",
        metric,
    )
    return [image(loss, f"{prefix} loss"), "", image(main, f"{prefix} {metric}"), ""]


def _hyperparameters(config: dict) -> str:
    return ", ".join(f"`{k}` = {value(config['model'][k])}" for k in model_keys(config))


def overfit(ctx: Context) -> Section:
    """§3 (M3): the overfit run's subset, settings and curves."""
    title = "3) Overfitting a small subset"
    run = ctx.runs.latest("overfit")
    if run is None:
        return Section(
            title,
            not_run("the overfit curves (M3)", ctx.overfit_command())
            + todo("M3: subset size, model hyper-parameters and what proves the overfit."),
            missing=True,
        )
    config, history = run.config, records(run)
    train, metric = config["train"], config["train"]["best_metric"]
    first, last = history[0], history[-1]
    lowest = min(r["train/loss"] for r in history)
    lines = [
        f"Run `{ctx.logs_name(run.path)}`.",
        "",
        f"- **Train subset**: `N = {train['overfit_n']}` examples (`train.overfit_n`), "
        "augmentation off, validated on the same subset (eval-mode BatchNorm)",
        f"- **Model hyper-parameters**: {_hyperparameters(config)}",
        f"- **Optimisation**: LR = {value(train['lr'])}, weight decay = "
        f"{value(train['weight_decay'])} ({train['optimizer']}), {first['step']} step(s) "
        "per epoch",
        f"- **Epochs**: {len(history)}",
        f"- **Train loss**: {first['train/loss']:.4f} (epoch {first['epoch']}) → "
        f"{last['train/loss']:.4f} (epoch {last['epoch']}), lowest {lowest:.4f}; final train "
        f"{metric} {last[f'train/{metric}']:.4f}; final val loss {last['val/loss']:.4f}, val "
        f"{metric} {last[f'val/{metric}']:.4f}",
        "",
        *_curves(ctx, run, history, "overfit"),
        *todo("M3: what in these curves proves the model can overfit the subset."),
    ]
    return Section(title, lines)


def _rule_text(rule: str) -> str:
    if rule == lr_sweep.VALLEY:
        return "valley rule: half-way down the longest descent of the smoothed loss"
    return "the loss never fell: a tenth of the lr of its lowest point"


def lr_finder(ctx: Context) -> Section:
    """§4 (M4): the sweep, its suggestion and window, and the LR/WD the final training used."""
    title = "4) LR finder"
    run = ctx.runs.latest("lr_finder")
    if run is None:
        return Section(
            title,
            not_run("the LR finder curve, valley and suggested LR (M4)", ctx.command("lr_finder"))
            + todo("M4: the chosen LR and weight decay, and why."),
            missing=True,
        )
    s = json.loads((run.path / "summary.json").read_text())
    finder, train = run.config["lr_finder"], run.config["train"]
    smoothed = f"EMA-smoothed (β = {s['smoothing']:g}) " if s["smoothing"] > 0 else ""
    final = ctx.runs.latest("train")
    choice = (
        "no full training run yet"
        if final is None
        else f"LR = {value(final.config['train']['lr'])}, weight decay = "
        f"{value(final.config['train']['weight_decay'])} (final training "
        f"`{ctx.logs_name(final.path)}`)"
    )
    figure = ctx.figures.copy(run.path / pathlib.Path(s["outputs"]["png"]).name, "lr_finder.png")
    lines = [
        f"Run `{ctx.logs_name(run.path)}`.",
        "",
        f"- **Method**: exponential LR sweep {finder['start']:g} → {finder['end']:g} over "
        f"{finder['steps']} steps, batch {s['batch_size']}, {train['optimizer']} with weight "
        f"decay {train['weight_decay']:g}; `(lr, loss)` logged per step (`lr_finder/lr`, "
        f"`lr_finder/loss`); stops at a non-finite loss or when the {smoothed}loss exceeds "
        f"{finder['divergence_factor']:g}× its best after {finder['min_steps']} steps",
        f"- **Sweep**: {s['steps_run']} of {s['steps_planned']} steps, stop: {s['stop_reason']}",
        f"- **Lowest smoothed loss** (EMA β = {s['rule_smoothing']:g}): {s['min_loss']:.4f} at "
        f"lr {s['lr_at_min']:.3g}",
        f"- **Valley**: {s['window'][0]:.3g} → {s['window'][1]:.3g}",
        f"- **Suggested LR**: {s['suggested_lr']:.3g} ({_rule_text(s['rule'])})",
        f"- **Choice for the following**: {choice}",
        "",
        image(figure, "LR finder: loss against learning rate"),
        "",
        f"Trace: [`lr_finder.csv`]({ctx.link(run.path / 'lr_finder.csv')}).",
        "",
        *todo("M4: in 2–3 sentences, why this LR and weight decay."),
    ]
    return Section(title, lines)


def _grid_table(grid: discover.Run, rows: list[dict]) -> list[str]:
    metric = grid.config["train"]["best_metric"]
    keys = model_keys(grid.config)
    columns = (
        "rank",
        "run",
        "lr",
        "weight_decay",
        *keys,
        "seed",
        f"val/{metric}",
        "val/loss",
        "best_epoch",
        "notes",
    )
    numeric = (f"val/{metric}", "val/loss")
    return table(
        columns, [[float(r[c]) if c in numeric and r[c] else r[c] for c in columns] for r in rows]
    )


def _best_member(grid: discover.Run, rows: list[dict]) -> str:
    metric = grid.config["train"]["best_metric"]
    top = rows[0]
    return (
        f"**Best** (by best val {metric}): `{top['run']}` — val {metric} "
        f"{float(top[f'val/{metric}']):.4f} at epoch {top['best_epoch']}, val loss "
        f"{float(top['val/loss']):.4f}"
    )


def grid_search(ctx: Context) -> Section:
    """§5 (M5): the grid's values, every member ranked, the best member and its config file."""
    title = "5) Mini grid search"
    grid = ctx.main_grid()
    if grid is None:
        return Section(
            title,
            not_run("the ranked grid table (M5)", ctx.command("grid_search"))
            + todo("M5: the best combination and the effect of the two model hyper-parameters."),
            missing=True,
        )
    g, rows = grid.config["grid"], grid_rows(grid)
    keys = model_keys(grid.config)
    model_values = {k: g["model"].get(k, [grid.config["model"][k]]) for k in keys}
    lines = [
        f"Grid `{ctx.logs_name(grid.path)}` ({len(rows)} runs).",
        "",
        "- **Grids**:",
        f"  - LR: {{{', '.join(value(v) for v in g['lr'])}}}",
        f"  - Weight decay: {{{', '.join(value(v) for v in g['weight_decay'])}}}",
        *[f"  - `{k}`: {{{', '.join(value(v) for v in model_values[k])}}}" for k in keys],
        f"- **Run length**: {g['epochs']} epoch(s) per run, seed(s) "
        f"{{{', '.join(value(v) for v in g['seeds'])}}}",
        "",
        *_grid_table(grid, rows),
        _best_member(grid, rows) + "; its configuration as a file `train` accepts: "
        f"[`best_config.py`]({ctx.link(grid.path / 'best_config.py')}).",
        "",
        f"HParams and curves of every member: `tensorboard --logdir {ctx.logs_name(grid.path)}`.",
        "",
        *todo(
            "M5: the best combination, and the effect of the two model hyper-parameters "
            f"({', '.join(keys)}) on the curves (stability, speed, overfitting)."
        ),
    ]
    return Section(title, lines)


def _test_scores(ctx: Context, run: discover.Run) -> tuple[pathlib.Path, int, dict] | None:
    """(directory, epoch, metrics) of the run's test evaluation: the one train made (`test/`),
    else the latest `--mode=evaluate` of its checkpoint on the test split."""
    candidates = [run.path / "test"] + [
        e.path for e in reversed(ctx.runs.evaluations(run.name, "test"))
    ]
    for directory in candidates:
        found = scores(directory, "test")
        if found is not None:
            return directory, *found
    return None


def _best_record(history: list[dict], metric: str, mode: str) -> dict:
    pick = max if mode == "max" else min
    return pick(history, key=lambda r: r[f"val/{metric}"])


def training(ctx: Context) -> Section:
    """§6 (M6): the final configuration, best epoch, curves and per-epoch numbers."""
    title = "6) Full training"
    run = ctx.runs.latest("train")
    if run is None:
        return Section(
            title,
            not_run("the full training's curves and best checkpoint (M6)", ctx.command("train"))
            + todo("M6: interpret the curves (under/over-fitting, stability)."),
            missing=True,
        )
    config, history = run.config, records(run)
    train, metric = config["train"], config["train"]["best_metric"]
    tested = _test_scores(ctx, run)
    best = (
        next(r for r in history if r["epoch"] == tested[1])
        if tested
        else _best_record(history, metric, train["best_mode"])
    )
    checkpoint = ctx.checkpoint_dir(run)
    lines = [
        f"Run `{ctx.logs_name(run.path)}`.",
        "",
        "- **Final configuration**:",
        f"  - LR = {value(train['lr'])}",
        f"  - Weight decay = {value(train['weight_decay'])} ({train['optimizer']})",
        *[f"  - `{k}` = {value(config['model'][k])}" for k in model_keys(config)],
        f"  - Batch size = {train['batch_size']}",
        f"  - Epochs = {len(history)}",
        f"- **Checkpoint**: `{checkpoint}` — best epoch {best['epoch']} by val {metric} "
        f"({train['best_mode']}): {best[f'val/{metric}']:.4f}, val loss "
        f"{best['val/loss']:.4f}",
        "",
        *_curves(ctx, run, history, "training"),
        *_epoch_table(history, metric),
        *todo("M6: interpret the curves: under-fitting, over-fitting, stability."),
    ]
    return Section(title, lines)


def comparisons(ctx: Context) -> Section:
    """§7 (M7): every finished compare run: its overlays and its table."""
    title = "7) Curve comparisons"
    found = ctx.runs.all("compare")
    grid = ctx.main_grid()
    if not found:
        pattern = f"{grid.name}/*" if grid else f"{ctx.task}_train_*"
        return Section(
            title,
            not_run(
                "overlaid curves of several runs (M7)",
                ctx.command("compare", flags=[f"--runs={pattern}"]),
            )
            + todo(
                "M7: three comparisons (LR, weight decay, model hyper-parameters), one sentence "
                "each: expected vs observed."
            ),
            missing=True,
        )
    lines = []
    for number, run in enumerate(found, start=1):
        with open(run.path / "comparison.csv", newline="") as handle:
            labels = [row["label"] for row in csv.DictReader(handle)]
        lines += [f"**Comparison {number}** (`{ctx.logs_name(run.path)}`): {'; '.join(labels)}", ""]
        for png in sorted(run.path.glob("*.png")):
            link = ctx.figures.copy(png, f"compare{number}_{png.name}")
            lines += [image(link, f"comparison {number}: {png.stem}"), ""]
        lines += [(run.path / "comparison.md").read_text().rstrip(), ""]
    lines += todo(
        "M7: one sentence per comparison (LR, weight decay, model hyper-parameters): "
        "what you expected and what you observe."
    )
    return Section(title, lines)


def extra_iteration(ctx: Context) -> Section:
    """§8 (M8): the finished grids other than §5's."""
    title = "8) Extra iteration"
    main = ctx.main_grid()
    others = [g for g in ctx.runs.all("grid_search") if g != main]
    if not others:
        return Section(
            title,
            not_run(
                "a second, narrower grid (M8)",
                ctx.command("grid_search") + " --config.grid.lr=… --config.grid.weight_decay=…",
            )
            + todo("M8: the change (narrower grid, new value), its motivation and its result."),
            missing=True,
        )
    lines = []
    for grid in others:
        rows = grid_rows(grid)
        lines += [
            f"Grid `{ctx.logs_name(grid.path)}` ({len(rows)} runs, "
            f"{grid.config['grid']['epochs']} epoch(s) each):",
            "",
            *_grid_table(grid, rows),
            _best_member(grid, rows) + ".",
            "",
        ]
    lines += todo("M8: the change, its motivation and its result.")
    return Section(title, lines)


def test(ctx: Context) -> Section:
    """§9 (M9): the best checkpoint's test metrics next to its validation metrics."""
    title = "9) Final evaluation (test)"
    run = ctx.runs.latest("train")
    tested = _test_scores(ctx, run) if run else None
    if tested is None:
        command = ctx.command("train") if run is None else ctx.evaluate_command(run)
        return Section(
            title,
            not_run("the test metrics of the best checkpoint (M9)", command)
            + todo("M9: test results against validation."),
            missing=True,
        )
    directory, epoch, metrics = tested
    record = next(r for r in records(run) if r["epoch"] == epoch)
    main = run.config["train"]["best_metric"]
    names = sorted((m for m in metrics if "/" not in m), key=lambda m: (m != main, m))
    rows = [
        (
            m,
            record.get(f"val/{m}"),
            metrics[m],
            metrics[m] - record[f"val/{m}"] if f"val/{m}" in record else None,
        )
        for m in names
    ]
    lines = [
        f"- **Checkpoint evaluated**: `{ctx.checkpoint_dir(run)}`, epoch {epoch} (best val "
        f"{main}); outputs in `{ctx.logs_name(directory)}`",
        f"- **Main metric** ({main}): test {metrics[main]:.4f}, validation "
        f"{record[f'val/{main}']:.4f}",
        "- **Secondary metrics**: "
        + ", ".join(f"{m} {metrics[m]:.4f}" for m in names if m != main),
        "",
        *table(("metric", f"validation (epoch {epoch})", "test", "test − validation"), rows),
    ]
    per_attribute = directory / "per_attribute.csv"
    if per_attribute.is_file():
        with open(per_attribute, newline="") as handle:
            attribute_rows = list(csv.DictReader(handle))
        columns = list(attribute_rows[0])
        lines += table(columns, [[_number(r[c]) for c in columns] for r in attribute_rows])
    if (directory / "per_class.csv").is_file():
        lines += [
            f"Per-class precision, recall and F1: [`per_class.csv`]"
            f"({ctx.link(directory / 'per_class.csv')}).",
            "",
        ]
    confusion = directory / "confusion_matrix_test.png"
    if confusion.is_file():
        lines += [
            image(
                ctx.figures.copy(confusion, "confusion_matrix_test.png"), "confusion matrix (test)"
            ),
            "",
        ]
    lines += _other_evaluations(ctx, run)
    lines += todo(
        "M9: the test results against validation: is the gap reasonable, is over-fitting likely?"
    )
    return Section(title, lines)


def _number(text: str):
    """A CSV cell as a number when it is one, so tables format it."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _other_evaluations(ctx: Context, run: discover.Run) -> list[str]:
    """`--mode=evaluate` runs of this checkpoint, each split's metrics."""
    rows = []
    for evaluation in ctx.runs.evaluations(run.name):
        split = evaluation.scored["split"]
        found = scores(evaluation.path, split)
        if found is not None:
            rows.append(
                (
                    f"`{ctx.logs_name(evaluation.path)}`",
                    split,
                    ", ".join(f"{m} {v:.4f}" for m, v in sorted(found[1].items()) if "/" not in m),
                )
            )
    if not rows:
        return []
    return [
        "Other evaluations of this checkpoint (`--mode=evaluate`):",
        "",
        *table(("run", "split", "metrics"), rows),
    ]


def sections(ctx: Context) -> list[Section]:
    return [
        overfit(ctx),
        lr_finder(ctx),
        grid_search(ctx),
        training(ctx),
        comparisons(ctx),
        extra_iteration(ctx),
        test(ctx),
    ]
