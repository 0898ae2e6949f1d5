"""pytest plugin: every cnngrad spec in the folders you name is a test that runs ``cnngrad check``.

Opt-in, so unrelated YAML is never collected: ``cnngrad_specs = configs`` in the ini file
(paths relative to it) or ``--cnngrad DIR``. An item passes when the check passes (a kink whose
gradient lies between its one-sided slopes passes, as on the command line); a failure shows the
check's table. ``cnngrad_xfail`` lines (``GLOB: reason``) mark specs that fail on purpose.
Registered through the ``pytest11`` entry point; cnngrad itself (numpy, yaml) is imported only
when a spec runs, so a pytest run that does not opt in pays nothing.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

SUFFIXES = (".yaml", ".yml")
DEFAULT_REASON = "expected to fail (cnngrad_xfail)"
FOLDERS = pytest.StashKey[list]()
XFAILS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnngrad", "cnngrad specs as tests")
    group.addoption("--cnngrad", action="append", default=[], metavar="DIR", dest="cnngrad_dirs",
                    help="Check every *.yaml / *.yml spec below DIR as a test item; repeatable.")
    parser.addini("cnngrad_specs", type="paths", default=[],
                  help="Folders (relative to this file) whose *.yaml / *.yml specs are test items.")
    parser.addini("cnngrad_xfail", type="linelist", default=[],
                  help="Lines 'GLOB: reason': specs (path relative to this file) expected to fail "
                       "their check, reported as xfail.")


def pytest_configure(config: pytest.Config) -> None:
    """Find the spec folders, and add them to what pytest collects when it would not reach them:
    always for ``--cnngrad``, and for the ini option when no paths were given on the command line."""
    invoked = Path(config.invocation_params.dir)
    named = _folders([invoked / folder for folder in config.getoption("cnngrad_dirs")], "--cnngrad {}: not a folder")
    listed = _folders(config.getini("cnngrad_specs"), "cnngrad_specs: {} is not a folder")
    config.stash[FOLDERS] = named + listed
    config.stash[XFAILS] = [_xfail_line(line) for line in config.getini("cnngrad_xfail")]
    from_args = getattr(config, "args_source", None) == pytest.Config.ArgsSource.ARGS
    for folder in named + ([] if from_args else listed):
        if not any(_below(folder, _arg_path(arg, invoked)) for arg in config.args):
            config.args.append(str(folder))


def _folders(paths, refusal: str) -> list[Path]:
    """``paths`` resolved; a usage error (``refusal`` naming it) for one that is not a folder."""
    folders = [Path(path).resolve() for path in paths]
    for folder in folders:
        if not folder.is_dir():
            raise pytest.UsageError(refusal.format(folder))
    return folders


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    folders = parent.config.stash.get(FOLDERS, [])
    if file_path.suffix in SUFFIXES and any(_below(file_path.resolve(), folder) for folder in folders):
        return SpecFile.from_parent(parent, path=file_path)
    return None


class CheckFailed(Exception):
    """The spec's check did not pass; ``table`` is what ``cnngrad check`` prints for it."""

    def __init__(self, table: str):
        super().__init__(table)
        self.table = table


class SpecFile(pytest.File):
    """One spec file: one item, ``check``."""

    def collect(self):
        item = SpecItem.from_parent(self, name="check")
        reason = _xfail_reason(self.path, self.config)
        if reason is not None:   # only a failed check is the expected failure, not a broken spec
            item.add_marker(pytest.mark.xfail(reason=reason, raises=CheckFailed, strict=True))
        yield item


class SpecItem(pytest.Item):
    """``cnngrad check SPEC``: passes when the check passes."""

    def runtest(self) -> None:
        from .api import check
        result = check(self._shown_path())
        if not result.passed:
            raise CheckFailed(result.table())

    def repr_failure(self, excinfo, style=None):
        from .spec.errors import SpecError
        if isinstance(excinfo.value, CheckFailed):   # its verdict first: the line -rf summaries show
            table = excinfo.value.table.rstrip("\n")
            verdict = next((line for line in table.splitlines() if line.startswith(f"{self._shown_path()}: ")), "")
            return f"{verdict}\n\n{table}" if verdict else table
        if isinstance(excinfo.value, SpecError):
            return "\n".join([f"error: {excinfo.value}", *(f"  {line}" for line in excinfo.value.details)])
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"cnngrad check {self._shown_path()}"

    def _shown_path(self) -> str:
        """The spec's path as the command line would be given it from the current folder."""
        return os.path.relpath(self.path)


def _xfail_line(line: str) -> tuple[str, str]:
    glob, _, reason = line.partition(":")
    return glob.strip(), reason.strip() or DEFAULT_REASON


def _xfail_reason(path: Path, config: pytest.Config) -> str | None:
    """The reason of the first ``cnngrad_xfail`` glob matching ``path`` relative to the ini
    file's folder (``*`` also matches ``/``), or None."""
    base = config.inipath.parent if config.inipath else config.rootpath
    relative = os.path.relpath(path.resolve(), base.resolve()).replace(os.sep, "/")
    return next((reason for glob, reason in config.stash[XFAILS] if fnmatch.fnmatch(relative, glob)), None)


def _arg_path(arg: str, invoked: Path) -> Path:
    """A command-line argument's path (without a ``::test`` suffix), absolute."""
    return (invoked / arg.split("::", 1)[0]).resolve()


def _below(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
