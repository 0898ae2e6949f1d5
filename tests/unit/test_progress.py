"""The check reports its progress, and the bar stays off the screen for quick checks and in pipes."""
from __future__ import annotations

import numpy as np

from cnngrad.gradcheck import check_model
from cnngrad.model import Model
from cnngrad.render.progress import DelayedProgress
from cnngrad.spec import load_model


def test_progress_adds_up_to_the_total():
    calls = []
    model = load_model("configs/seed000_maxpool_3x3_stride1_routing.yaml")
    check_model(model, progress=lambda advance, total: calls.append((advance, total)))
    # the input (16 entries) is the only gradient: 4 perturbed copies per entry
    assert sum(advance for advance, _ in calls) == calls[-1][1] == 4 * 16


def test_progress_adds_up_with_a_second_look_at_failures(monkeypatch):
    """A failing entry is differenced again at two finer steps (``check.second_look``): four copies
    each, which the total takes in as they run."""
    backward = Model.backward

    def wrong(self, trace):
        grads = backward(self, trace)
        grads.input.flat[np.abs(grads.input).argmax()] *= 1.01
        return grads

    monkeypatch.setattr(Model, "backward", wrong)
    calls = []
    model = load_model("configs/seed000_maxpool_3x3_stride1_routing.yaml")
    result = check_model(model, progress=lambda advance, total: calls.append((advance, total)))
    assert not result.passed
    assert sum(advance for advance, _ in calls) == calls[-1][1] > 4 * 16
    assert all(total >= done for done, total in zip(np.cumsum([a for a, _ in calls]), (t for _, t in calls)))


def test_no_bar_when_stderr_is_not_a_terminal(capsys):
    assert DelayedProgress.for_terminal("x") is None   # pytest captures stderr: not a terminal


def test_a_quick_check_draws_nothing():
    progress = DelayedProgress("x", delay=60)
    progress(5, 10)
    assert progress.bar is None and progress.done == 5
    progress.close()
