"""`--mode=report`: the course report (template §0–§12, D1–D11, M0–M9), in English, written from
the runs the other modes left under `<workdir>/logs/`.

Writes `logs/report/<task>/report.md` and its figures in a new `logs/report/<task>/figures-<time>/`
(copies of the runs' PNGs, and the overfit and training curves drawn from `metrics.jsonl`), linked
by relative paths. An earlier report.md is kept as `report-<its time>.md` (its own figures
directory stays with it) before the new one replaces it atomically: nothing is overwritten.

Which runs (`jaxdl/report/discover.py`): for each kind the finished run of the config's task that
finished last; §5 takes the largest grid, §8 the other grids, §7 every compare run. A mode not run
yet leaves its section with the command that produces it. Text that needs the author's judgement
is a `> **TODO (author):** …` placeholder, never written for them.

JSON line: {"mode": "report", "task", "report": path, "sections_filled": n, "sections_missing":
[titles], "figures": n, "previous": the archived earlier report or null}; the 13 template sections
are either filled or missing.
"""

import datetime
import pathlib
import shutil

import ml_collections

from jaxdl.report import commands, discover, environment, sections
from jaxdl.report.context import Context
from jaxdl.report.figures import Figures
from jaxdl.utils import files


def _keep_previous(report: pathlib.Path) -> pathlib.Path | None:
    """Copies an existing report.md to `report-<its mtime>.md` (never over another file)."""
    if not report.is_file():
        return None
    stamp = datetime.datetime.fromtimestamp(report.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    kept, suffix = report.with_name(f"report-{stamp}.md"), 2
    while kept.exists():
        kept, suffix = report.with_name(f"report-{stamp}-{suffix}.md"), suffix + 1
    shutil.copy2(report, kept)
    return kept


def run(config: ml_collections.ConfigDict, workdir: pathlib.Path, args) -> dict:
    del args  # the report reads everything from the logs
    workdir = pathlib.Path(workdir)
    now = datetime.datetime.now()
    report_dir = workdir / "logs" / "report" / config.task
    report_dir.mkdir(parents=True, exist_ok=True)
    figure_dir = files.unique_dir(report_dir, f"figures-{now:%Y%m%d-%H%M%S}")
    ctx = Context(
        task=config.task,
        workdir=workdir,
        report_dir=report_dir,
        runs=discover.find_runs(workdir / "logs", config.task),
        figures=Figures(report_dir, figure_dir),
        defaults=commands.task_defaults(config.task),
        config=commands.json_shaped(config),
    )
    text, parts = sections.render(ctx, environment.environment(), f"{now:%Y-%m-%d %H:%M:%S}")
    report = report_dir / "report.md"
    previous = _keep_previous(report)
    files.write_text_atomic(report, text)
    missing = [part.title for part in parts if part.missing]
    print(
        f"report {report}: {len(parts) - len(missing)} of {len(parts)} sections filled"
        + (f"; not run yet: {', '.join(missing)}" if missing else "")
        + (f"\n  the previous report is kept as {previous}" if previous else "")
    )
    return {
        "mode": "report",
        "task": config.task,
        "report": str(report),
        "sections_filled": len(parts) - len(missing),
        "sections_missing": missing,
        "figures": len(ctx.figures.written),
        "previous": str(previous) if previous else None,
    }
