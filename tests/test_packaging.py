"""The wheel `pip install .` installs holds every jaxdl module and the task configs, so that an
installed jaxdl runs from any folder (`.ci/run` installs it and runs modes outside the checkout)."""

import subprocess
import sys
import zipfile

from tests.helpers import REPO

TASK_CONFIGS = ("celeba", "cub200", "esc50", "tiny_imagenet")


def test_the_wheel_holds_every_module_and_the_task_configs(tmp_path):
    """Built as a release is (sdist, then the wheel from the unpacked sdist): the checkout's
    configs/ becomes jaxdl/configs/, and nothing else of the checkout is installed."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("*.whl")
    installed = {
        name for name in zipfile.ZipFile(wheel).namelist() if not name.startswith("jaxdl-")
    }  # less the .dist-info metadata
    modules = {
        f"jaxdl/{path.relative_to(REPO / 'jaxdl').as_posix()}"
        for path in (REPO / "jaxdl").rglob("*.py")
    }
    configs = {f"jaxdl/configs/{path.name}" for path in (REPO / "configs").glob("*.py")}
    assert {f"jaxdl/configs/{task}.py" for task in TASK_CONFIGS} <= configs
    expected = modules | configs
    assert installed == expected, (
        f"missing: {sorted(expected - installed)}, unexpected: {sorted(installed - expected)}"
    )
