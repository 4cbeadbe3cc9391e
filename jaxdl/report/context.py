"""What every section renderer shares: the runs found, where the report goes, the commands that
made (or would make) each run, and the two kinds of text the report adds to the numbers —
placeholders for the author's judgement and "not run yet: run this" notes."""

import csv
import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence

from jaxdl import tasks
from jaxdl.report import commands, discover
from jaxdl.report.figures import Figures
from jaxdl.training import evaluation
from jaxdl.utils import run_metrics

TODO = "**TODO (author):**"
SUGGESTED_OVERFIT_N = 32  # the course's usual M3 subset size


@dataclasses.dataclass(frozen=True)
class Section:
    """One numbered section of the template; `missing` when the run it reports was not found."""

    title: str
    lines: list[str]
    missing: bool = False


@dataclasses.dataclass(frozen=True)
class Context:
    task: str
    workdir: pathlib.Path
    report_dir: pathlib.Path
    runs: discover.Runs
    figures: Figures
    defaults: dict  # configs/<task>.py's defaults, JSON-shaped
    config: dict  # the report's own config, JSON-shaped: the settings of commands not run yet

    def command(self, mode: str, config: dict | None = None, flags: Sequence[str] = ()) -> str:
        """The command line of `mode` with `config` (default: the report's own) as overrides."""
        config = self.config if config is None else config
        return commands.command(
            self.task, mode, self.workdir, flags, commands.overrides(config, self.defaults)
        )

    def link(self, path: pathlib.Path) -> str:
        """`path` relative to report.md, for a markdown link."""
        return pathlib.Path(os.path.relpath(path, self.report_dir)).as_posix()

    def logs_name(self, path: pathlib.Path) -> str:
        """`logs/<run>` as the reader finds it under the workdir."""
        return (pathlib.Path("logs") / path.relative_to(self.runs.logs_dir)).as_posix()

    def checkpoint_dir(self, run: discover.Run) -> pathlib.Path:
        return self.workdir / "checkpoints" / run.name

    def overfit_command(self) -> str:
        """The M3 command suggested while no overfit run exists: the report's config with a
        subset of `train.overfit_n` (or the course's usual 32 when that is 0, "off")."""
        n = self.config["train"]["overfit_n"] or SUGGESTED_OVERFIT_N
        return self.command("train", with_override(self.config, "train.overfit_n", n))

    def evaluate_command(self, run: discover.Run) -> str:
        """`--mode=evaluate` of the best checkpoint of the training `run`, with its config."""
        return self.command("evaluate", run.config, [f"--checkpoint={self.checkpoint_dir(run)}"])

    def main_grid(self) -> discover.Run | None:
        """The M5 grid: the finished grid with the most members, the latest among equals (a
        narrower M8 grid is usually smaller)."""
        grids = self.runs.all("grid_search")
        return max(grids, key=lambda g: (len(grid_rows(g)), g.finished)) if grids else None


def todo(request: str) -> list[str]:
    """A clearly marked placeholder for text only the author can write."""
    return [f"> {TODO} {request}", ""]


def not_run(what: str, command: str) -> list[str]:
    """The text of a section whose run is missing: what it would show and the command for it."""
    return [f"*Not run yet.* This command produces {what}:", "", "```bash", command, "```", ""]


def with_override(config: dict, key: str, value) -> dict:
    """A copy of the JSON-shaped `config` with the dotted `key` set."""
    changed = json.loads(json.dumps(config))
    *parents, last = key.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


def model_keys(config: dict) -> tuple[str, str]:
    """The task model's two hyper-parameters, e.g. ("channels", "kernel_size")."""
    return tasks.by_name(config["task"]).hyperparameters


def value(v) -> str:
    """A config value as the reader expects it: (8, 16, 16), 0.01, 1e-05."""
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(value(x) for x in v) + ")"
    return f"{v:g}" if isinstance(v, float) else str(v)


def records(run: discover.Run) -> list[dict]:
    """The run's metrics.jsonl: one dict per epoch."""
    return run_metrics.read_history(run.path)


def scores(directory: pathlib.Path, split: str) -> tuple[int, dict[str, float]] | None:
    """(epoch of the scored checkpoint, {metric: value}) from the `scores.json` an evaluation of
    `split` wrote to `directory` (train's `test/`, or evaluate's folder), or None when there is
    none. Metrics lose their `<split>/` prefix: `accuracy`, `f1/Smiling`."""
    scored = discover.read_json(directory / evaluation.SCORES_FILE)
    if scored is None or scored.get("split") != split:
        return None
    prefix = f"{split}/"
    found = {k[len(prefix) :]: v for k, v in scored.items() if k.startswith(prefix)}
    return scored["epoch"], found


def grid_rows(grid: discover.Run) -> list[dict]:
    """summary.csv of a grid, ranked (rank 1 first)."""
    with open(grid.path / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))
