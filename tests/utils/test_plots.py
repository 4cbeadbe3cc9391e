"""The figures are valid PNGs of sensible size, and show their data."""

import numpy as np
from PIL import Image

from jaxdl.utils.plots import plot_confusion_matrix, plot_curves, plot_lr_finder


def _png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert 300 <= image.width <= 4000 and 300 <= image.height <= 4000
        return np.asarray(image.convert("RGB"))


def test_confusion_matrix_png_depends_on_the_matrix(tmp_path):
    names = [f"class_{i}" for i in range(5)]
    diagonal = np.diag([3, 4, 5, 6, 7])
    shifted = np.roll(diagonal, 1, axis=1)
    plot_confusion_matrix(diagonal, names, tmp_path / "a.png")
    plot_confusion_matrix(shifted, names, tmp_path / "b.png", normalize=False)
    assert not np.array_equal(_png(tmp_path / "a.png"), _png(tmp_path / "b.png"))


def test_confusion_matrix_without_cell_numbers_grows_with_classes(tmp_path):
    confusion = np.random.default_rng(0).integers(0, 5, size=(60, 60))
    names = [f"{i:03d}.Some_bird_species" for i in range(60)]
    plot_confusion_matrix(confusion, names, tmp_path / "cm.png")
    assert _png(tmp_path / "cm.png").shape[0] >= 1000


def test_curves_and_lr_finder_pngs(tmp_path):
    plot_curves(
        {"train/loss": [(1, 2.0), (2, 1.5), (3, 1.2)], "val/loss": [(3, 1.4), (1, 2.1), (2, 1.6)]},
        tmp_path / "loss.png",
        title="loss",
        xlabel="epoch",
        ylabel="cross-entropy",
    )
    lrs = np.logspace(-6, 0, 50)
    losses = np.concatenate([np.linspace(3.9, 1.0, 40), np.linspace(2.0, 50.0, 9), [np.nan]])
    plot_lr_finder(lrs, losses, losses, 1e-3, tmp_path / "lr.png")
    _png(tmp_path / "loss.png")
    _png(tmp_path / "lr.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "lr.png"]


def test_lr_finder_png_raw_only_with_the_window_shaded(tmp_path):
    lrs = np.logspace(-6, 0, 50)
    losses = np.concatenate([np.linspace(3.9, 1.0, 40), np.linspace(2.0, 50.0, 10)])
    plot_lr_finder(lrs, losses, None, 1e-3, tmp_path / "plain.png")
    plot_lr_finder(lrs, losses, None, 1e-3, tmp_path / "window.png", window=(1e-4, 1e-2))
    plain, window = _png(tmp_path / "plain.png"), _png(tmp_path / "window.png")
    assert plain.shape == window.shape
    # The shaded band changes many pixels (the legend entry alone would change far fewer).
    assert (np.abs(plain.astype(int) - window.astype(int)).sum(axis=-1) > 0).mean() > 0.05


def test_epoch_curves_have_whole_epoch_ticks_and_identical_runs_both_show(tmp_path):
    """Two epochs once gave ticks 1.0, 1.2 … 2.0; a grid member and the same config trained alone
    (identical numbers) were one visible line."""
    same = [(1, 2.0), (2, 1.5)]
    axes = plot_curves(
        {"grid member": same, "trained alone": same, "third": [(1, 2.2), (2, 1.9)]},
        tmp_path / "val_loss.png",
        title="val/loss",
        xlabel="epoch",
        ylabel="loss",
    )
    _png(tmp_path / "val_loss.png")
    low, high = axes.get_xlim()
    shown = [t for t in axes.get_xticks() if low <= t <= high]
    assert shown == [1.0, 2.0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "grid member",
        "trained alone",
        "third",
    ]
    first, second, third = axes.get_lines()
    np.testing.assert_array_equal(first.get_ydata(), second.get_ydata())
    # The later of two identical curves is thinner and dashed, its markers smaller and of
    # another shape: the first shows around it and between its dashes.
    assert (first.get_linestyle(), second.get_linestyle()) == ("-", "--")
    assert first.get_linewidth() > second.get_linewidth()
    assert first.get_markersize() > second.get_markersize()
    assert first.get_marker() != second.get_marker()
    assert len({line.get_color() for line in (first, second, third)}) == 3
