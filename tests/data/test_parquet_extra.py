"""pyarrow is the `parquet` extra: without it jaxdl imports and runs, and a Tiny ImageNet parquet
export is refused with the command that installs it."""

import subprocess
import sys

from jaxdl.data.synthetic_images import make_synthetic_tiny_imagenet
from tests.data.image_layouts import write_tiny_imagenet_parquet
from tests.helpers import REPO

# The command line, in an interpreter where `import pyarrow` fails as it does when not installed.
WITHOUT_PYARROW = (
    "import runpy, sys; sys.modules['pyarrow'] = None; sys.argv[0] = 'jaxdl.main'; "
    "runpy.run_module('jaxdl.main', run_name='__main__')"
)


def test_parquet_export_without_pyarrow_says_how_to_install_it(tmp_path):
    folder = make_synthetic_tiny_imagenet(
        tmp_path / "raw", num_classes=2, train_per_class=2, val_per_class=2, seed=0
    )
    exported = write_tiny_imagenet_parquet(folder, tmp_path / "hf")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_PYARROW,
            "--config=tiny_imagenet",
            f"--config.data.dir={exported}",
            f"--config.data.cache_dir={tmp_path / 'cache'}",
            f"--workdir={tmp_path / 'work'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(
        f"error: {exported} holds the Tiny ImageNet parquet export, which needs pyarrow"
    )
    assert 'pip install "jaxdl[parquet]"' in line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "work").exists()  # refused before any run folder
