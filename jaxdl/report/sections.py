"""The report in the course template's order: §0 (environment, commands), §1–§2 (data_model),
§3–§9 (experiments), §10 (limits), §11 (reproducibility), §12 (references)."""

import csv
import datetime
import json

from jaxdl import config as config_lib
from jaxdl import tasks
from jaxdl.report import comparison, data_model, discover, experiments
from jaxdl.report.context import (
    TODO,
    Context,
    Section,
    grid_rows,
    model_keys,
    todo,
    value,
    with_override,
)

# Framework documentation cited in §12.
REFERENCES = (
    ("JAX", "https://docs.jax.dev"),
    ("Flax (linen)", "https://flax.readthedocs.io"),
    ("Optax", "https://optax.readthedocs.io"),
    ("Orbax checkpointing", "https://orbax.readthedocs.io"),
)
# Configuration sections quoted in §11, when the run has them.
CONFIG_EXCERPT = ("seed", "model", "train", "features", "preprocess", "augment")
# Hyper-parameters that must match between the final training and the grid's best member.
ALIGNED_KEYS = ("lr", "weight_decay", "optimizer", "batch_size")


def _commands(ctx: Context) -> list[tuple[str, str, bool]]:
    """(label, command, run or not) per mode, in the order a project runs them: the exact command
    of the latest run of each kind, else the one that would produce it (evaluation: once there
    is a training run, whose test split train scores itself unless `train.evaluate_test=False`)."""
    runs, found = ctx.runs, []

    def add(label: str, run: discover.Run | None, mode: str, otherwise: str) -> None:
        found.append((label, ctx.command(mode, run.config) if run else otherwise, run is not None))

    add("Analysis (D1–D11, M0–M2)", runs.latest("analyze"), "analyze", ctx.command("analyze"))
    add("Overfit (M3)", runs.latest("overfit"), "train", ctx.overfit_command())
    add("LR finder (M4)", runs.latest("lr_finder"), "lr_finder", ctx.command("lr_finder"))
    add("Grid search (M5)", ctx.main_grid(), "grid_search", ctx.command("grid_search"))
    train = runs.latest("train")
    add("Training (M6)", train, "train", ctx.command("train"))
    for number, compare in enumerate(runs.all("compare"), start=1):
        found.append((f"Comparison {number} (M7)", _compare_command(ctx, compare), True))
    if train is not None:
        evaluated = (train.path / "test").is_dir() or bool(runs.evaluations(train.name))
        found.append(("Evaluation (M9)", ctx.evaluate_command(train), evaluated))
    found.append(("This report", ctx.command("report"), True))
    return found


def _compare_command(ctx: Context, compare: discover.Run) -> str:
    """compare records no config: its runs come from comparison.csv, its metric from the
    `val/<metric>` column; the rest of its config is the task's defaults."""
    with open(compare.path / "comparison.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        names = [row["run"] for row in reader]
        metric = comparison.compared_metric(reader.fieldnames)
    paths = [ctx.runs.find(name) for name in names]
    relative = [
        str(path.relative_to(ctx.runs.logs_dir)) if path else name
        for path, name in zip(paths, names, strict=True)
    ]
    config = with_override(ctx.defaults, "train.best_metric", metric)
    return ctx.command("compare", config, [f"--runs={','.join(relative)}"])


def _environment(env: dict) -> str:
    packages = ", ".join(
        f"`{name} == {version or 'not installed'}`" for name, version in env["packages"].items()
    )
    devices = ", ".join(f"{n} × {kind}" for kind, n in env["devices"].items())
    return (
        f"`python == {env['python']}`, {packages}; backend `{env['backend']}`, "
        f"{env['device_count']} device(s): {devices}, {env['process_count']} process(es); "
        f"{env['platform']} (the machine that wrote this report)"
    )


def general(ctx: Context, env: dict) -> Section:
    """§0: student/project/repository placeholders, the environment, every command."""
    model = (ctx.runs.latest("train").config if ctx.runs.latest("train") else ctx.config)["model"]
    lines = [
        f"- **Student**: {TODO} name, first name",
        f"- **Project**: {tasks.by_name(ctx.task).card.name} × `{model['name']}` "
        f"({', '.join(model_keys({'task': ctx.task, 'model': model}))})",
        f"- **Git repository**: {TODO} public URL",
        f"- **Environment**: {_environment(env)}",
        "- **Commands used** (the task's config file plus every key that differs from its "
        "defaults, rebuilt from each run's `config.json`):",
    ]
    for label, command, ran in _commands(ctx):
        lines.append(f"  - {label}: `{command}`" + ("" if ran else " — *not run yet*"))
    return Section("0) General information", lines + [""])


def limits(ctx: Context) -> Section:
    """§10: what the logs record (failed runs, diverged grid members), then the author's part."""
    recorded = [
        f"- run `{ctx.logs_name(path)}` failed (`run_status.json`)" for path in ctx.runs.failed
    ]
    for grid in ctx.runs.all("grid_search"):
        recorded += [
            f"- grid member `{row['run']}` diverged" for row in grid_rows(grid) if row["notes"]
        ]
    recorded = recorded or ["- no failed run, no diverged grid member"]
    lines = [
        "Recorded in the logs:",
        "",
        *recorded,
        "",
        "- **Known limits** (data, compute, model):",
        "",
        *todo("known limits."),
        "- **Errors met** (shape mismatch, divergence, NaN…) **and fixes**:",
        "",
        *todo("errors met and how they were fixed."),
        "- **With more time or compute** (one sentence):",
        "",
        *todo("one idea."),
    ]
    return Section("10) Limits, errors & bug diary", lines)


def _seeds(ctx: Context) -> str:
    seeds = {
        run.name: run.config["seed"]
        for kind in discover.KINDS
        for run in ctx.runs.all(kind)
        if "seed" in run.config
    }
    if len(set(seeds.values())) == 1:
        return f"`{next(iter(seeds.values()))}` (every run above)"
    if not seeds:
        return f"`{ctx.config['seed']}` (this config; no run yet)"
    return "; ".join(f"`{seed}` ({name})" for name, seed in seeds.items())


def _alignment(ctx: Context) -> str:
    """Checklist line: does the final training use the grid's best configuration?"""
    train, grid = ctx.runs.latest("train"), ctx.main_grid()
    if train is None or grid is None:
        return "- [ ] the final training uses the grid's best configuration (needs both runs)"
    best = json.loads((grid.path / grid_rows(grid)[0]["run"] / "config.json").read_text())
    keys = [("train", k) for k in ALIGNED_KEYS] + [("model", k) for k in model_keys(best)]
    differs = [
        f"{k} {value(train.config[s][k])} (grid best {value(best[s][k])})"
        for s, k in keys
        if train.config[s][k] != best[s][k]
    ]
    source = f"`{ctx.logs_name(grid.path / 'best_config.py')}`"
    if differs:
        return (
            f"- [ ] the final training differs from the grid's best configuration ({source}) "
            f"in: {', '.join(differs)}"
        )
    return f"- [x] the final training uses the grid's best configuration ({source})"


def reproducibility(ctx: Context) -> Section:
    """§11: seed, config excerpt, the exact commands as a script, the artifacts checklist."""
    train = ctx.runs.latest("train")
    config = train.config if train else ctx.config
    source = (
        f"`{ctx.logs_name(train.path / 'config.json')}` (final training)"
        if train
        else "this report's config (no training run yet)"
    )
    excerpt = [
        f"{key} = {value(v)}"
        for key, v in config_lib.flatten(
            {k: config[k] for k in CONFIG_EXCERPT if k in config}
        ).items()
    ]
    used = sum(len(ctx.runs.all(kind)) for kind in discover.KINDS)
    checkpoint = ctx.checkpoint_dir(train) if train else None
    has_checkpoint = checkpoint is not None and checkpoint.is_dir()
    script = [f"{command}{'' if ran else '  # not run yet'}" for _, command, ran in _commands(ctx)]
    lines = [
        f"- **Seed**: {_seeds(ctx)}",
        f"- **Config used**: excerpt of {source}:",
        "",
        "```text",
        *excerpt,
        "```",
        "",
        "- **Exact commands**:",
        "",
        "```bash",
        *script,
        "```",
        "",
        "- **Artifacts**:",
        f"  - [{'x' if used else ' '}] `logs/`: the {used} run(s) this report reads",
        f"  - [{'x' if has_checkpoint else ' '}] best checkpoint "
        f"`{checkpoint or 'checkpoints/<run>'}`",
        "  " + _alignment(ctx),
        "",
    ]
    return Section("11) Reproducibility", lines)


def references(ctx: Context) -> Section:
    info = tasks.by_name(ctx.task).card
    lines = [
        f"- Dataset: {info.name}, {info.homepage}",
        *[f"- {name}: {url}" for name, url in REFERENCES],
        "",
        *todo("any other substantial external resource (one line each)."),
    ]
    return Section("12) References", lines)


def _runs_table(ctx: Context) -> list[str]:
    lines = ["| kind | run (under the workdir) | finished |", "|---|---|---|"]
    for kind in discover.KINDS:
        for run in ctx.runs.all(kind):
            stamp = datetime.datetime.fromtimestamp(run.finished).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"| {kind} | `{ctx.logs_name(run.path)}` | {stamp} |")
    return lines + [""]


def render(ctx: Context, env: dict, generated: str) -> tuple[str, list[Section]]:
    """The whole report.md and its sections (to count the filled and the missing ones)."""
    parts = [
        general(ctx, env),
        *data_model.sections(ctx),
        *experiments.sections(ctx),
        limits(ctx),
        reproducibility(ctx),
        references(ctx),
    ]
    lines = [
        f"# Project report — CSC8607 Introduction to Deep Learning: "
        f"{tasks.by_name(ctx.task).card.name}",
        "",
        f"Written by `--mode=report` on {generated} from the runs under `{ctx.workdir}/logs/` "
        "(for each kind, the run that finished last; §7 and §8 use every compare run and "
        "every other grid). Every number and figure comes from those runs; blocks marked "
        "**TODO (author)** need the author's judgement and are left to the author.",
        "",
        *_runs_table(ctx),
    ]
    for part in parts:
        lines += ["---", "", f"## {part.title}", "", *part.lines]
    return "\n".join(lines).rstrip() + "\n", parts
