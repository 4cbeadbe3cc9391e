"""What content-keyed caches cost a warm start: ESC-50 at full size, every clip hashed.

On a generated layout of the official size (2000 clips, 5 s, 44.1 kHz mono 16-bit: 882 MB), the
log-mel cache is built once (untimed), then `load_split` of train, val and test together is
timed with the cache in place: it reads the CSV, hashes every clip (SHA-256) and reads its
header, and opens the five cached folds. The hashing alone (the same threads, no header) is
timed too, and once more on one thread. Files come from the page cache (a warm start right after
a previous run); from a cold disk, add the time to read 882 MB.

    python benchmarks/cache_warm_start.py [--root /tmp/jaxdl-warm-start] [--repeats 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from configs.esc50 import get_config  # noqa: E402
from jaxdl.data import content, esc50  # noqa: E402
from jaxdl.data.synthetic import make_synthetic_esc50  # noqa: E402


def timed(fn) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def cpu_model() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")),
        "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/jaxdl-warm-start"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = make_synthetic_esc50(
        args.root / "data", num_classes=50, clips_per_class_per_fold=8, clip_seconds=5.0
    )
    config = get_config()
    config.data.update(dir=str(folder), cache_dir=str(args.root / "cache"))
    wavs = sorted((folder / "audio").glob("*.wav"))
    megabytes = sum(path.stat().st_size for path in wavs) / 1e6

    def load_all() -> None:
        for split in esc50.SPLITS:
            esc50.load_split(config, split)

    load_all()  # builds the cache (untimed), and fills the page cache
    runs = {
        "warm load_split (train + val + test)": load_all,
        f"of which hashing {len(wavs)} clips, {os.cpu_count()} threads": lambda: (
            content.threaded_map(content.sha256_file, wavs)
        ),
        "hashing on one thread": lambda: [content.sha256_file(path) for path in wavs],
    }
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{len(wavs)} clips, {megabytes:.0f} MB, {cpu_model()}, load average before: {load}")
    print("| step | wall s (median, best) | CPU s (median) |")
    print("|---|---|---|")
    for name, fn in runs.items():
        walls, cpus = zip(*(timed(fn) for _ in range(args.repeats)), strict=True)
        print(
            f"| {name} | {statistics.median(walls):.2f}, {min(walls):.2f} | "
            f"{statistics.median(cpus):.2f} |"
        )


if __name__ == "__main__":
    main()
