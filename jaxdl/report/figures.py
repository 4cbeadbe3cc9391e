"""The report's figures: copies of the runs' PNGs and the curves the report draws from
`metrics.jsonl`, all in one directory per report (`figures-<time>/` next to report.md) and linked
by relative paths, so a report stays whole when a later one replaces report.md."""

import os
import pathlib
import shutil
from collections.abc import Sequence

from jaxdl.utils import plots, run_metrics


class Figures:
    def __init__(self, report_dir: pathlib.Path, directory: pathlib.Path):
        self.report_dir, self.directory = pathlib.Path(report_dir), pathlib.Path(directory)
        self.written: list[pathlib.Path] = []

    def _link(self, path: pathlib.Path) -> str:
        return pathlib.Path(os.path.relpath(path, self.report_dir)).as_posix()

    def copy(self, source: pathlib.Path, name: str) -> str:
        """Copies a run's figure as `name`; returns its link from report.md."""
        target = self.directory / name
        shutil.copyfile(source, target)
        self.written.append(target)
        return self._link(target)

    def curves(
        self, records: Sequence[dict], tags: Sequence[str], name: str, title: str, ylabel: str
    ) -> str:
        """Per-epoch curves of `tags` (e.g. train/loss, val/loss) from metrics.jsonl records,
        drawn as `name`; returns its link from report.md."""
        target = self.directory / name
        series = {tag: run_metrics.curve(records, tag) for tag in tags}
        plots.plot_curves(series, target, title, "epoch", ylabel)
        self.written.append(target)
        return self._link(target)


def image(link: str, alt: str) -> str:
    """The markdown that embeds the figure at `link`."""
    return f"![{alt}]({link})"
