"""Resampling and log-mel features against independent numpy implementations of the reference
definitions (torchaudio's), and against torchaudio itself when it is importable."""

import numpy as np
import pytest
import soundfile

from configs.esc50 import get_config
from jaxdl.data import audio
from jaxdl.errors import DataError

SETTINGS = get_config().features


def _two_sines_and_noise(seconds: float = 5.0, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(0).standard_normal(t.size)
    signal = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t) + 0.05 * noise
    return signal.astype(np.float32)


def _reference_log_mel(x, sample_rate=16000, n_fft=400, hop=160, n_mels=64, f_max=8000.0):
    """torchaudio MelSpectrogram + AmplitudeToDB written from their definitions, in float64."""
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    num_frames = 1 + (padded.size - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(num_frames)])
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(frames * periodic_hann, axis=1)) ** 2  # (frames, bins)
    top_mel = 2595.0 * np.log10(1.0 + f_max / 700.0)
    edges = 700.0 * (10 ** (np.linspace(0.0, top_mel, n_mels + 2) / 2595.0) - 1.0)  # f_min = 0
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    filters = np.stack(
        [
            np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
            for lo, mid, hi in zip(edges[:-2], edges[1:-1], edges[2:], strict=True)
        ]
    )
    return 10.0 * np.log10(np.maximum(filters @ power.T, 1e-10))


def test_log_mel_matches_independent_definition():
    x = _two_sines_and_noise()
    ours = audio.log_mel_spectrogram(x, SETTINGS)
    assert ours.shape == (64, 501) and ours.dtype == np.float32
    # atol: relative error is meaningless where the level is ~0 dB.
    np.testing.assert_allclose(ours, _reference_log_mel(x), rtol=1e-4, atol=1e-4)


def test_log_mel_matches_torchaudio():
    torchaudio = pytest.importorskip("torchaudio")  # first: importing torch alone takes seconds
    import torch

    x = _two_sines_and_noise()
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=64, power=2.0
    )
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power")
    expected = to_db(mel(torch.from_numpy(x))).numpy()
    ours = audio.log_mel_spectrogram(x, SETTINGS)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)


def _direct_sinc_resample(
    x: np.ndarray, orig_sr: int, new_sr: int, zeros: int = 6, rolloff: float = 0.99
) -> np.ndarray:
    """torchaudio's sinc_interp_hann from its formula, output sample by output sample, float64:
    y[n] = sum_i x[i] c/orig_sr sinc(z) cos^2(pi z / (2 zeros)), z = c (i/orig_sr - n/new_sr),
    |z| <= zeros, c = rolloff * min(orig_sr, new_sr); x is zero outside the clip."""
    cutoff = rolloff * min(orig_sr, new_sr)
    n = np.arange(int(np.ceil(x.size * new_sr / orig_sr)))[:, None]
    first = np.ceil((n / new_sr - zeros / cutoff) * orig_sr).astype(int)
    i = first + np.arange(int(2 * zeros * orig_sr / cutoff) + 2)[None, :]
    z = cutoff * (i / orig_sr - n / new_sr)
    taps = np.where(
        np.abs(z) <= zeros,
        cutoff / orig_sr * np.sinc(z) * np.cos(np.pi * z / (2 * zeros)) ** 2,
        0.0,
    )
    inside = (i >= 0) & (i < x.size)
    return (np.where(inside, x.astype(np.float64)[np.clip(i, 0, x.size - 1)], 0.0) * taps).sum(1)


@pytest.mark.parametrize("samples", [44100, 1000, 441, 7])
def test_resample_matches_direct_sinc_interpolation(samples):
    x = np.random.default_rng(2).uniform(-1, 1, samples).astype(np.float32)
    ours = audio.resample(x, 44100, 16000)
    expected = _direct_sinc_resample(x, 44100, 16000)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    # Not exact: like torchaudio on a float32 clip, the filter is computed in float32 (~1e-5 off).
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-5)
    assert np.abs(ours - expected).mean() < 3e-6


def test_resample_keeps_the_passband_and_removes_aliases():
    t = np.arange(44100) / 44100
    tone = lambda hz: np.sin(2 * np.pi * hz * t).astype(np.float32)  # noqa: E731
    kept, alias = (
        audio.resample(tone(1000), 44100, 16000),
        audio.resample(tone(12000), 44100, 16000),
    )
    middle = slice(500, -500)  # away from the zero-padded edges
    assert np.abs(kept[middle]).max() == pytest.approx(1.0, abs=1e-3)
    # 12 kHz would fold onto 4 kHz at 16 kHz; the 6-zero Hann-windowed sinc leaves ~-55 dB.
    assert np.abs(alias[middle]).max() < 3e-3


def test_clip_features_match_torchaudio_on_a_wav(tmp_path):
    torchaudio = pytest.importorskip("torchaudio")
    import torch

    path = tmp_path / "1-100032-A-0.wav"
    soundfile.write(
        path,
        _two_sines_and_noise(5.0, 44100)
        + 0.05 * np.random.default_rng(3).standard_normal(220500).astype(np.float32),
        44100,
        subtype="PCM_16",
    )
    # The reference pipeline: soundfile float32, mono mean, torchaudio resample / mel / dB, then
    # per-band standardisation with torch's unbiased std clamped at 1e-6.
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    waveform = torch.from_numpy(data.T).mean(dim=0, keepdim=True)
    resampled = torchaudio.functional.resample(waveform, orig_freq=rate, new_freq=16000)
    np.testing.assert_allclose(audio.load_waveform(path, 16000), resampled[0].numpy(), atol=1e-6)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=64, power=2.0
    )
    db = torchaudio.transforms.AmplitudeToDB(stype="power")(mel(resampled))
    expected = (db - db.mean(-1, keepdim=True)) / db.std(-1, keepdim=True).clamp_min(1e-6)
    np.testing.assert_allclose(
        audio.clip_features(path, SETTINGS), expected[0].numpy(), rtol=1e-4, atol=1e-4
    )


def test_standardize_per_band_zero_mean_unit_unbiased_std():
    db = np.random.default_rng(1).normal(-30.0, 7.0, size=(64, 501)).astype(np.float32)
    db[3] = -100.0  # a constant band: the std floor keeps it finite
    out = audio.standardize_per_band(db)
    assert out.shape == (64, 501) and out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    varying = np.arange(64) != 3
    np.testing.assert_allclose(out[varying].std(axis=1, ddof=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)


def test_load_waveform_mixes_to_mono_and_resamples(tmp_path):
    t = np.arange(44100 * 2) / 44100
    left, right = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t + 0.5)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, 0.4 * np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    waveform = audio.load_waveform(path, 16000)
    assert waveform.shape == (32000,) and waveform.dtype == np.float32
    peak_hz = np.fft.rfftfreq(waveform.size, 1 / 16000)[np.abs(np.fft.rfft(waveform)).argmax()]
    assert peak_hz == pytest.approx(1000, abs=1)
    mono_amplitude = 0.4 * np.cos(0.25)  # the mean of two unit sines 0.5 rad apart
    assert np.abs(waveform[1000:-1000]).max() == pytest.approx(mono_amplitude, rel=0.02)


def test_clip_features_of_a_five_second_clip(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, _two_sines_and_noise(5.0, 44100), 44100, subtype="PCM_16")
    features = audio.clip_features(path, SETTINGS)
    assert features.shape == (64, 501) and features.dtype == np.float32
    np.testing.assert_allclose(features.mean(axis=1), 0.0, atol=1e-4)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda wav: wav[: len(wav) // 2], id="truncated"),
        pytest.param(lambda wav: wav[:30], id="header-only"),
        pytest.param(lambda wav: b"not a wav file" * 100, id="garbage"),
        pytest.param(lambda wav: b"", id="empty"),
    ],
)
def test_unreadable_wav_raises_data_error_naming_it(tmp_path, damage):
    good = tmp_path / "good.wav"
    soundfile.write(good, np.zeros(44100, np.float32), 44100, subtype="PCM_16")
    bad = tmp_path / "1-100032-A-0.wav"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(DataError, match="1-100032-A-0.wav"):
        audio.load_waveform(bad, 16000)


def test_non_finite_samples_raise(tmp_path):
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.0, np.nan, 0.1] * 1000, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="nan.wav: .*NaN"):
        audio.load_waveform(path, 16000)


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="absent.wav"):
        audio.load_waveform(tmp_path / "absent.wav", 16000)


def test_clip_shorter_than_half_a_window_raises(tmp_path):
    path = tmp_path / "tiny.wav"
    soundfile.write(path, np.zeros(100, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match="tiny.wav.*n_fft=400"):
        audio.clip_features(path, SETTINGS)
