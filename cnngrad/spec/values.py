"""Value sources → float64 arrays: a number, a nested list, ``{random: ...}`` or ``{file: ...}``.

A literal is validated entry by entry on the YAML tree (numbers only, finite, not empty, not
ragged) before any array exists; random shapes and data files are checked against the limits
before anything is allocated or read.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from typing import Sequence

import numpy as np
from yaml.nodes import ScalarNode

from .. import quantities
from ..record import Record
from .limits import Limits
from .errors import quoted
from .files import FileProblem, Missing, TooLarge, decode_text, printable_path, read_regular
from .nodes import Cursor, scalar_number, suggest

SUFFIXES = (".npy", ".npz", ".csv", ".txt")
DISTRIBUTIONS = ("normal", "uniform")


class Literal(Record):
    """A literal array with each number's text as written (for ``tolerance: auto``)."""

    __slots__ = ("values", "texts")

    def __init__(self, values: np.ndarray, texts: np.ndarray):
        self.values, self.texts = values, texts


def shape_text(shape: tuple[int, ...]) -> str:
    """(2, 3) → '2×3'; () → 'a scalar' (quantities.shape_text, worded for a message's prose)."""
    return quantities.shape_text(shape, "a scalar")


class ValueReader:
    """Reads values relative to the spec's folder, counting entries against the spec's limits;
    value files must resolve inside that folder or one of ``allow_dirs``."""

    def __init__(self, folder: str, limits: Limits, allow_dirs: Sequence[str] = ()):
        self.folder, self.limits, self.total = folder, limits, 0
        self.folder_real = os.path.realpath(folder)
        self.allowed = [self.folder_real] + [os.path.realpath(d) for d in allow_dirs]

    def read(self, cursor: Cursor) -> np.ndarray:
        """Any value source, as a new float64 array."""
        if cursor.is_mapping:
            source = cursor.mapping(("random", "file", "key"), what="a value source ({random: ...} or {file: ...})")
            if ("random" in source) == ("file" in source):
                cursor.fail("a value source is either {random: ...} or {file: ...}, not both")
            if "key" in source and "file" not in source:
                source["key"].fail("key names an array of a .npz file: {file: values.npz, key: NAME}")
            array = self._random(source["random"]) if "random" in source else \
                self._file(source["file"], source.get("key"))
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
        shape = self._random_shape(fields["shape"])
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

    def _random_shape(self, cursor: Cursor) -> tuple[int, ...]:
        """A random value's ``shape:``, a size or a list of at least one size, within the limits."""
        if cursor.is_sequence:
            shape = tuple(item.integer(1, "each random dimension") for item in cursor.sequence())
        else:
            shape = (cursor.integer(1, "a random size"),)
        if not shape:
            cursor.fail("a random shape needs at least one dimension (write a number for a scalar)")
        self.check_size(cursor, shape)
        return shape

    def _file(self, cursor: Cursor, key: Cursor | None = None) -> np.ndarray:
        """A value file inside the spec's folder (or an allowed one): .npy, .npz (with ``key``),
        .csv or .txt.

        Its content is never quoted in a message: a value file could be anything readable.
        """
        name = cursor.text()
        shown = quoted(name)
        suffix = os.path.splitext(name)[1].lower()
        if suffix not in SUFFIXES:
            cursor.fail(f"a value file must end in {', '.join(SUFFIXES)}, not {shown}")
        if (suffix == ".npz") != (key is not None):
            (key or cursor).fail(f"a .npz file holds named arrays: write {{file: {name}, key: NAME}}"
                                 if key is None else "key is for a .npz file only")
        path = self._allowed_path(cursor, name)
        array = self._file_array(cursor, key, shown, suffix, self._file_bytes(cursor, shown, path))
        if array.size == 0:
            cursor.fail(f"file {shown} holds an empty array")
        if not np.isfinite(array).all():
            cursor.fail(f"file {shown} holds NaN or infinite values")
        self.check_size(cursor, array.shape)
        return array

    def _file_array(self, cursor: Cursor, key: Cursor | None, shown: str, suffix: str, data: bytes) -> np.ndarray:
        """The array a value file's bytes hold, read by its suffix; what is wrong with it, in one line."""
        try:
            if suffix == ".npz":
                return _read_npz(data, key, shown, self)
            if suffix == ".npy":
                return _read_npy(data, lambda shape: self.check_size(cursor, shape))
            return _read_table(decode_text(data), "," if suffix == ".csv" else None)
        except BadField as err:
            cursor.fail(f"file {shown}, {err}")
        except FileProblem as err:
            cursor.fail(f"file {shown} {err}")

    def _allowed_path(self, cursor: Cursor, name: str) -> str:
        """The real path of value file ``name``, refused unless inside the spec's folder or an
        allowed one (saying where a symlink leads)."""
        path = os.path.realpath(os.path.join(self.folder, name))
        if not any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder in self.allowed):
            target = "" if os.path.normpath(os.path.join(self.folder_real, name)) == path \
                else f" (it resolves to {printable_path(path)})"
            cursor.fail(f"file {quoted(name)} is outside the spec's folder{target}: a spec reads value files "
                        f"only from {printable_path(self.folder_real)} and below; move the file there, "
                        "or allow its folder with --allow-dir DIR")
        return path

    def _file_bytes(self, cursor: Cursor, shown: str, path: str) -> bytes:
        """The bytes of the regular file at ``path``, at most Limits.max_data_file_bytes."""
        try:
            return read_regular(path, self.limits.max_data_file_bytes)
        except Missing as err:
            cursor.fail(f"file {shown} {err} (looked for {printable_path(path)})")
        except TooLarge as err:
            cursor.fail(f"file {shown} has {err.size} bytes, more than {self.limits.max_data_file_bytes} "
                        "(Limits.max_data_file_bytes; --max-entries N allows 32·N bytes)")
        except FileProblem as err:
            cursor.fail(f"file {shown} {err}")


class BadField(FileProblem):
    """Where a text table goes wrong: 'row 2, column 3: expected a number' (1-based)."""


def _read_npy(data: bytes, check_size) -> np.ndarray:
    """The real numbers of a .npy file; its header (dtype, shape) is checked, and ``check_size``
    called with the shape, before the data is read. Pickles (object arrays) are refused."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, TypeError, EOFError, OSError, UnicodeDecodeError):
        raise FileProblem("is not a .npy file numpy can read (a bad magic string or header)") from None
    if dtype.kind not in "iuf":
        raise FileProblem(f"holds {dtype} values, not real numbers")
    if not all(type(size) is int and size >= 0 for size in shape):   # bool is an int to numpy
        raise FileProblem("has a bad .npy header: its shape is not a tuple of whole numbers ≥ 0")
    check_size(tuple(shape))
    count = math.prod(shape)
    if len(data) - stream.tell() < count * dtype.itemsize:
        raise FileProblem(f"is truncated: its header promises {shape_text(tuple(shape))} values")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
    with np.errstate(over="ignore", invalid="ignore"):      # overflow shows as inf, refused after
        values = flat.astype(np.float64)
    return values.reshape(shape[::-1]).T if fortran_order else values.reshape(shape)


def _read_table(text: str, delimiter: str | None) -> np.ndarray:
    """The numbers of a text table, fields split at ``delimiter`` (None: whitespace), ``#``
    starting a comment: several rows are 2-D (one column stays n×1), one row is 1-D, one
    number a scalar. A field that is not a number is named by row and column, never quoted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # loadtxt warns of a file without data
        try:
            table = np.loadtxt(io.StringIO(text), dtype=np.float64, delimiter=delimiter, ndmin=2)
        except ValueError:
            raise _first_bad_field(text, delimiter) from None
    if table.size == 0:
        raise FileProblem("holds no numbers")
    if len(table) > 1:
        return table
    return table[0] if table.shape[1] > 1 else table[0, 0].reshape(())


def _first_bad_field(text: str, delimiter: str | None) -> FileProblem:
    """Where a table that loadtxt refused goes wrong: the first field that is not a number, or
    the first row whose length differs from the first row's."""
    width = first = None
    for row, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        if not line.strip():
            continue
        fields = line.split(delimiter)
        for column, field in enumerate(fields, 1):
            if not _is_number(field.strip()):
                return BadField(f"row {row}, column {column}: expected a number")
        if width is None:
            width, first = len(fields), row
        elif len(fields) != width:
            return BadField(f"row {row} has {len(fields)} columns, row {first} has {width}")
    return FileProblem("cannot be read as a table of numbers")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return "_" not in field


def _read_npz(data: bytes, key: Cursor, shown: str, reader: ValueReader) -> np.ndarray:
    """The array named by ``key`` in the bytes of a .npz archive, read as a .npy is (no pickles,
    its size checked from its header, its unpacked size bounded before it is unpacked)."""
    import zipfile     # here, not at the top: it costs the start-up of every command 10 ms
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        arrays = [member[:-4] for member in archive.namelist() if member.endswith(".npy")]
    except (zipfile.BadZipFile, ValueError, OSError):
        raise FileProblem("is not a .npz archive numpy can read") from None
    name = key.text()
    if name not in arrays:
        key.fail(f"{shown} has no array {quoted(name)}{suggest(name, arrays)} "
                 f"(it has: {quoted(', '.join(arrays))})")
    member = archive.getinfo(name + ".npy")
    if member.file_size > reader.limits.max_data_file_bytes:
        key.fail(f"{quoted(name)} in {shown} unpacks to {member.file_size} bytes, more than "
                 f"{reader.limits.max_data_file_bytes} (Limits.max_data_file_bytes; --max-entries N allows 32·N bytes)")
    try:
        unpacked = archive.read(member)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise FileProblem(f"holds a damaged array {quoted(name)}") from None
    return _read_npy(unpacked, lambda shape: reader.check_size(key, shape))


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
        shape = _rows(cursor, numbers, texts, limit, seen)
    seen[id(cursor.node)] = (shape, numbers[start:], texts[start:])
    return shape


def _rows(cursor: Cursor, numbers: list, texts: list, limit: int, seen: dict) -> tuple[int, ...]:
    """``_walk`` of a list of lists: each item walked in turn, all of one shape; the list's shape."""
    items = cursor.sequence("a number or a list of numbers")
    if not items:
        cursor.fail("empty array; a value needs at least one number")
    first = _walk(items[0], numbers, texts, limit, seen)
    for item in items[1:]:
        other = _walk(item, numbers, texts, limit, seen)
        if other != first:  # blamed at the odd row, named by the whole value (as docs/reference.md §7 shows)
            Cursor(item.node, cursor.path, cursor.file).fail(_mismatch(first, other))
    return (len(items),) + first


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
