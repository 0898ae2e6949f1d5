"""Spec files for tests: written into pytest's ``tmp_path``, and the error loading one gives."""
from __future__ import annotations

import pytest

from cnngrad.spec import SpecError, load_model


def write_spec(tmp_path, text: str, name: str = "net.yaml") -> str:
    """``text`` as it is (so an error's line and column are the text's own) in ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def spec_error(tmp_path, text: str) -> SpecError:
    """The ``SpecError`` that loading ``text`` raises (the test fails if it loads)."""
    with pytest.raises(SpecError) as info:
        load_model(write_spec(tmp_path, text))
    return info.value
