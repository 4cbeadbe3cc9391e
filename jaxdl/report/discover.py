"""A task's finished runs under `<workdir>/logs/`, recognised by what their directories hold, so a
run renamed with `config.run_name` is found like any other.

Kinds, and when a directory counts as finished:
- `analyze`, `lr_finder`: `summary.json` whose `mode` says so (written last, so it means finished);
- `grid_search`: `run_status.json` "finished" next to `summary.csv`;
- `train` / `overfit`: `run_status.json` "finished" next to `metrics.jsonl` (overfit when its
  `train.overfit_n` > 0);
- `compare`: `comparison.md`; compare writes no config, so its task is the task of the runs it
  compared (the `run` column of `comparison.csv`, looked up among the run directories);
- `evaluate`: `scores.json` (written last), in `logs/evaluate/<checkpoint run>_<split>/`; the run
  and split it scored are read from that file (`checkpoint`, `split`), not from the folder name.
The task of every other kind is the `task` key of the directory's `config.json`. A directory whose
JSON cannot be read is not a run.

Order: by the modification time of the file that marks the run finished (`run_status.json`,
`summary.json`, `comparison.md`, `scores.json`), so "latest" is the run that finished last,
whatever its name says.
"""

import csv
import dataclasses
import json
import pathlib

from jaxdl.training import evaluation
from jaxdl.utils import runs as run_files

KINDS = ("analyze", "overfit", "lr_finder", "grid_search", "train", "compare", "evaluate")
_SCORED_KEYS = {"split", "checkpoint", "epoch"}  # what report reads of an evaluation's scores.json


@dataclasses.dataclass(frozen=True)
class Run:
    kind: str
    path: pathlib.Path
    config: dict  # its config.json ({} for compare)
    finished: float  # mtime of the file that marks it finished
    scored: dict = dataclasses.field(default_factory=dict)  # evaluate: its scores.json

    @property
    def name(self) -> str:
        return self.path.name


@dataclasses.dataclass(frozen=True)
class Runs:
    """One task's runs: the finished ones per kind (oldest first) and those that failed."""

    logs_dir: pathlib.Path
    finished: dict[str, list[Run]]
    failed: list[pathlib.Path]

    def all(self, kind: str) -> list[Run]:
        return self.finished.get(kind, [])

    def latest(self, kind: str) -> Run | None:
        return self.all(kind)[-1] if self.all(kind) else None

    def evaluations(self, name: str, split: str | None = None) -> list[Run]:
        """The `--mode=evaluate` runs of the checkpoint of run `name` (of `split` if given)."""
        return [
            run
            for run in self.all("evaluate")
            if pathlib.Path(run.scored["checkpoint"]).name == name
            and split in (None, run.scored["split"])
        ]

    def find(self, name: str) -> pathlib.Path | None:
        """The directory of the run or grid member called `name` (as compare names them)."""
        for candidate in (self.logs_dir / name, *self.logs_dir.glob(f"*/{name}")):
            if (candidate / "config.json").is_file():
                return candidate
        return None


def read_json(path: pathlib.Path) -> dict | None:
    """The JSON object in `path`, or None if it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _finished_kind(directory: pathlib.Path) -> tuple[str, pathlib.Path] | None:
    """(kind, the file that marks it finished) for a finished run directory, else None."""
    status_file = directory / run_files.STATUS_FILE
    if status_file.is_file():
        if (read_json(status_file) or {}).get("status") != "finished":
            return None
        if (directory / "summary.csv").is_file():
            return "grid_search", status_file
        return ("train", status_file) if (directory / "metrics.jsonl").is_file() else None
    summary = directory / "summary.json"
    if summary.is_file():
        mode = (read_json(summary) or {}).get("mode")
        return (mode, summary) if mode in ("analyze", "lr_finder") else None
    if (directory / "comparison.md").is_file():
        return "compare", directory / "comparison.md"
    return None


def _evaluations(logs_dir: pathlib.Path, task: str) -> list[Run]:
    """The complete evaluations of `task` in `logs_dir/evaluate/`."""
    found = []
    for directory in sorted(logs_dir.glob(f"{evaluation.EVALUATIONS_DIR}/*/")):
        marker = directory / evaluation.SCORES_FILE
        scored = read_json(marker)
        config = read_json(directory / "config.json") or {}
        if config.get("task") == task and _SCORED_KEYS <= (scored or {}).keys():
            found.append(Run("evaluate", directory, config, marker.stat().st_mtime, scored))
    return found


def _compared_task(runs: Runs, directory: pathlib.Path) -> str | None:
    """The task of the first run listed in a compare directory's comparison.csv."""
    with open(directory / "comparison.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            found = runs.find(row["run"])
            if found is not None:
                return (read_json(found / "config.json") or {}).get("task")
    return None


def find_runs(logs_dir: pathlib.Path, task: str) -> Runs:
    """Every finished (and failed) run of `task` directly under `logs_dir`."""
    logs_dir = pathlib.Path(logs_dir)
    found = Runs(logs_dir, {}, [])
    directories = sorted(d for d in logs_dir.iterdir() if d.is_dir()) if logs_dir.is_dir() else []
    for directory in directories:
        config = read_json(directory / "config.json") or {}
        status = read_json(directory / run_files.STATUS_FILE) or {}
        if status.get("status") == "failed" and config.get("task") == task:
            found.failed.append(directory)
        kind_and_marker = _finished_kind(directory)
        if kind_and_marker is None:
            continue
        kind, marker = kind_and_marker
        run_task = _compared_task(found, directory) if kind == "compare" else config.get("task")
        if run_task != task:
            continue
        if kind == "train" and config.get("train", {}).get("overfit_n", 0) > 0:
            kind = "overfit"
        found.finished.setdefault(kind, []).append(
            Run(kind, directory, config, marker.stat().st_mtime)
        )
    if evaluations := _evaluations(logs_dir, task):
        found.finished["evaluate"] = evaluations
    for kind_runs in found.finished.values():
        kind_runs.sort(key=lambda run: run.finished)
    return found
