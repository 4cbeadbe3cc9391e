"""A generated stand-in for ESC-50 in the official layout, so every mode runs offline.

`meta/esc50.csv` (official columns) and `audio/{fold}-{src_id}-{take}-{target}.wav` (44.1 kHz,
16-bit mono), the real category names with their official target ids, 5 folds.

Each class is a local time-frequency texture that survives the model's per-band standardisation
(which removes stationary band energy) and global average pooling (which removes position):
trains of sound pulses whose (pulse length, period), spectrum (pure tone, harmonic stack, or
noise band 6, 16 or 40 mel bands wide) and envelope direction (decay or swell) depend on the
class: 5 x 5 x 2 = 50 textures. Each clip draws its own frequency position, timing offset and
jitter, loudness and background-noise level, so a class cannot be memorised from one pattern.
"""

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxdl.data.cache import atomic_directory, build_once, fingerprint
from jaxdl.errors import ConfigError
from jaxdl.utils.files import write_csv_atomic

CATEGORIES = (
    "dog",
    "rooster",
    "pig",
    "cow",
    "frog",
    "cat",
    "hen",
    "insects",
    "sheep",
    "crow",
    "rain",
    "sea_waves",
    "crackling_fire",
    "crickets",
    "chirping_birds",
    "water_drops",
    "wind",
    "pouring_water",
    "toilet_flush",
    "thunderstorm",
    "crying_baby",
    "sneezing",
    "clapping",
    "breathing",
    "coughing",
    "footsteps",
    "laughing",
    "brushing_teeth",
    "snoring",
    "drinking_sipping",
    "door_wood_knock",
    "mouse_click",
    "keyboard_typing",
    "door_wood_creaks",
    "can_opening",
    "washing_machine",
    "vacuum_cleaner",
    "clock_alarm",
    "clock_tick",
    "glass_breaking",
    "helicopter",
    "chainsaw",
    "siren",
    "car_horn",
    "engine",
    "train",
    "church_bells",
    "airplane",
    "fireworks",
    "hand_saw",
)  # official target order 0..49
ESC10 = frozenset(
    {
        "dog",
        "rooster",
        "rain",
        "sea_waves",
        "crackling_fire",
        "crying_baby",
        "sneezing",
        "clock_tick",
        "helicopter",
        "chainsaw",
    }
)
CSV_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
SAMPLE_RATE = 44100
NUM_FOLDS = 5
COMPLETE_MARKER = ".complete"
_LAYOUT_VERSION = 1  # part of the folder name: bump when the generated sound changes

# Texture of class `target`: rhythm target % 5, spectrum (target // 5) % 5, envelope target // 25.
_RHYTHMS_MS = ((16, 40), (28, 70), (48, 120), (80, 200), (136, 340))  # (pulse length, period)
# (kind, width in mel bands)
_SPECTRA = (("tone", 0), ("harmonics", 0), ("noise", 6), ("noise", 16), ("noise", 40))
_HARMONICS = (1, 2, 3)
_ENVELOPE_DB = 30.0  # level change across one pulse: "decay" falls by it, "swell" rises by it
_ATTACK_S = 0.002

# Frequencies are placed on the features' HTK mel scale (64 bands up to 8 kHz), within bands 3..60.
_MEL_TOP = 2595.0 * np.log10(1.0 + 8000.0 / 700.0)
_MEL_BAND = _MEL_TOP / 65
_LOWEST_BAND, _HIGHEST_BAND = 3.0, 60.0


def make_synthetic_esc50(
    root: Path,
    *,
    num_classes: int = 50,
    clips_per_class_per_fold: int = 2,
    clip_seconds: float = 1.0,
    seed: int = 0,
) -> Path:
    """Generates (once) and returns the dataset folder (holding `meta/` and `audio/`) under `root`.

    The folder is named by the parameters (`generated_folder`); an existing complete folder is
    returned at once. The parameters are `config.data.synthetic`; a bad value raises ConfigError
    naming its key.
    """
    if not 1 <= num_classes <= len(CATEGORIES):
        raise ConfigError(
            f"data.synthetic.num_classes={num_classes}; expected 1..{len(CATEGORIES)}"
        )
    if clips_per_class_per_fold < 1:
        raise ConfigError(
            f"data.synthetic.clips_per_class_per_fold={clips_per_class_per_fold}; expected >= 1"
        )
    if clip_seconds < 0.1:
        raise ConfigError(f"data.synthetic.clip_seconds={clip_seconds}; expected >= 0.1")
    clip_seconds = float(clip_seconds)
    folder = generated_folder(
        root,
        f"esc50-v{_LAYOUT_VERSION}-{num_classes}c-{clips_per_class_per_fold}x{NUM_FOLDS}"
        f"-{clip_seconds:g}s-seed{seed}",
        num_classes=num_classes,
        clips_per_class_per_fold=clips_per_class_per_fold,
        clip_seconds=clip_seconds,
        seed=seed,
    )

    def write(building: Path) -> None:
        (building / "audio").mkdir()
        rows = []
        for fold in range(1, NUM_FOLDS + 1):
            for target in range(num_classes):
                for take in range(clips_per_class_per_fold):
                    src_id = 100000 + len(rows)
                    filename = f"{fold}-{src_id}-A-{target}.wav"
                    rng = np.random.default_rng([seed, fold, target, take])
                    clip = _clip(target, rng, round(clip_seconds * SAMPLE_RATE))
                    _write_wav(building / "audio" / filename, clip)
                    category = CATEGORIES[target]
                    rows.append(
                        dict(
                            filename=filename,
                            fold=fold,
                            target=target,
                            category=category,
                            esc10=category in ESC10,
                            src_file=src_id,
                            take="A",
                        )
                    )
        (building / "meta").mkdir()
        rows.sort(key=lambda row: row["filename"])
        write_csv_atomic(building / "meta" / "esc50.csv", rows, CSV_COLUMNS, every_process=True)

    generate_once(folder, "ESC-50", write)
    return folder


def generated_folder(root: Path, readable: str, **settings: object) -> Path:
    """`root/<readable>-<hash>`: the hash covers every generator setting exactly (the readable
    part rounds floats), so other settings, another seed included, generate into another folder."""
    return Path(root) / f"{readable}-{fingerprint(settings)[:8]}"


def generate_once(folder: Path, title: str, write: Callable[[Path], None]) -> None:
    """Unless `folder` is complete: `write(building)` into a temporary sibling renamed to `folder`
    with a completion marker, one process at a time (a second one waits, then finds it)."""

    def generate() -> None:
        print(f"Generating synthetic {title} in {folder}", flush=True)
        with atomic_directory(folder) as building:
            write(building)
            (building / COMPLETE_MARKER).touch()

    build_once(folder, COMPLETE_MARKER, generate, f"generating synthetic {title} in {folder}")


def _write_wav(path: Path, clip: np.ndarray) -> None:
    """16-bit mono PCM at SAMPLE_RATE (the stdlib writer is ~50x faster than libsndfile here)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.round(clip * 32767).astype("<i2").tobytes())


def _clip(target: int, rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """One clip of class `target`: float32 (num_samples,), peak in [0.3, 0.9]."""
    pulse_ms, period_ms = _RHYTHMS_MS[target % 5]
    kind, width = _SPECTRA[(target // 5) % 5]
    swell = target >= 25
    if kind == "noise":
        carrier = _noise_band(width, rng, num_samples)
    else:
        carrier = _tones(kind, rng, num_samples)
    envelope = _pulse_train(pulse_ms / 1000, period_ms / 1000, swell, rng, num_samples)
    snr_db = rng.uniform(12.0, 30.0)
    clip = carrier * envelope + rng.standard_normal(num_samples) * 10 ** (-snr_db / 20)
    return (clip * rng.uniform(0.3, 0.9) / np.abs(clip).max()).astype(np.float32)


def _tones(kind: str, rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Unit-RMS pure tone or 3-harmonic stack at a random fundamental (all partials in range)."""
    partials = (1,) if kind == "tone" else _HARMONICS
    highest_fundamental = _hz_to_band(_band_to_hz(_HIGHEST_BAND) / partials[-1])
    fundamental = _band_to_hz(rng.uniform(_LOWEST_BAND, highest_fundamental))
    t = np.arange(num_samples) / SAMPLE_RATE
    phases = rng.uniform(0, 2 * np.pi, len(partials))
    tones = sum(
        np.sin(2 * np.pi * k * fundamental * t + p) for k, p in zip(partials, phases, strict=True)
    )
    return tones / np.sqrt(np.mean(tones**2))


def _noise_band(width_bands: int, rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Unit-RMS noise filling `width_bands` mel bands at a random position (FFT masking)."""
    low_band = rng.uniform(_LOWEST_BAND, _HIGHEST_BAND - width_bands)
    low_hz, high_hz = _band_to_hz(low_band), _band_to_hz(low_band + width_bands)
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.fft.rfftfreq(num_samples, 1.0 / SAMPLE_RATE)
    spectrum[(frequencies < low_hz) | (frequencies > high_hz)] = 0.0
    band = np.fft.irfft(spectrum, num_samples)
    return band / np.sqrt(np.mean(band**2))


def _band_to_hz(band: float) -> float:
    return 700.0 * (10 ** (band * _MEL_BAND / 2595.0) - 1.0)


def _hz_to_band(hz: float) -> float:
    return 2595.0 * np.log10(1.0 + hz / 700.0) / _MEL_BAND


def _pulse_train(
    pulse_s: float, period_s: float, swell: bool, rng: np.random.Generator, num_samples: int
) -> np.ndarray:
    """Amplitude envelope (num_samples,): pulses that decay (or swell) by 30 dB, one per period."""
    period = period_s * rng.uniform(0.92, 1.08)
    length = max(2, round(pulse_s * rng.uniform(0.9, 1.1) * SAMPLE_RATE))
    shape = 10 ** (-_ENVELOPE_DB / 20 * np.linspace(0.0, 1.0, length))
    attack = min(length, round(_ATTACK_S * SAMPLE_RATE))
    shape[:attack] *= np.linspace(0.0, 1.0, attack)
    if swell:
        shape = shape[::-1]
    envelope = np.zeros(num_samples)
    start_s = rng.uniform(-period, 0.0)
    while start_s < num_samples / SAMPLE_RATE:
        start = round((start_s + rng.uniform(-0.05, 0.05) * period) * SAMPLE_RATE)
        first, last = max(start, 0), min(start + length, num_samples)
        if last > first:
            envelope[first:last] = shape[first - start : last - start]
        start_s += period
    return envelope
