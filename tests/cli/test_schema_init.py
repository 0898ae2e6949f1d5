"""``cnngrad schema`` is a valid draft 2020-12 schema that every worked example satisfies and that
rejects what the loader rejects; ``cnngrad init`` writes a starter spec that passes check."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnngrad.spec.limits import Limits
from cnngrad.spec.nodes import BOOL, FLOAT, INT, NULL
from cnngrad.spec.starter import STARTER
from cnngrad.spec.yamlload import compose
from helpers.cli import invoke

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(ROOT.glob("configs/*.yaml")) + sorted(ROOT.glob("tests/errata/*.yaml"))


def plain(node):
    """A YAML node as Python data, with the loader's own YAML 1.2 number rules (1e-3 is a number)."""
    if isinstance(node.value, list):
        if node.tag.endswith(":map"):
            return {plain(key): plain(value) for key, value in node.value}
        return [plain(item) for item in node.value]
    convert = {INT: int, FLOAT: float, BOOL: lambda v: v.lower() == "true", NULL: lambda v: None}
    return convert.get(node.tag, str)(node.value)


def load(text: str):
    return plain(compose(text, "spec.yaml", Limits()))


@pytest.fixture(scope="module")
def validator():
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.name)
def test_every_worked_example_satisfies_the_schema(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(path.read_text()))]
    assert errors == []


def test_the_starter_satisfies_the_schema(validator):
    assert list(validator.iter_errors(load(STARTER))) == []


def test_the_schema_takes_expect_values_from_files(validator):
    text = ("input: {file: x.npz, key: input}\nlayers: [relu]\nloss: none\nupstream_grad: [1, 2]\n"
            "expect: {grad.input: {file: mine.npz, key: grad.input}, relu1: {file: relu.npy}}\n")
    assert list(validator.iter_errors(load(text))) == []
    assert list(validator.iter_errors(load(text.replace("key: input", "name: input"))))


@pytest.mark.parametrize("text", [
    "input: [1, 2]\nupstream_grad: [1, 1]\n",                              # no layers
    "input: [1, 2]\nlayers: [relu]\n",                                    # no loss (check refuses it)
    "input: [1, 2]\nlayers: [relu]\nloss: null\n",                        # null counts as absent
    "input: [1, 2]\nlayers: [relu]\nlos: none\n",                         # unknown key
    "input: [1, 2]\nlayers: [conv]\nupstream_grad: [1, 1]\n",                                    # conv needs a kernel
    "input: [1, 2]\nlayers: [{pool: {size: 2, kind: max}}]\nupstream_grad: [1, 1]\n",            # unknown setting
    "input: [1, 2]\nlayers: [{pool: {size: 0}}]\nupstream_grad: [1, 1]\n",                       # size at least 1
    "input: [1, 2]\nlayers: [{relu: {name: input}}]\nupstream_grad: [1, 1]\n",                   # reserved name
    "input: [1, 2]\nlayers: [relu]\nloss: hinge\n",                       # unknown loss
    "input: [1, 2]\nlayers: [relu]\nexpect: {tolerance: tight}\nupstream_grad: [1, 1]\n",        # tolerance: auto or a number
    "input: {random: {shape: [2], seed: 0, spread: 1}}\nlayers: [relu]\nupstream_grad: [1, 1]\n",
])
def test_the_schema_rejects_what_the_loader_rejects(validator, text):
    assert list(validator.iter_errors(load(text)))


@pytest.mark.parametrize("text", [
    "input: [1, 2]\nlayers: [relu]\nloss: squared_error\ntarget: [0, 0]\n",
    "input: [1, 2]\nlayers: [relu]\nupstream_grad: [1, 1]\n",
    "input: [1, 2]\nlayers: [relu]\nloss: none\nupstream_grad: [1, 1]\n",
])
def test_the_schema_accepts_a_loss_or_an_upstream_gradient(validator, text):
    assert list(validator.iter_errors(load(text))) == []


def test_init_writes_a_starter_that_check_passes(tmp_path):
    path = tmp_path / "net.yaml"
    assert invoke("init", path).exit_code == 0
    assert path.read_text() == STARTER
    assert invoke("check", path).exit_code == 0


def test_init_never_overwrites(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("mine\n")
    result = invoke("init", str(path))
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert path.read_text() == "mine\n"


def test_init_without_a_path_prints_the_starter():
    assert invoke("init").output == STARTER


def test_the_starters_logits_advice_works(tmp_path):
    # the commented alternative, used as written on the starter's network without its softmax,
    # gives the same loss (softmax then cross_entropy is cross_entropy of the logits)
    advice = next(line.split("write", 1)[1].strip() for line in STARTER.splitlines() if "from: logits" in line)
    assert advice == "loss: {cross_entropy: {from: logits}}"
    changed = STARTER.replace("  - softmax ", "  # - softmax ").replace("loss: cross_entropy ", advice + " ", 1)
    assert changed.count("from: logits") == 2
    path = tmp_path / "logits.yaml"
    path.write_text(changed)
    result = invoke("check", str(path))
    assert result.exit_code == 0, result.output
