"""The generated ESC-50 stand-in: official layout, caching, atomicity, and separable classes."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from configs.esc50 import get_config
from jaxdl.data import synthetic
from jaxdl.data.audio import clip_features
from jaxdl.errors import ConfigError


def _rows(folder: Path) -> list[dict]:
    with open(folder / "meta" / "esc50.csv", newline="") as listing:
        return list(csv.DictReader(listing))


def _small(root: Path, **overrides) -> Path:
    return synthetic.make_synthetic_esc50(
        root, **{"num_classes": 3, "clips_per_class_per_fold": 1, **overrides}
    )


def test_official_layout(tmp_path):
    folder = _small(tmp_path, num_classes=12, clips_per_class_per_fold=2, clip_seconds=0.5)
    with open(folder / "meta" / "esc50.csv", newline="") as listing:
        assert listing.readline().strip() == "filename,fold,target,category,esc10,src_file,take"
    rows = _rows(folder)
    assert len(rows) == 12 * 2 * 5
    assert {row["fold"] for row in rows} == {"1", "2", "3", "4", "5"}
    for row in rows:
        name = re.fullmatch(r"(\d)-(\d+)-([A-Z])-(\d+)\.wav", row["filename"])
        assert name.groups() == (row["fold"], row["src_file"], row["take"], row["target"])
        assert row["category"] == synthetic.CATEGORIES[int(row["target"])]
        assert row["esc10"] == str(row["category"] in synthetic.ESC10)
        info = soundfile.info(folder / "audio" / row["filename"])
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
        assert info.frames == 22050
    listed = sorted(row["filename"] for row in rows)
    assert sorted(path.name for path in (folder / "audio").iterdir()) == listed
    assert synthetic.CATEGORIES[:3] == ("dog", "rooster", "pig")
    assert synthetic.CATEGORIES[49] == "hand_saw" and len(set(synthetic.CATEGORIES)) == 50


def test_cached_and_deterministic(tmp_path):
    first = _small(tmp_path / "a")
    wav = first / "audio" / _rows(first)[0]["filename"]
    written = wav.stat().st_mtime_ns
    assert _small(tmp_path / "a") == first
    assert wav.stat().st_mtime_ns == written  # not regenerated
    assert (_small(tmp_path / "b") / "audio" / wav.name).read_bytes() == wav.read_bytes()
    other_seed = _small(tmp_path / "a", seed=1)
    assert other_seed != first
    assert (other_seed / "audio" / wav.name).read_bytes() != wav.read_bytes()


def test_interrupted_generation_leaves_nothing_and_is_redone(tmp_path, monkeypatch):
    real_clip, calls = synthetic._clip, []

    def interrupted_clip(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_clip(*args)

    monkeypatch.setattr(synthetic, "_clip", interrupted_clip)
    with pytest.raises(KeyboardInterrupt):
        _small(tmp_path)
    assert [path.name for path in tmp_path.iterdir() if path.suffix != ".lock"] == []
    monkeypatch.setattr(synthetic, "_clip", real_clip)
    folder = _small(tmp_path)
    assert (folder / synthetic.COMPLETE_MARKER).is_file() and len(_rows(folder)) == 15


@pytest.mark.parametrize(
    ("key", "value"), [("num_classes", 51), ("clips_per_class_per_fold", 0), ("clip_seconds", 0.0)]
)
def test_bad_parameters_name_the_config_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=f"data.synthetic.{key}={value}"):
        _small(tmp_path, **{key: value})


def _texture_summary(features: np.ndarray) -> np.ndarray:
    """Position-invariant statistics, as a CNN's global average pooling sees: autocorrelations of
    the standardised log-mel over time and over frequency, and the skew of its time derivative."""
    x = features - features.mean()
    time_ac = [np.mean(x[:, lag:] * x[:, :-lag]) for lag in range(1, 40)]
    freq_ac = [np.mean(x[lag:] * x[:-lag]) for lag in range(1, 40)]
    rise = np.diff(features, axis=1)
    return np.array([*time_ac, *freq_ac, np.mean(rise**3) / np.mean(rise**2) ** 1.5])


def test_classes_separable_by_position_invariant_texture(tmp_path):
    settings = get_config().features
    # 25 classes (every rhythm x spectrum, decaying pulses), one 1 s clip per class and fold.
    folder = synthetic.make_synthetic_esc50(tmp_path, num_classes=25, clips_per_class_per_fold=1)
    rows = _rows(folder)
    summaries = np.stack(
        [
            _texture_summary(clip_features(folder / "audio" / row["filename"], settings))
            for row in rows
        ]
    )
    targets = np.array([int(row["target"]) for row in rows])
    train = np.array([row["fold"] in "123" for row in rows])
    scale = summaries[train].std(axis=0)
    centroids = np.stack([summaries[train & (targets == c)].mean(axis=0) for c in range(25)])
    distances = (((summaries[~train, None] - centroids[None]) / scale) ** 2).sum(-1)
    accuracy = (distances.argmin(axis=1) == targets[~train]).mean()
    assert accuracy > 0.35  # nearest centroid from 3 clips per class (0.54 measured); chance 0.04
