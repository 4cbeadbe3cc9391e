"""Figures saved as PNG: confusion matrix, overlaid curves, LR-finder curve.

Figures are built with matplotlib's object API (`Figure` rendered by the Agg canvas), never
pyplot: no GUI backend, no global figure registry to leak into, safe from any thread. Each
PNG is rendered in memory and written atomically.
"""

import dataclasses
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jaxdl.utils.files import write_bytes_atomic

ANNOTATE_MAX_CLASSES = 30  # above this, per-cell numbers are unreadable
_DPI = 100


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def plot_confusion_matrix(
    confusion: np.ndarray, class_names: Sequence[str], path: Path, normalize: bool = True
) -> None:
    """Heat map of a (C, C) confusion matrix (rows true, columns predicted) saved to `path`.

    `normalize` divides each row by its class count (a row with no examples stays 0). The
    figure grows with C (about 0.18 in per class) and tick labels shrink to fit, so 50–200
    classes stay readable when zoomed; cells carry their value only up to 30 classes.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    num_classes = len(class_names)
    if counts.shape != (num_classes, num_classes):
        raise ValueError(f"confusion {counts.shape} does not match {num_classes} class names")
    row_totals = counts.sum(axis=1, keepdims=True)
    values = (
        np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0)
        if normalize
        else counts
    )

    side = min(max(6.0, 0.18 * num_classes + 2.0), 40.0)
    row_points = side * 0.7 / num_classes * 72  # the axes gets about 70% of the figure side
    label_size = min(8.0, 0.75 * row_points)
    figure = _new_figure(side + 1.5, side)
    axes = figure.add_subplot()
    image = axes.imshow(
        values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest"
    )
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = np.arange(num_classes)
    axes.set_xticks(ticks, labels=class_names, rotation=90, fontsize=label_size)
    axes.set_yticks(ticks, labels=class_names, fontsize=label_size)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix" + (" (rows normalised)" if normalize else ""))
    if num_classes <= ANNOTATE_MAX_CLASSES:
        threshold = values.max() / 2
        for (row, col), value in np.ndenumerate(values):
            axes.text(
                col,
                row,
                f"{value:.2f}" if normalize else f"{value:.0f}",
                ha="center",
                va="center",
                fontsize=label_size,
                color="white" if value > threshold else "black",
            )
    _save(figure, path)


# Per series, in turn: line style, width, marker and its size. Each later series is thinner and
# broken, its markers smaller, so a curve drawn over an identical one (a grid member and the same
# config trained alone) leaves the first one visible around and between its dashes.
_SERIES_STYLES = (
    ("-", 3.0, "o", 7.0),
    ("--", 2.0, "s", 5.0),
    (":", 2.0, "^", 4.0),
    ("-.", 1.2, "D", 3.0),
)


def plot_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Axes:
    """Overlaid lines, one per named series of (x, y) points, with a legend, saved to `path`;
    returns the axes drawn (what the figure shows, for tests).

    Whole-number x values (epochs) get whole-number ticks, never 1.25 or 1.5; each series has its
    own colour, line style and marker (`_SERIES_STYLES`), so identical curves stay apart.
    """
    figure = _new_figure(8, 5)
    axes = figure.add_subplot()
    whole = True
    for number, (name, points) in enumerate(series.items()):
        xs, ys = zip(*sorted(points), strict=True) if points else ((), ())
        whole = whole and all(float(x).is_integer() for x in xs)
        style, width, marker, size = _SERIES_STYLES[number % len(_SERIES_STYLES)]
        axes.plot(
            xs,
            ys,
            label=name,
            linestyle=style,
            linewidth=width,
            marker=marker if len(xs) <= 20 else None,
            markersize=size,
        )
    if whole:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)
    return axes


def plot_lr_finder(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float] | None,
    suggested_lr: float | None,
    path: Path,
    window: tuple[float, float] | None = None,
    *,
    rule: str | None = None,
    smoothing: float | None = None,
) -> list[str]:
    """Loss against learning rate on a log x-axis: raw (faint) and smoothed unless None (EMA
    factor `smoothing`, in the legend), the suggested LR marked on the curve (with the `rule`
    that chose it) and the valley `window` (low, high) shaded. Returns the legend's labels,
    what the figure shows.

    The y-axis spans the lowest (raw or smoothed) loss to 1.5× the first smoothed loss, so the
    final divergence does not flatten the informative part of the curves.
    """
    figure = _new_figure(8, 5)
    axes = figure.add_subplot()
    if smoothed is None:
        axes.plot(lrs, losses, label="loss")
        smoothed = losses
    else:
        axes.plot(lrs, losses, alpha=0.35, linewidth=1, label="loss (raw)")
        beta = "" if smoothing is None else f" (EMA β = {smoothing:g})"
        axes.plot(lrs, smoothed, linewidth=2, label=f"smoothed loss{beta}")
    if window is not None:
        axes.axvspan(
            *window, color="green", alpha=0.1, label=f"valley {window[0]:.2e} – {window[1]:.2e}"
        )
    finite = np.isfinite(np.asarray(smoothed, dtype=np.float64))
    if suggested_lr is not None:
        label = f"suggested lr {suggested_lr:.2e}" + (f" ({rule})" if rule else "")
        axes.axvline(suggested_lr, color="red", linestyle="--", label=label)
        at = np.interp(
            np.log(suggested_lr),
            np.log(np.asarray(lrs, dtype=np.float64)[finite]),
            np.asarray(smoothed, dtype=np.float64)[finite],
        )
        axes.plot([suggested_lr], [at], "o", color="red")
    axes.set_xscale("log")
    curve = np.asarray(smoothed, dtype=np.float64)[finite]
    raw = np.asarray(losses, dtype=np.float64)
    low = min(curve.min(initial=np.inf), raw[np.isfinite(raw)].min(initial=np.inf))
    if curve.size and curve[0] > low:
        margin = 0.05 * (curve[0] - low)
        axes.set_ylim(low - margin, min(curve.max(), 1.5 * curve[0]) + margin)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("loss")
    axes.set_title("LR finder")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    _save(figure, path)
    return [text.get_text() for text in axes.get_legend().get_texts()]


def plot_grouped_bars(
    values: Mapping[str, Sequence[float]],
    categories: Sequence[str],
    path: Path,
    title: str,
    ylabel: str,
) -> None:
    """One group of bars per category, one bar per series (e.g. per split), with a legend.

    `values[series]` holds one value per category. The figure widens with the number of bars
    (up to 40 in) and the tick labels shrink, so 200 classes stay legible when zoomed.
    """
    series = list(values)
    num_categories = len(categories)
    width = min(max(6.0, 0.04 * num_categories * len(series) + 2.0), 40.0)
    figure = _new_figure(width, 4.5)
    axes = figure.add_subplot()
    positions = np.arange(num_categories)
    bar_width = 0.8 / max(len(series), 1)
    for k, name in enumerate(series):
        heights = np.asarray(values[name], dtype=np.float64)
        if heights.shape != (num_categories,):
            raise ValueError(
                f"series {name!r} has {heights.shape} values for {num_categories} categories"
            )
        axes.bar(
            positions + (k - (len(series) - 1) / 2) * bar_width, heights, bar_width, label=name
        )
    label_size = min(8.0, max(2.0, (width - 1.0) * 0.7 / max(num_categories, 1) * 72))
    axes.set_xticks(positions, labels=categories, rotation=90, fontsize=label_size)
    axes.set_xlim(-0.6, num_categories - 0.4)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach the top
    _save(figure, path)


@dataclasses.dataclass(frozen=True)
class Panel:
    """One cell of `plot_panel_grid`.

    kind "image": uint8 (H, W, 3); "spectrogram": float (bands, frames), low bands at the bottom;
    "waveform": float (samples,) drawn against seconds at `sample_rate` Hz.
    """

    kind: str
    data: np.ndarray
    title: str
    sample_rate: float = 0.0


def plot_panel_grid(rows: Sequence[Sequence[Panel]], path: Path, title: str) -> None:
    """A grid of panels (one row per example, e.g. original → augmented → model input)."""
    num_rows, num_cols = len(rows), max(len(row) for row in rows)
    figure = _new_figure(3.2 * num_cols, 2.6 * num_rows + 0.4)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            axes = figure.add_subplot(num_rows, num_cols, r * num_cols + c + 1)
            if panel.kind == "image":
                axes.imshow(panel.data, interpolation="nearest")
                axes.set_axis_off()
            elif panel.kind == "spectrogram":
                axes.imshow(
                    panel.data, origin="lower", aspect="auto", cmap="magma", interpolation="nearest"
                )
                axes.set_xlabel("frame", fontsize=7)
                axes.set_ylabel("mel band", fontsize=7)
                axes.tick_params(labelsize=6)
            elif panel.kind == "waveform":
                axes.plot(np.arange(len(panel.data)) / panel.sample_rate, panel.data, linewidth=0.4)
                axes.set_xlabel("seconds", fontsize=7)
                axes.tick_params(labelsize=6)
            else:
                raise ValueError(
                    f"panel kind must be image, spectrogram or waveform: {panel.kind!r}"
                )
            axes.set_title(panel.title, fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)
