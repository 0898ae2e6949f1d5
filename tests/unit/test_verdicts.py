"""Per-entry verdicts kept as arrays (gradcheck.verdicts): the records made from them, the entries a
table lists and the JSON document are the same as from a list of ``EntryResult`` records."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnngrad.gradcheck import check_model
from cnngrad.gradcheck.results import QuantityResult
from cnngrad.render import jsondoc, table
from test_gradcheck import ScaledReLU4, relu_at_zero_model, small_net


def as_records(result):
    """The same results, each quantity's entries handed over as a list of records."""
    for q in result.gradients + result.deltas:
        q.entries = list(q.entries)
    return result


@pytest.mark.parametrize("model, fast", [(relu_at_zero_model(), False), (small_net(act=ScaledReLU4), False),
                                         (small_net(act=ScaledReLU4), True)])
def test_arrays_and_records_say_the_same(model, fast):
    kept, listed = check_model(model, fast=fast), as_records(check_model(model, fast=fast))
    for a, b in zip(kept.gradients + kept.deltas, listed.gradients + listed.deltas):
        assert a.verdicts is not None and b.verdicts is None
        assert a.failing() == b.failing() == [e for e in b.entries if e.status == "fail"]
        assert a.flagged() == b.flagged() == [e for e in b.entries if e.status == "fail" or e.notable]
        assert a.quiet_kinks() == b.quiet_kinks() == sum(e.status == "kink" and not e.notable for e in b.entries)
        assert a.disagrees() == b.disagrees() and a.entry_count() == b.entry_count() == len(b.entries)
    assert jsondoc.check([kept]) == jsondoc.check([listed])
    assert table.check([kept]) == table.check([listed])
    assert kept == listed


def test_the_records_carry_index_values_and_kink_quotients():
    result = check_model(relu_at_zero_model(), wrt=["conv1.kernel", "input"])
    kernel, x = result.gradients
    assert [e.index for e in kernel.entries] == list(np.ndindex(kernel.shape)) and len(kernel.shape) >= 2
    assert [e.index for e in x.entries] == list(np.ndindex(x.shape)) and x.shape[-2:] == (3, 3)
    np.testing.assert_array_equal([e.analytic for e in x.entries], x.verdicts.analytic)
    kinks = [e for e in kernel.entries if e.left is not None]
    assert kinks and all(e.status in ("kink", "fail") and e.right is not None for e in kinks)
    assert all(e.left is None and e.right is None for e in kernel.entries if e not in kinks)


def test_a_json_entry_is_the_records_fields():
    result = check_model(relu_at_zero_model(), wrt=["conv1.kernel"])
    doc = json.loads(jsondoc.check([result]))["specs"][0]["gradients"][0]
    assert doc["entries"] == [dict(e.as_dict(), index=list(e.index)) for e in result.gradients[0].entries]


def test_a_quantity_made_by_hand_has_no_arrays():
    q = QuantityResult("input", (1,), True, 0.0, 0.0, 0)
    assert q.entries == [] and q.entry_count() == 0 and q.failing() == [] and not q.disagrees()
