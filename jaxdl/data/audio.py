"""Log-mel features of an audio clip, defined exactly as the reference's torchaudio pipeline.

Reference (docs/reference-projects.md#esc-50): mono mix, resample to 16 kHz with
`torchaudio.functional.resample` (ported in `resample`), `MelSpectrogram(n_fft=400,
win_length=400, hop_length=160, n_mels=64, power=2)` with torchaudio's defaults (periodic Hann
window, centred frames with reflect padding, f_min 0, f_max 8 kHz, HTK mel scale, no filter
normalisation), `AmplitudeToDB` (10·log10, clamped at 1e-10, no top_db), then per-band
standardisation over time. A 5 s clip gives (64, 501) frames.
"""

import functools
import math
import struct
from pathlib import Path

import librosa
import ml_collections
import numpy as np
import scipy.sparse
import soundfile

from jaxdl.errors import DataError

STD_FLOOR = 1e-6


def load_waveform(path: Path, sample_rate: int) -> np.ndarray:
    """The clip mixed to mono (mean of channels) at `sample_rate` Hz: float32 (samples,).

    Raises DataError naming the file if it is missing, unreadable, truncated or empty.
    """
    path = Path(path)
    try:
        missing = _missing_sample_bytes(path)
        if missing:
            raise DataError(f"{path}: truncated WAV file ({missing} bytes of samples missing)")
        samples, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, OSError) as err:
        raise DataError(f"{path}: cannot read audio ({err})") from err
    if samples.shape[0] == 0:
        raise DataError(f"{path}: the audio file holds no samples")
    mono = samples.mean(axis=1)
    if file_rate != sample_rate:
        mono = resample(mono, file_rate, sample_rate)
    if not np.isfinite(mono).all():
        raise DataError(f"{path}: the audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(
    waveform: np.ndarray,
    orig_sr: int,
    target_sr: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> np.ndarray:
    """`torchaudio.functional.resample` (its default "sinc_interp_hann"): float32 (samples,) ->
    float32 (ceil(samples · target_sr / orig_sr),), so features equal the reference's.

    Band-limited sinc interpolation, y[n] = Σ_i x[i]·h(i/orig - n/target), with the sinc cut at
    `rolloff` × the lower Nyquist rate and a Hann window spanning `lowpass_filter_width` zero
    crossings each side. With the rates reduced by their gcd (44.1 → 16 kHz: 441 → 160) output
    phase p of every block uses one filter row, so it runs as one matrix product (~5 ms per 5 s
    clip). Sums in float64 (torchaudio's float32 convolution sums differ by ~1e-7).
    """
    if orig_sr == target_sr:
        return waveform
    gcd = math.gcd(orig_sr, target_sr)
    orig, new = orig_sr // gcd, target_sr // gcd
    kernel, width = _sinc_resample_kernel(orig, new, lowpass_filter_width, rolloff)
    length = waveform.size
    padded = np.pad(waveform.astype(np.float64), (width, width + orig))
    # Block b holds outputs b·new … b·new + new - 1, read from padded[b·orig : b·orig + K].
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    resampled = (windows @ kernel.T).reshape(-1)
    return resampled[: math.ceil(new * length / orig)].astype(np.float32)


@functools.lru_cache(maxsize=8)
def _sinc_resample_kernel(
    orig: int, new: int, lowpass_filter_width: int, rolloff: float
) -> tuple[np.ndarray, int]:
    """(new, 2·width + orig) filter rows, one per output phase, and the padding `width`.

    torchaudio's `_get_sinc_resample_kernel` for a float32 waveform (the reference's), rates
    already divided by their gcd, in its order of float32 operations: its time grid rounded to
    float32 moves the filter by up to ~1e-5, which shows in the near-empty top mel bands, so the
    filter is reproduced rather than computed exactly.
    """
    f32 = np.float32
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    offsets = np.arange(-width, width + orig, dtype=f32) / f32(orig)
    t = (np.arange(0, -new, -1, dtype=f32)[:, None] / f32(new) + offsets[None, :]) * f32(base)
    t = np.clip(t, f32(-lowpass_filter_width), f32(lowpass_filter_width))
    window = np.cos(t * f32(math.pi) / f32(lowpass_filter_width) / f32(2)) ** 2
    t = t * f32(math.pi)
    sinc = np.divide(np.sin(t), t, out=np.ones_like(t), where=t != 0)
    return sinc * (window * f32(base / orig)), width


def _missing_sample_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE header promises in its `data` chunk but the file lacks (0 if complete).

    libsndfile silently reads a truncated WAV as a shorter one; this catches it. Other formats
    return 0 and are left to libsndfile.
    """
    size = path.stat().st_size
    with open(path, "rb") as wav:
        header = wav.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        offset = 12
        while offset + 8 <= size:
            wav.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", wav.read(8))
            if chunk_id == b"data":
                streamed = chunk_size == 0xFFFFFFFF  # size unknown when written
                return 0 if streamed else max(0, offset + 8 + chunk_size - size)
            offset += 8 + chunk_size + (chunk_size & 1)
    return 0


def log_mel_spectrogram(waveform: np.ndarray, settings: ml_collections.ConfigDict) -> np.ndarray:
    """Power mel spectrogram in dB: float32 (n_mels, 1 + samples // hop_length).

    `settings` is `config.features` (sample_rate, n_fft, win_length, hop_length, n_mels, f_min,
    f_max, amin). librosa's defaults differ from torchaudio's in pad mode (constant) and mel
    scale (Slaney, normalised filters), so every choice is passed explicitly.
    """
    spectrum = librosa.stft(
        waveform,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.win_length,
        window="hann",  # periodic, as torch.hann_window
        center=True,
        pad_mode="reflect",
    )
    filterbank = _mel_filterbank(
        settings.sample_rate, settings.n_fft, settings.n_mels, settings.f_min, settings.f_max
    )
    power = filterbank @ (spectrum.real**2 + spectrum.imag**2)
    return (10.0 * np.log10(np.maximum(power, settings.amin))).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float
) -> scipy.sparse.csr_array:
    """HTK-scale triangular filters, not area-normalised: float32 (n_mels, 1 + n_fft // 2).

    Sparse (each filter spans a few bins: 391 of 12864 weights are non-zero) and built once.
    librosa.feature.melspectrogram rebuilds it per call and applies it densely through BLAS,
    whose threads made that product up to ~60x slower on a busy 2-core machine.
    """
    weights = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True, norm=None
    )
    return scipy.sparse.csr_array(weights)


def standardize_per_band(db: np.ndarray) -> np.ndarray:
    """Each mel band centred and scaled over time: (x - mean) / max(unbiased std, 1e-6).

    (n_mels, T) -> (n_mels, T) float32; the floor keeps a constant band at 0 instead of NaN.
    """
    mean = db.mean(axis=1, keepdims=True)
    std = db.std(axis=1, ddof=1, keepdims=True)
    return ((db - mean) / np.maximum(std, STD_FLOOR)).astype(np.float32)


def clip_features(path: Path, settings: ml_collections.ConfigDict) -> np.ndarray:
    """The model input of one clip: float32 (n_mels, T), standardised if `settings.standardize`."""
    waveform = load_waveform(path, settings.sample_rate)
    if waveform.size <= settings.n_fft // 2:
        raise DataError(
            f"{path}: {waveform.size} samples at {settings.sample_rate} Hz is shorter than half an "
            f"analysis window (n_fft={settings.n_fft})"
        )
    db = log_mel_spectrogram(waveform, settings)
    return standardize_per_band(db) if settings.standardize else db
