"""ESC-50 splits on generated data in the official layout: sizes, labels, caching, errors."""

import csv
import dataclasses
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from configs.esc50 import get_config
from jaxdl.data import esc50, locate
from jaxdl.data.cache import SKIPPED_LIST, cache_root
from jaxdl.data.synthetic import make_synthetic_esc50
from jaxdl.errors import ConfigError, DataError
from tests.data.test_download import closed_port_url

NAMES = ("cow", "dog", "frog", "pig", "rooster")  # the first 5 official categories, sorted
FRAMES = 51  # 0.5 s at 16 kHz, hop 160, centred


def _config(**data):
    config = get_config()
    config.data.update(data)
    return config


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """5 classes x 8 clips x 5 folds of 0.5 s: the real per-fold proportions, 10x fewer classes."""
    return make_synthetic_esc50(
        tmp_path_factory.mktemp("data"), num_classes=5, clips_per_class_per_fold=8, clip_seconds=0.5
    )


@pytest.fixture(scope="module")
def splits(layout, tmp_path_factory) -> dict[str, esc50.Split]:
    config = _config(dir=str(layout), cache_dir=str(tmp_path_factory.mktemp("cache")))
    return {name: esc50.load_split(config, name) for name in esc50.SPLITS}


def _categories(folder: Path) -> dict[str, str]:
    with open(folder / esc50.META_CSV, newline="") as listing:
        return {row["filename"]: row["category"] for row in csv.DictReader(listing)}


def test_split_sizes_labels_and_examples(layout, splits):
    # 8 clips per class per fold: 1200/400/400 for 50 classes, 120/40/40 for 5.
    sizes = {name: len(split.source) for name, split in splits.items()}
    assert sizes == {"train": 120, "val": 40, "test": 40}
    categories = _categories(layout)
    for name, folds in (("train", "123"), ("val", "4"), ("test", "5")):
        split = splits[name]
        assert split.name == name and split.class_names == NAMES
        labels = []
        for example in split.source:
            assert example["features"].shape == (64, FRAMES)
            assert example["features"].dtype == np.float32
            assert example["filename"][0] in folds
            assert NAMES[example["label"]] == categories[example["filename"]]
            labels.append(example["label"])
        assert np.bincount(labels).tolist() == [8 * len(folds)] * 5
    np.testing.assert_allclose(splits["val"].source[0]["features"].mean(axis=1), 0.0, atol=1e-4)


def test_source_pickles_and_bounds(splits):
    source = splits["val"].source
    restored = pickle.loads(pickle.dumps(source))
    assert len(restored) == 40 and restored[39]["filename"] == source[39]["filename"]
    np.testing.assert_array_equal(restored[np.int64(3)]["features"], source[3]["features"])
    with pytest.raises(IndexError):
        source[40]


def test_cache_is_reused_and_keyed_by_feature_settings(layout, tmp_path):
    config = _config(dir=str(layout), cache_dir=str(tmp_path))
    esc50.load_split(config, "val")
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "tfds").rglob("*")}
    assert esc50.load_split(config, "val").class_names == NAMES
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "tfds").rglob("*")} == written
    config.features.n_mels = 32
    assert esc50.load_split(config, "val").source[0]["features"].shape == (32, FRAMES)
    assert len(list((tmp_path / "tfds" / "esc50_log_mel").glob("fold4_*"))) == 2


def test_folder_with_only_the_test_fold(layout, tmp_path):
    partial = tmp_path / "ESC-50-master"
    (partial / "meta").mkdir(parents=True)
    shutil.copy(layout / esc50.META_CSV, partial / esc50.META_CSV)
    (partial / "audio").mkdir()
    for wav in (layout / "audio").glob("5-*.wav"):
        shutil.copy(wav, partial / "audio")
    config = _config(dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))  # the parent works too
    split = esc50.load_split(config, "test")
    assert len(split.source) == 40 and split.class_names == NAMES
    missing = (
        r"120 of the 120 clips of data.train_folds=\(1, 2, 3\) cannot be used: "
        r".*audio/1-100000-A-0.wav is listed in .*esc50.csv but missing.*and 115 more"
    )
    with pytest.raises(DataError, match=missing):
        esc50.load_split(config, "train")


def _write_csv(folder: Path, text: str) -> Path:
    (folder / "meta").mkdir(parents=True)
    (folder / esc50.META_CSV).write_text(text)
    return folder


HEADER = "filename,fold,target,category,esc10,src_file,take\n"


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        (
            "filename,target\n1-1-A-0.wav,0\n",
            r"esc50\.csv lacks column\(s\) \['fold', 'category'\]",
        ),
        (
            HEADER + "1-1-A-0.wav,seven,0,dog,True,1,A\n",
            r"esc50\.csv line 2: fold 'seven', expected an integer from 1 to 5",
        ),
        (
            HEADER + "1-1-A-0.wav,1,0,dog,True,1,A\n6-1-A-0.wav,6,0,dog,True,1,A\n",
            r"line 3: fold '6'",
        ),
        (HEADER + "1-1-A-0.wav,1,0,,True,1,A\n", r"line 2: empty filename or category"),
        (HEADER, r"esc50\.csv lists no clips"),
        (
            HEADER + "1-1-A-0.wav,1,0,dog,True,1,A\n../../../x.wav,1,0,dog,True,1,A\n",
            r"esc50\.csv line 3: filename '\.\./\.\./\.\./x\.wav' points outside "
            r".*ESC-50-master/audio; expected a file name inside audio/",
        ),
        (
            HEADER + "/etc/passwd,1,0,dog,True,1,A\n",
            r"line 2: filename '/etc/passwd' points outside",
        ),
        (
            HEADER + "sub/../../meta/esc50.csv,1,0,dog,True,1,A\n",
            r"line 2: filename 'sub/\.\./\.\./meta/esc50\.csv' points outside",
        ),
    ],
)
def test_bad_metadata_is_named(tmp_path, csv_text, message):
    with pytest.raises(DataError, match=message):
        esc50.read_metadata(_write_csv(tmp_path / "ESC-50-master", csv_text))


def test_metadata_with_a_byte_order_mark_and_subfolders(layout, tmp_path):
    """A spreadsheet's UTF-8 export starts with a BOM; a name may go down into audio/ and back."""
    folder = tmp_path / "ESC-50-master"
    shutil.copytree(layout, folder)
    (folder / "audio" / "sub").mkdir()
    text = (folder / esc50.META_CSV).read_text()
    first = text.splitlines()[1].split(",")[0]
    (folder / esc50.META_CSV).write_text(
        "\ufeff" + text.replace(first, f"sub/../{first}", 1), encoding="utf-8"
    )
    records = esc50.read_metadata(folder)
    assert len(records) == 200 and records[0].filename == f"sub/../{first}"
    config = _config(dir=str(folder), cache_dir=str(tmp_path / "cache"))
    assert len(esc50.load_split(config, "train").source) == 120


def test_missing_folder_csv_and_wav_are_named(tmp_path):
    with pytest.raises(DataError, match="nowhere does not exist"):
        esc50.load_split(_config(dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path)), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty/meta/esc50\.csv not found"):
        esc50.load_split(_config(dir=str(tmp_path / "empty"), cache_dir=str(tmp_path)), "train")
    folder = _write_csv(tmp_path / "listed", HEADER + "4-7-A-3.wav,4,3,cow,False,7,A\n")
    with pytest.raises(DataError, match=r"listed/audio/4-7-A-3.wav is listed in .* but missing"):
        esc50.load_split(_config(dir=str(folder), cache_dir=str(tmp_path)), "val")


def test_config_errors_name_the_key(layout, tmp_path):
    unknown = r"data\.train_folds=\(1, 6\): fold\(s\) \[6\] .* present: \[1, 2, 3, 4, 5\]"
    with pytest.raises(ConfigError, match=unknown):
        esc50.load_split(
            _config(dir=str(layout), cache_dir=str(tmp_path), train_folds=(1, 6)), "train"
        )
    with pytest.raises(ConfigError, match=r"data.val_folds=\(\) is empty: the val split needs"):
        esc50.load_split(_config(dir=str(layout), cache_dir=str(tmp_path), val_folds=()), "val")
    with pytest.raises(
        ConfigError, match=r"data.on_corrupt='ignore' is invalid: .*\['error', 'skip'\]"
    ):
        esc50.load_split(
            _config(dir=str(layout), cache_dir=str(tmp_path), on_corrupt="ignore"), "val"
        )
    with pytest.raises(ConfigError, match="data.source='kaggle'"):
        esc50.load_split(_config(source="kaggle", cache_dir=str(tmp_path)), "val")


def _copy(layout: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(layout, tmp_path / "ESC-50-master"))


def _write_wav(path: Path, seconds: float, rate: int = 44100, channels: int = 1) -> None:
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (int(seconds * rate), channels))
    soundfile.write(path, noise.astype(np.float32), rate, subtype="PCM_16")


def _skip_warning(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            lambda wav: wav.write_bytes(wav.read_bytes()[:1000]),  # header intact, samples cut
            r"0\.011 s of audio \(2 feature frames\), expected 0\.500 s \(51 frames\) as 39 of the "
            r"40 readable clips",
        ),
        (lambda wav: _write_wav(wav, 0.3), r"0\.300 s of audio .* expected 0\.500 s"),
        (lambda wav: wav.write_bytes(b"RIFF\x00\x00garbage" * 10), r"cannot read audio"),
        (lambda wav: wav.unlink(), r"is listed in .*meta/esc50.csv but missing"),
    ],
    ids=["truncated", "another-length", "garbage", "absent"],
)
def test_unusable_clip_is_named_before_any_compute_or_skipped_and_counted(
    layout, tmp_path, capsys, damage, problem
):
    folder = _copy(layout, tmp_path)
    damage(folder / "audio" / "4-100130-A-1.wav")
    cache = tmp_path / "cache"
    with pytest.raises(
        DataError,
        match=rf"1 of the 40 clips of data.val_folds=\(4,\) cannot be "
        rf"used: .*4-100130-A-1.wav.*{problem}.*on_corrupt=skip",
    ):
        esc50.load_split(_config(dir=str(folder), cache_dir=str(cache)), "val")
    assert not cache.exists()  # raised from the headers alone: nothing computed
    config = _config(dir=str(folder), cache_dir=str(cache), on_corrupt="skip")
    for _ in range(2):  # computed, then from the cache: reported both times
        split = esc50.load_split(config, "val")
        assert len(split.source) == 39
        warning = _skip_warning(capsys)
        assert "ESC-50 fold 4 clips: 1 of 40 skipped as missing or corrupt" in warning
        assert re.search(problem, warning) and "4-100130-A-1.wav" in warning
    listed = next(cache.rglob(SKIPPED_LIST)).read_text().splitlines()
    assert len(listed) == 1 and "4-100130-A-1.wav" in listed[0]
    assert "4-100130-A-1.wav" not in {example["filename"] for example in split.source}


def test_corrupt_samples_behind_a_valid_header_fail_when_computed(layout, tmp_path, capsys):
    """NaN samples: the header is fine, the clip fails when its features are computed."""
    folder = _copy(layout, tmp_path)
    samples = np.zeros(22050, np.float32)
    samples[100] = np.nan
    soundfile.write(folder / "audio" / "4-100130-A-1.wav", samples, 44100, subtype="FLOAT")
    with pytest.raises(DataError, match=r"4-100130-A-1.wav: the audio holds NaN .*on_corrupt=skip"):
        esc50.load_split(_config(dir=str(folder), cache_dir=str(tmp_path / "cache")), "val")
    config = _config(dir=str(folder), cache_dir=str(tmp_path / "cache"), on_corrupt="skip")
    assert len(esc50.load_split(config, "val").source) == 39
    assert "1 of 40 skipped" in _skip_warning(capsys)


def test_other_sample_rates_and_stereo_are_converted_not_rejected(layout, tmp_path):
    """As the reference: every clip is mixed to mono and resampled to features.sample_rate."""
    folder = _copy(layout, tmp_path)
    _write_wav(folder / "audio" / "4-100130-A-1.wav", 0.5, rate=48000, channels=2)
    _write_wav(folder / "audio" / "4-100131-A-1.wav", 0.5, rate=22050)
    split = esc50.load_split(_config(dir=str(folder), cache_dir=str(tmp_path / "cache")), "val")
    assert len(split.source) == 40
    assert {split.source[i]["features"].shape for i in range(40)} == {(64, FRAMES)}


def test_every_clip_unusable_is_an_error_even_when_skipping(layout, tmp_path):
    folder = _copy(layout, tmp_path)
    for wav in (folder / "audio").glob("5-*.wav"):
        wav.write_bytes(b"not a wav")
    config = _config(dir=str(folder), cache_dir=str(tmp_path / "cache"), on_corrupt="skip")
    with pytest.raises(
        DataError,
        match=r"every clip of fold 5 .* is missing or corrupt, e.g. "
        r".*cannot read audio",
    ):
        esc50.load_split(config, "test")


def test_synthetic_source_generates_into_the_cache(tmp_path):
    config = _config(source="synthetic", cache_dir=str(tmp_path))
    config.data.synthetic.update(num_classes=3, clips_per_class_per_fold=1, clip_seconds=0.5)
    folder = esc50.resolve_data_dir(config)
    assert folder.parent == tmp_path / "synthetic" and (folder / esc50.META_CSV).is_file()
    assert esc50.load_split(config, "test").class_names == ("dog", "pig", "rooster")


def test_auto_source_downloads_and_extracts_once(layout, tmp_path, capsys):
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in [layout / esc50.META_CSV, *(layout / "audio").glob("5-*.wav")]:
            zipped.write(path, f"ESC-50-master/{path.relative_to(layout)}")
    config = _config(url=archive.as_uri(), cache_dir=str(tmp_path / "cache"))
    # A 200-clip archive: without the check of an official download (test_download.py).
    unchecked = dataclasses.replace(esc50.SOURCE, verify=None)
    folder = locate.dataset_dir(config, unchecked)
    assert folder == tmp_path / "cache" / "ESC-50" / "ESC-50-master"
    assert str(tmp_path / "cache") in capsys.readouterr().out
    (tmp_path / "cache" / "downloads" / "ESC-50-master.zip").unlink()
    assert esc50.resolve_data_dir(config) == folder  # no second download (nor check)
    assert len(esc50.load_split(config, "test").source) == 40


def test_offline_download_failure_says_how_to_use_a_local_copy(tmp_path):
    local_copy = r"--config\.data\.dir=/path/to/ESC-50-master.*--config\.data\.source=synthetic"
    with pytest.raises(DataError, match=local_copy):
        esc50.resolve_data_dir(_config(url=closed_port_url(), cache_dir=str(tmp_path)))


def test_cache_root_falls_back_to_env_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_CACHE", str(tmp_path / "env"))
    assert cache_root(_config(cache_dir=str(tmp_path / "set"))) == tmp_path / "set"
    assert cache_root(_config()) == tmp_path / "env"
    monkeypatch.delenv("JAXDL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root(_config()) == tmp_path / ".cache" / "jaxdl"
