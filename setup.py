"""Which packages the wheel holds; the metadata is in pyproject.toml.

`jaxdl` and its subpackages, plus the task configs: the checkout's top-level `configs/` folder is
installed as the package `jaxdl.configs`, so that an installed jaxdl finds them from any folder
(`--config esc50`). pyproject.toml's `packages.find` cannot add a package mapped from another
folder, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["jaxdl", "jaxdl.*"]), "jaxdl.configs"],
    package_dir={"jaxdl.configs": "configs"},
)
