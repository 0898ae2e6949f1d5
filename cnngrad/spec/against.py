"""``check --against FILE``: the user's own values for many quantities at once, as expectations.

A ``.npz`` whose keys are quantity names, a ``.json`` mapping names to nested lists (also the
document ``backward --format json`` writes: ``loss`` and ``gradients`` keyed ``grad.conv1.kernel``
(0.1's ``conv1.kernel`` too);
and ``forward --format json``'s ``layers``), or a ``.yaml``/``.yml`` mapping written like
``expect:`` (read by the same reader, with its tolerance rules). Values from .npz and .json come
from code: under ``tolerance: auto`` they are held to (rtol, atol) (``gradcheck.expect.entry_tolerance``).
A JSON ``null`` is a value beyond float64 (JSON writes NaN and ±inf so): it matches only an
entry cnngrad cannot give as a finite number either.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .. import quantities
from ..model import Expectation, Model
from .errors import SpecError
from .expect import read_expect
from .limits import Limits
from .nodes import Cursor
from .source import read_text
from .values import ValueReader, shape_text
from .yamlload import compose

SUFFIXES = (".npz", ".json", ".yaml", ".yml")


def read_against(path: str, model: Model, code: tuple[float, float], limits: Limits) -> list[Expectation]:
    """Every value in ``path`` as an ``Expectation`` of ``model``; a SpecError names what is wrong."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise SpecError(path, None, None, "", f"--against takes a {', '.join(SUFFIXES)} file")
    if not os.path.isfile(path):
        raise SpecError(path, None, None, "", "no such file")
    if suffix in (".yaml", ".yml"):
        root = compose(read_text(path, limits), path, limits)
        if root is None:
            raise SpecError(path, None, None, "", "the file is empty; write quantity: value lines as in expect:")
        return read_expect(Cursor(root, "", path), model, ValueReader(os.path.dirname(path), limits))
    size = os.path.getsize(path)
    if size > limits.max_data_file_bytes:
        raise SpecError(path, None, None, "", f"the file has {size} bytes, more than "
                        f"{limits.max_data_file_bytes} (Limits.max_data_file_bytes)")
    named = _npz(path) if suffix == ".npz" else _json(path)
    if not named:
        raise SpecError(path, None, None, "", "no values in the file")
    return [_expectation(path, key, value, model, code, suffix == ".json") for key, value in named.items()]


def _npz(path: str) -> dict[str, object]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as err:   # a broken archive, pickled objects: one line, not a traceback
        raise SpecError(path, None, None, "", f"could not read it as .npz: {' '.join(str(err).split())}") from None


def _json(path: str) -> dict[str, object]:
    """Quantity name → nested list; ``backward``/``forward --format json`` documents unwrapped."""
    try:
        with open(path, encoding="utf-8") as stream:
            doc = json.load(stream)
    except (ValueError, UnicodeDecodeError) as err:
        raise SpecError(path, None, None, "", f"not JSON: {err}") from None
    except RecursionError:
        raise SpecError(path, None, None, "", "not JSON cnngrad can read: nested too deeply") from None
    if not isinstance(doc, dict):
        raise SpecError(path, None, None, "", "a JSON object mapping quantity names to values is needed")
    if "gradients" in doc or "layers" in doc:
        return _unwrapped(path, doc)
    return doc


def _written_by_cnngrad(layers, gradients) -> bool:
    """The shape forward/backward JSON has: a list of {"name", "output"}, an object of gradients."""
    return isinstance(layers, list) and isinstance(gradients, dict) and all(
        isinstance(layer, dict) and isinstance(layer.get("name"), str) and "output" in layer for layer in layers)


def _unwrapped(path: str, doc: dict) -> dict[str, object]:
    """The values of a ``forward``/``backward --format json`` document by quantity name: the
    loss, each layer's output, each gradient (``grad.`` added where missing); a SpecError naming
    the file for a document of another shape."""
    layers, gradients = doc.get("layers") or [], doc.get("gradients") or {}
    if not _written_by_cnngrad(layers, gradients):
        raise SpecError(path, None, None, "", "not the JSON backward or forward --format json writes "
                        "(\"layers\": a list of {\"name\", \"output\"}, \"gradients\": an object), "
                        "nor a mapping of quantity names to values")
    named = {}
    if doc.get("loss") is not None:
        named["loss"] = doc["loss"]
    for layer in layers:
        named[layer["name"]] = layer["output"]
    for key, value in gradients.items():
        named[key if quantities.is_gradient(key) else quantities.gradient_of(key)] = value
    return named


def _expectation(path: str, key: str, value, model: Model, code, nulls: bool) -> Expectation:
    try:
        return expectation_of(key, value, model, code, nulls)
    except ValueError as err:
        raise SpecError(path, None, None, key, str(err)) from None


def expectation_of(key: str, value, model: Model, code: tuple[float, float], nulls: bool = False) -> Expectation:
    """One named value from code as an ``Expectation``; ValueError says what is wrong with it.
    ``nulls``: JSON, where ``null`` (read as NaN) and ±Infinity are values beyond float64."""
    known = quantities.known(model)
    name, index = quantities.parse(key, known, model)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("not an array of numbers (a number or nested lists of equal length)") from None
    shape = () if index is not None else known[name]
    if array.size != math.prod(shape):
        raise ValueError(f"{quantities.label(name, index)} has shape {shape_text(shape)}, "
                         f"but the value has shape {shape_text(array.shape)}")
    if not nulls and not np.isfinite(array).all():
        raise ValueError("holds NaN or infinite values")
    return Expectation(quantity=name, index=index, values=array, texts=None, tolerance=None,
                       line=0, column=0, code=code)
