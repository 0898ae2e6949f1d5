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


# --------------------------------------------------------------------------- memory (issue 18)

def canonical(text: str) -> str:
    """``text`` as json.dumps writes the values it holds (one line, ', ' and ': ', floats as repr,
    control characters escaped as the renderer does): any other layout or number text differs."""
    from cnngrad.text import UNPRINTABLE
    dumped = json.dumps(json.loads(text), ensure_ascii=False, allow_nan=False)
    return UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", dumped) + "\n"


def fc_net(inputs=300, outputs=80):
    """fc → tanh → fc (→ squared error): 24,000 weights, more than one piece of JSON entries."""
    from test_gradcheck import hand_model
    from cnngrad.layers.activations import Tanh
    from cnngrad.layers.fc import FC
    rng = np.random.default_rng(5)
    layers = [("fc1", FC((outputs, inputs))), ("act1", Tanh()), ("fc2", FC((3, outputs)))]
    return hand_model(rng.standard_normal(inputs), layers, "squared_error", rng.standard_normal(3), seed=5)


def test_json_comes_in_bounded_pieces_that_are_json_dumps_of_the_records(monkeypatch):
    from cnngrad.gradcheck import verdicts
    monkeypatch.setattr(verdicts, "CHUNK", 1000)    # fields made 1000 at a time,
    monkeypatch.setattr(jsondoc, "CHUNK", 3000)     # written 3000 at a time: many boundaries
    result = check_model(fc_net(), wrt=["fc1.weights", "input"], deltas=True)
    pieces = list(jsondoc.check_pieces([result]))
    text = "".join(pieces)
    assert text == canonical(text) == jsondoc.check([result])
    assert max(map(len, pieces)) < 250 * jsondoc.CHUNK < len(text) / 5   # ~190 bytes an entry
    doc = json.loads(text)["specs"][0]
    weights = result.gradients[0]
    assert weights.entry_count() == 24_000 > jsondoc.CHUNK
    for got, checked in zip(doc["gradients"] + doc["deltas"], result.gradients + result.deltas):
        assert got["entries"] == [dict(e.as_dict(), index=list(e.index)) for e in checked.entries]
    assert json.loads(jsondoc.check([as_records(result)])) == json.loads(text)


def test_json_writes_non_finite_numbers_and_odd_strings_as_json_dumps_does():
    """NaN and ±infinity in entries and fields as null; a spec name with control and bidi characters
    escaped; a hand-made list of records with numpy numbers written as Python's."""
    from cnngrad.gradcheck.results import EntryResult, SpecResult
    entries = [EntryResult((np.int64(0), 1), np.float64(0.5), float("nan"), float("inf"), "fail"),
               EntryResult((0, 2), -0.0, 1e300, 1e-320, "kink", float("-inf"), 2.5, np.bool_(True))]
    q = QuantityResult("conv1.kernel", (1, 3), False, float("inf"), float("nan"), 1, entries)
    text = jsondoc.check([SpecResult("a\x1b\u202eb.yaml", "n\u2028\x85", False, [q])])
    assert text == canonical(text)
    got = json.loads(text)["specs"][0]
    assert got["spec"] == "a\x1b\u202eb.yaml" and got["name"] == "n\u2028\x85"
    assert got["gradients"][0]["entries"] == [
        {"index": [0, 1], "analytic": 0.5, "numeric": None, "abs_error": None, "status": "fail",
         "left": None, "right": None, "notable": False},
        {"index": [0, 2], "analytic": -0.0, "numeric": 1e300, "abs_error": 1e-320, "status": "kink",
         "left": None, "right": 2.5, "notable": True}]
    assert got["gradients"][0]["max_abs_error"] is None


def all_failing(n=50_000):
    """A quantity of ``n`` entries that all failed (as a wrong backward of an fc layer would)."""
    from cnngrad.gradcheck.verdicts import FAIL, EntryVerdicts
    analytic = np.linspace(-1.0, 1.0, n)
    numeric = analytic + np.linspace(0.0, 1e-3, n) ** 2
    zeros, no = np.zeros(n), np.zeros(n, bool)
    verdicts = EntryVerdicts((n // 100, 100), analytic, numeric, np.abs(analytic - numeric),
                             np.full(n, FAIL, np.int8), no, zeros, zeros, no)
    return QuantityResult("fc1.weights", (n // 100, 100), False, 1e-6, 1e-6, 0, verdicts=verdicts)


def test_a_table_makes_records_only_for_the_entries_it_lists(monkeypatch):
    from cnngrad.gradcheck import verdicts
    from cnngrad.gradcheck.results import EntryResult, SpecResult
    from cnngrad.render import github, rows
    made = []

    class Counted(EntryResult):
        __slots__ = ()

        def __init__(self, *fields):
            made.append(1)
            super().__init__(*fields)

    monkeypatch.setattr(verdicts, "EntryResult", Counted)
    q = all_failing()
    listed, more = rows.entry_rows(q)
    assert len(listed) == rows.ENTRY_LIMIT and more == 50_000 - rows.ENTRY_LIMIT and len(made) == rows.ENTRY_LIMIT
    assert listed[0][0] == "[0,0]" and listed[-1][0] == f"[0,{rows.ENTRY_LIMIT - 1}]"
    made.clear()
    message = github._gradient_message(SpecResult("a.yaml", None, False, [q]), q)
    assert len(made) == 1
    assert message.startswith("grad.fc1.weights: 50000 of 50000 entries disagree") and "worst at [499,99]" in message


def test_counts_and_worst_entry_agree_between_arrays_and_records():
    kept = all_failing(300)
    kept.verdicts.abs_error[[7, 200]] = np.nan         # NaN counts as the largest: the first of them
    listed = all_failing(300)
    listed.verdicts.abs_error[[7, 200]] = np.nan
    listed.entries = list(listed.entries)
    for q in (kept, listed):
        assert q.failing_count() == q.flagged_count() == 300 and len(q.flagged(4)) == 4
        assert q.worst_failing().index == (0, 7) and q.flagged(4) == q.flagged()[:4]
    assert repr(kept.flagged(9)) == repr(listed.flagged(9)) and repr(kept.worst_failing()) == repr(listed.worst_failing())


def test_judging_entries_needs_few_arrays_beside_their_differences():
    """judge's working memory, per entry, over what it is handed: the verdicts it keeps (|error|,
    status, notable: 10 bytes) and a few float temporaries; a kink's bracket is judged on the kinks
    alone (it took 90 bytes an entry, 450 MB of a 5M-weight fc layer's check)."""
    import tracemalloc
    from cnngrad.gradcheck.check import judge
    from cnngrad.gradcheck.finite import Differences
    n = 400_000
    rng = np.random.default_rng(3)
    analytic = rng.standard_normal(n)
    kink = rng.random(n) < 0.01
    diffs = Differences(analytic + 1e-12 * rng.standard_normal(n), analytic - 1e-3, analytic + 1e-3, kink,
                        np.zeros(n, bool), np.full(n, 1e-11), np.full(n, 1e-12))
    tracemalloc.start()
    try:
        result = judge("fc1.weights", (n,), analytic, diffs, (n,), 1e-7, 1e-10, zero=1e-9, significant=1e-6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == "passed" and result.kinks == kink.sum() > 0
    assert peak < 56 * n


def test_the_verdicts_keep_one_sided_quotients_of_the_kinks_alone():
    """left and right matter only at kinks: 16 bytes an entry kept for a few (most fc weights have none)."""
    result = check_model(relu_at_zero_model(), wrt=["conv1.kernel", "input", "fc1.weights"])
    quantities = {q.quantity: q for q in result.gradients}
    for q in quantities.values():
        v = q.verdicts
        assert len(v.left) == len(v.right) == q.kinks == np.count_nonzero(v.kink)
        kinks = [e for e in q.entries if e.status == "kink" or e.left is not None]
        assert [(e.left, e.right) for e in kinks] == list(zip(v.left.tolist(), v.right.tolist()))
    assert quantities["conv1.kernel"].kinks > 0 and quantities["fc1.weights"].kinks == 0


@pytest.mark.parametrize("model", [relu_at_zero_model(), small_net(act=ScaledReLU4)])
def test_a_result_without_entries_reads_as_the_result_in_a_total(model):
    from cnngrad.render import rows
    result = check_model(model)
    bare = result.without_entries()
    assert rows.total_line([bare]) == rows.total_line([result]) and rows.spec_line(bare) == rows.spec_line(result)
    assert (bare.passed, bare.error, bare.faulty_layer) == (result.passed, result.error, result.faulty_layer)
    for q, kept in zip(bare.gradients + bare.deltas, result.gradients + result.deltas, strict=True):
        assert q.entry_count() == 0 < kept.entry_count() and q.verdicts is None
        assert [getattr(q, n) for n in q.FIELDS if n != "entries"] == [getattr(kept, n) for n in q.FIELDS if n != "entries"]
