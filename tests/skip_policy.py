"""Pytest hooks that fail a run holding a skip not listed in `tests/allowed_skips.txt`.

A skipped test is a check that did not run, and a green run hides it: a broken optional install
once turned ~40 parity tests into skips with CI still green. So every skip must match a line of the
list (a node id or fnmatch pattern, when it may skip, why), and any other skip fails the run (exit
status 1) with its node id and reason in the summary. `when` is `always`, `without torch` (holds
only while torch is not importable and `JAXDL_EXPECT_TORCH` is not `1`, which CI sets once torch
installed) or `without root` (holds only for a non-root user; CI runs as root).

`tests/conftest.py` imports the hooks; `JAXDL_ALLOWED_SKIPS` names another list (the policy's own
test uses it).
"""

import dataclasses
import fnmatch
import importlib.util
import os
from pathlib import Path

import pytest

DEFAULT_LIST = Path(__file__).with_name("allowed_skips.txt")
WHEN = ("always", "without torch", "without root")


@dataclasses.dataclass(frozen=True)
class AllowedSkip:
    pattern: str  # node id or fnmatch pattern; a module skipped whole has its path as node id
    when: str  # one of WHEN
    reason: str


_entries: list[AllowedSkip] = []  # the list, read when pytest starts
_skipped: dict[str, str] = {}  # node id -> skip reason, in the order the skips happened
_refused: list[str] = []  # "node id (reason)" of each skip the list does not allow


def allowed_skips_path() -> Path:
    return Path(os.environ.get("JAXDL_ALLOWED_SKIPS", DEFAULT_LIST))


def read_allowed_skips(path: Path) -> list[AllowedSkip]:
    """`pattern | when | reason` per line; `#` starts a comment. A malformed line is an error."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split("|")]
        if len(fields) != 3 or not all(fields) or fields[1] not in WHEN:
            raise pytest.UsageError(
                f"{path}:{number}: expected 'node id or pattern | when | "
                f"reason' with when one of {WHEN}, got {line!r}"
            )
        entries.append(AllowedSkip(*fields))
    return entries


def torch_expected() -> bool:
    """True when torch must be there: CI installed it, or it is importable here."""
    return (
        os.environ.get("JAXDL_EXPECT_TORCH") == "1" or importlib.util.find_spec("torch") is not None
    )


def holding() -> set[str]:
    """The `when` values that hold in this run."""
    return (
        {"always"}
        | (set() if torch_expected() else {"without torch"})
        | (set() if os.geteuid() == 0 else {"without root"})
    )


def matching(nodeid: str, entries: list[AllowedSkip]) -> list[AllowedSkip]:
    return [entry for entry in entries if fnmatch.fnmatchcase(nodeid, entry.pattern)]


def is_allowed(nodeid: str, entries: list[AllowedSkip], holds: set[str]) -> bool:
    return any(entry.when in holds for entry in matching(nodeid, entries))


def _described(nodeid: str, reason: str) -> str:
    listed = sorted({entry.when for entry in matching(nodeid, _entries)})
    if listed:  # listed, but only for runs in which its condition holds
        return (
            f"{nodeid} ({reason}; listed {' / '.join(map(repr, listed))}, which does not hold "
            "in this run)"
        )
    return f"{nodeid} ({reason})"


def _record(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        _skipped[report.nodeid] = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)


def pytest_configure(config: pytest.Config) -> None:
    _entries[:] = read_allowed_skips(allowed_skips_path())  # a malformed list stops at once


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record(report)  # a module-level `importorskip` skips the whole file at collection


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    holds = holding()
    _refused[:] = [
        _described(nodeid, reason)
        for nodeid, reason in _skipped.items()
        if not is_allowed(nodeid, _entries, holds)
    ]
    if _refused and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _refused:
        return
    terminalreporter.section("skips not allowed", red=True)
    terminalreporter.line(
        f"error: {len(_refused)} skipped test(s) not allowed by "
        f"{allowed_skips_path()}; make them run, or list them there with the "
        "reason:",
        red=True,
    )
    for line in _refused:
        terminalreporter.line(f"  {line}", red=True)
