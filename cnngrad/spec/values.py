"""Value sources → float64 arrays: a number, a nested list, ``{random: ...}`` or ``{file: ...}``.

A literal is validated entry by entry on the YAML tree (numbers only, finite, not empty, not
ragged) before any array exists; random shapes and data files are checked against the limits
before anything is allocated or read.
"""
from __future__ import annotations

import math
import os

import numpy as np
from yaml.nodes import ScalarNode

from ..record import Record
from .limits import Limits
from .nodes import Cursor, scalar_number

SUFFIXES = (".npy", ".csv", ".txt")
DISTRIBUTIONS = ("normal", "uniform")


class Literal(Record):
    """A literal array with each number's text as written (for ``tolerance: auto``)."""

    __slots__ = ("values", "texts")

    def __init__(self, values: np.ndarray, texts: np.ndarray):
        self.values, self.texts = values, texts


def shape_text(shape: tuple[int, ...]) -> str:
    """(2, 3) → '2×3'; () → 'a scalar'."""
    return "×".join(map(str, shape)) if shape else "a scalar"


class ValueReader:
    """Reads values relative to the spec's folder, counting entries against the spec's limits."""

    def __init__(self, folder: str, limits: Limits):
        self.folder, self.limits, self.total = folder, limits, 0

    def read(self, cursor: Cursor) -> np.ndarray:
        """Any value source, as a new float64 array."""
        if cursor.is_mapping:
            source = cursor.mapping(("random", "file"), what="a value source ({random: ...} or {file: ...})")
            if len(source) != 1:
                cursor.fail("a value source is either {random: ...} or {file: ...}, not both")
            array = self._random(source["random"]) if "random" in source else self._file(source["file"])
        else:
            array = self.literal(cursor).values
        self._count(cursor, array.size)
        return array

    def literal(self, cursor: Cursor) -> Literal:
        """A number or nested list of numbers, validated before it becomes an array."""
        numbers: list[float] = []
        texts: list[str] = []
        shape = _walk(cursor, numbers, texts, self.limits.max_entries)
        self.check_size(cursor, shape)
        return Literal(np.array(numbers, dtype=np.float64).reshape(shape),
                       np.array(texts, dtype=str).reshape(shape))

    def _count(self, cursor: Cursor, size: int) -> None:
        self.total += size
        if self.total > self.limits.max_total_entries:
            cursor.fail(f"the spec's values have more than {self.limits.max_total_entries} entries "
                        "in all (Limits.max_total_entries; --max-entries N allows 4·N)")

    def check_size(self, cursor: Cursor, shape: tuple[int, ...]) -> None:
        size = math.prod(shape)
        if size > self.limits.max_entries:
            cursor.fail(f"an array of shape {shape_text(shape)} has {size} entries, more than the "
                        f"limit of {self.limits.max_entries} (Limits.max_entries; raise it with --max-entries)")

    def _random(self, cursor: Cursor) -> np.ndarray:
        fields = cursor.mapping(("shape", "distribution", "scale", "seed"), required=("shape",),
                                what="random settings")
        shape_cursor = fields["shape"]
        if shape_cursor.is_sequence:
            shape = tuple(item.integer(1, "each random dimension") for item in shape_cursor.sequence())
        else:
            shape = (shape_cursor.integer(1, "a random size"),)
        if not shape:
            shape_cursor.fail("a random shape needs at least one dimension (write a number for a scalar)")
        self.check_size(shape_cursor, shape)
        distribution = fields["distribution"].word(DISTRIBUTIONS, "distribution") \
            if "distribution" in fields else "normal"
        # + 0.0: a scale written -0.0 is 0 (numpy's uniform(0.0, -0.0) raises "high - low < 0")
        scale = float(fields["scale"].number()) + 0.0 if "scale" in fields else 1.0
        if scale < 0:
            fields["scale"].fail(f"scale must not be negative, not {scale}")
        if distribution == "uniform" and scale > np.finfo(np.float64).max / 2:
            fields["scale"].fail(f"scale {scale:g} would overflow float64 (uniform draws span 2·scale); "
                                 "use a scale of at most 8.9e307")
        seed = fields["seed"].integer(0, "seed", maximum=2**64 - 1) if "seed" in fields else 0
        rng = np.random.default_rng(seed)
        if distribution == "uniform":
            return rng.uniform(-scale, scale, shape)
        array = rng.normal(0.0, scale, shape)
        if not np.isfinite(array).all():
            fields["scale"].fail(f"scale {scale:g} makes normal draws overflow float64 to infinity; "
                                 "use a smaller scale")
        return array

    def _file(self, cursor: Cursor) -> np.ndarray:
        name = cursor.text()
        path = os.path.join(self.folder, name)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in SUFFIXES:
            cursor.fail(f"a value file must end in {', '.join(SUFFIXES)}, not {name!r}")
        if not os.path.isfile(path):
            cursor.fail(f"file {name!r} not found (looked for {os.path.abspath(path)})")
        size = os.path.getsize(path)
        if size > self.limits.max_data_file_bytes:
            cursor.fail(f"file {name!r} has {size} bytes, more than {self.limits.max_data_file_bytes} "
                        "(Limits.max_data_file_bytes)")
        try:
            array = _read_npy(cursor, path, self) if suffix == ".npy" else \
                np.loadtxt(path, dtype=np.float64, delimiter="," if suffix == ".csv" else None)
        except (OSError, ValueError, UnicodeDecodeError) as err:
            cursor.fail(f"could not read {name!r}: {' '.join(str(err).split())}")
        if array.size == 0:
            cursor.fail(f"file {name!r} holds an empty array")
        if not np.isfinite(array).all():
            cursor.fail(f"file {name!r} holds NaN or infinite values")
        self.check_size(cursor, array.shape)
        return array


def _read_npy(cursor: Cursor, path: str, reader: ValueReader) -> np.ndarray:
    """A .npy file of real numbers, its header checked before the data is read."""
    with open(path, "rb") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    if dtype.kind not in "iuf":
        cursor.fail(f"file {os.path.basename(path)!r} holds {dtype} values, not real numbers")
    reader.check_size(cursor, tuple(shape))
    return np.load(path, allow_pickle=False).astype(np.float64)


def _walk(cursor: Cursor, numbers: list, texts: list, limit: int, seen: dict | None = None) -> tuple[int, ...]:
    """Append the numbers of a literal to ``numbers``/``texts``; its shape, or a SpecError.

    ``seen`` remembers each list already read (by node), so a list repeated through YAML
    aliases is copied, not walked again; copies stop beyond ``limit`` numbers, since aliases
    can repeat far more numbers than there are nodes.
    """
    if cursor.is_scalar:
        numbers.append(cursor.number())
        texts.append(cursor.node.value)
        return ()
    seen = {} if seen is None else seen
    if id(cursor.node) in seen:
        shape, its_numbers, its_texts = seen[id(cursor.node)]
        if len(numbers) + len(its_numbers) > limit:
            cursor.fail(f"the value has more than {limit} entries once its aliases are copied, more "
                        "than the limit (Limits.max_entries; raise it with --max-entries)")
        numbers.extend(its_numbers)
        texts.extend(its_texts)
        return shape
    start = len(numbers)
    if cursor.is_sequence and cursor.node.value and \
            all(isinstance(node, ScalarNode) for node in cursor.node.value):
        shape = _row(cursor, numbers, texts)
    else:
        items = cursor.sequence("a number or a list of numbers")
        if not items:
            cursor.fail("empty array; a value needs at least one number")
        first = _walk(items[0], numbers, texts, limit, seen)
        for item in items[1:]:
            other = _walk(item, numbers, texts, limit, seen)
            if other != first:  # blamed at the odd row, named by the whole value (as SPEC §5 shows)
                Cursor(item.node, cursor.path, cursor.file).fail(_mismatch(first, other))
        shape = (len(items),) + first
    seen[id(cursor.node)] = (shape, numbers[start:], texts[start:])
    return shape


def _row(cursor: Cursor, numbers: list, texts: list) -> tuple[int, ...]:
    """A list of scalars, the bulk of any literal: read without a cursor per entry."""
    row = [scalar_number(node) for node in cursor.node.value]
    for i, value in enumerate(row):
        if value is None or not math.isfinite(value):
            cursor.at(cursor.node.value[i], f"[{i}]").number()   # raises, naming the entry
    numbers.extend(row)
    texts.extend(node.value for node in cursor.node.value)
    return (len(row),)


def _mismatch(first: tuple[int, ...], other: tuple[int, ...]) -> str:
    if not first or not other:
        return "mixes numbers and lists at the same level"
    if len(first) == len(other) == 1:
        return f"rows have different lengths ({first[0]} and {other[0]})"
    return f"entries have different shapes ({shape_text(first)} and {shape_text(other)})"
