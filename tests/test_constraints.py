"""constraints.txt, the versions CI installs: every dependency pinned within pyproject.toml's floor,
and every package CI installs pinned at the version installed here."""

import importlib.metadata
import importlib.util
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.helpers import REPO


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _generator():
    spec = importlib.util.spec_from_file_location("ci_constraints", REPO / ".ci" / "constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_dependency_is_pinned_at_or_above_its_floor():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    pins = _pins()
    for requirement in map(Requirement, listed):
        name = canonicalize_name(requirement.name)
        if name == "jaxdl":  # jaxdl[parquet,tensorboard]: its own extras
            continue
        assert name in pins, f"{requirement} (pyproject.toml) is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )


def test_every_package_ci_installs_is_pinned_at_the_installed_version():
    roots = ["jaxdl[test]"]
    try:
        importlib.metadata.version("torch")
        roots.append("jaxdl[torch]")  # installed where offered (.ci/run)
    except importlib.metadata.PackageNotFoundError:
        pass
    installed = _generator().installed_closure(roots)
    pins = _pins()
    assert "pyarrow" in installed and "tensorboard" in installed  # the test extra's own extras
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"not in constraints.txt: {unpinned}; run .ci/constraints.py"
    differ = {
        name: (version, pins[name])
        for name, version in installed.items()
        if not SpecifierSet(f"=={pins[name]}").contains(version, prereleases=True)
    }
    assert not differ, f"installed (left) is not what constraints.txt pins (right): {differ}"
