"""The Python face of cnngrad: the calls the command line makes, for tests and notebooks.

``load``/``loads`` build a model from a spec (a path, a mapping that may hold numpy arrays, or YAML
text); ``forward``, ``backward``, ``check`` and ``compare`` take a model or anything ``load`` takes.
A bad spec, or a network whose numbers overflow, raises ``SpecError``; a bad argument (an unknown
``wrt`` name, a value of the wrong type) the usual ``ValueError``/``TypeError``.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from typing import Any, Iterable, Iterator, Mapping, Union

import numpy as np

from .gradcheck.results import SpecResult
from .model import Model, NonFiniteError
from .spec import Limits, SpecError, load_mapping, load_model, load_text

SpecLike = Union[Model, str, "os.PathLike[str]", Mapping[str, Any]]
"""A built model, the path of a spec file, or a spec as a mapping."""

__all__ = ["CheckResult", "Limits", "SpecError", "SpecLike", "backward", "check", "compare", "forward",
           "load", "loads"]


def load(source: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None,
         folder: str | os.PathLike[str] | None = None, limits: Limits | None = None,
         allow_dirs: Iterable[str | os.PathLike[str]] = ()) -> Model:
    """A model from a spec file's path, or from a mapping written like the YAML (any value may be
    a numpy array or number). ``name`` is what errors and reports call a mapping (``<dict>``);
    ``{file: ...}`` values are read from ``folder`` (the file's folder, else the current one)."""
    allow = [os.fspath(d) for d in allow_dirs]
    if isinstance(source, Mapping):
        return load_mapping(source, name or "<dict>", _folder(folder), limits=limits, allow_dirs=allow)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load takes a path or a mapping, not {type(source).__name__} (YAML text: loads)")
    if name is not None or folder is not None:
        raise TypeError("name and folder are for a mapping; a file is named by its path and read "
                        "relative to its own folder")
    return load_model(os.fspath(source), limits=limits, allow_dirs=allow)


def loads(text: str, *, name: str = "<string>", folder: str | os.PathLike[str] | None = None,
          limits: Limits | None = None, allow_dirs: Iterable[str | os.PathLike[str]] = ()) -> Model:
    """A model from a spec's YAML text; errors name ``name`` with the line and column in ``text``."""
    return load_text(text, name, _folder(folder), limits=limits,
                     allow_dirs=[os.fspath(d) for d in allow_dirs])


def forward(spec: SpecLike) -> dict[str, np.ndarray]:
    """Every value of the forward pass by quantity name, in the rank the spec wrote it: ``input``,
    ``target``, each parameter (``conv1.kernel``), each layer's output (``conv1``), ``output``,
    and ``loss`` (a 0-d array; absent for ``loss: none``)."""
    model = _model(spec)
    with _as_spec_error(model):
        return model.values(gradients=False)


def backward(spec: SpecLike) -> dict[str, np.ndarray]:
    """``forward``'s values and every gradient: ``grad.input``, ``grad.output``, ``grad.conv1``
    (∂E/∂ the output of conv1, its delta) and ``grad.conv1.kernel``."""
    model = _model(spec)
    with _as_spec_error(model):
        return model.values()


def check(spec: SpecLike, *, eps: float | None = None, rtol: float | None = None,
          atol: float | None = None, wrt: str | Iterable[str] = (), fast: bool = False,
          deltas: bool = False) -> CheckResult:
    """``cnngrad check``: every analytic gradient (or those named in ``wrt``) against finite
    differences, and the spec's ``expect`` values; options and defaults as on the command line."""
    from .gradcheck import check_model
    _in_range("eps", eps, 0 < eps < 1 if eps is not None else True, "a number between 0 and 1, e.g. 1e-4")
    for name, value in (("rtol", rtol), ("atol", atol)):
        _in_range(name, value, value is None or (math.isfinite(value) and value >= 0), "a finite number ≥ 0")
    model = _model(spec)
    with _as_spec_error(model):
        return CheckResult(check_model(model, eps=eps, rtol=rtol, atol=atol,
                                       wrt=(wrt,) if isinstance(wrt, str) else tuple(wrt),
                                       fast=fast, deltas=deltas))


def _in_range(name: str, value, ok: bool, what: str) -> None:
    """A ValueError for an option outside the range the command line allows (NaN fails every test)."""
    if not ok:
        raise ValueError(f"{name}={value!r}: must be {what}")


def compare(spec: SpecLike, values: Mapping[str, Any]) -> CheckResult:
    """Your own numbers (quantity name, e.g. ``grad.conv1.kernel`` or ``conv1[0,1]``, → array in the
    spec's rank) checked against the model, each wrong one diagnosed (``cnngrad.diagnose``)."""
    from .diagnose import diagnose
    model = _model(spec)
    with _as_spec_error(model):
        return CheckResult(diagnose(model, {name: np.asarray(value, dtype=np.float64)
                                            for name, value in values.items()}))


class CheckResult:
    """What ``check`` (or ``compare``) found for one spec: ``passed``, the records behind it
    (``result``: gradients, expect, deltas, faulty_layer), the JSON ``document`` that
    ``cnngrad check --format json`` writes, and the table it prints (``str(result)``)."""

    __slots__ = ("result",)

    def __init__(self, result: SpecResult):
        self.result = result

    @property
    def passed(self) -> bool:
        return bool(self.result.passed)

    def as_json(self) -> str:
        """The JSON text ``cnngrad check --format json`` writes for this spec."""
        from .render import jsondoc
        return jsondoc.check([self.result])

    @property
    def document(self) -> dict[str, Any]:
        """``as_json()`` parsed: ``{"passed": ..., "specs": [{...}]}``."""
        return json.loads(self.as_json())

    def table(self) -> str:
        """The table ``cnngrad check`` prints, as plain text (no colour codes)."""
        from .render import table
        with contextlib.redirect_stdout(io.StringIO()):   # not a terminal: the plain layout
            return table.check([self.result])

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<CheckResult {self.result.spec}: {'passed' if self.passed else 'FAILED'}>"


def _model(spec: SpecLike) -> Model:
    return spec if isinstance(spec, Model) else load(spec)


def _folder(folder: str | os.PathLike[str] | None) -> str:
    return os.getcwd() if folder is None else os.fspath(folder)


@contextlib.contextmanager
def _as_spec_error(model: Model) -> Iterator[None]:
    """A value that became infinite or NaN is the spec's problem too: raised as a SpecError with
    the same text the command line prints (``FILE: conv1: the output is not finite …``)."""
    try:
        yield
    except NonFiniteError as err:
        message = str(err)
        prefix = f"{model.path}: "
        raise SpecError(model.path, None, None, "",
                        message[len(prefix):] if message.startswith(prefix) else message) from err
