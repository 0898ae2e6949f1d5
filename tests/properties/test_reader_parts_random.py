"""Random branched networks (tests/helpers/randomnets.py) with one reader of a value several
layers read made wrong (``helpers.wrong``): a check that fails names that reader, never another
layer (each reader's part of the value's delta is checked apart, ``check.check_reader_parts``).

Only checks in which the value's own delta disagrees count: a part that is 0 (a reader whose
units are all off) is as right at 1.5 times, and a delta whose every entry is a kink (max pools
of a map with ties) is judged by brackets that the error may fit in, as anywhere else.
"""
from __future__ import annotations

import warnings

import pytest

from cnngrad.gradcheck import check_model

from helpers.randomnets import random_models, to_model
from helpers.wrong import made_wrong


def blamed(seed: int, count: int, fast: bool = False) -> tuple[int, list]:
    """How many checks of a wrong reader found the value's delta wrong, and those that named another layer than that
    reader: (spec name, the wrong reader, the named layer)."""
    failed, misnamed = 0, []
    for spec, model in random_models(seed, count):
        network = model.network
        for value, readers in enumerate(network.consumers):
            for reader in sorted(set(readers)) if len(set(readers)) > 1 else ():
                wrong = to_model(spec)
                made_wrong(wrong, network.names[reader], value)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    result = check_model(wrong, fast=fast)
                checked = {q.quantity: q for q in result.gradients + result.deltas}
                if network.value_name(value) not in checked or not checked[network.value_name(value)].disagrees():
                    continue
                failed += 1
                if result.faulty_layer != network.names[reader]:
                    misnamed.append((spec.get("name"), network.names[reader], result.faulty_layer))
    return failed, misnamed


@pytest.mark.parametrize("fast", [False, True])
def test_a_wrong_reader_of_a_random_network_is_named(fast):
    failed, misnamed = blamed(seed=1, count=60, fast=fast)
    assert failed >= 10 and not misnamed, misnamed


@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True])
def test_a_wrong_reader_of_many_random_networks_is_named(fast):
    failed, misnamed = blamed(seed=20240602, count=300, fast=fast)
    assert failed >= 50 and not misnamed, misnamed
