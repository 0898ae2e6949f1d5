"""``Record``: the base of the package's plain data classes (spec parts, results, reports).

Python's data classes compile the methods they generate with ``exec`` as each class is created
(about 0.5 ms, 2 M instructions, a class: a tenth of the start-up of a small check). A record
lists its fields in ``__slots__``, in order, and writes its ``__init__`` by hand; this base gives
it the ``repr`` and ``==`` a data class would have. Like a data class that is not frozen, a record
can be changed and is not hashable (nothing hashes one).
"""


class Record:
    __slots__ = ()

    def as_dict(self) -> dict[str, object]:
        """Field name → value, in order; shallow (``render.jsondoc`` converts the records inside)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other):
        """Same class and equal fields, compared as tuples (as a data class compares)."""
        if other.__class__ is self.__class__:
            return tuple(self.as_dict().values()) == tuple(other.as_dict().values())
        return NotImplemented
