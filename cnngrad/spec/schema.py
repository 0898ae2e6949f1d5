"""The spec format as a JSON Schema (draft 2020-12), for editors' YAML language servers.

Built from the loader's own lists (layer kinds and their settings, losses, words), so the schema
cannot drift from what ``load_model`` accepts. It checks the form of a spec; shapes that must fit
together, and ranges the loader checks with the values in hand, are the loader's business.
"""
from __future__ import annotations

from ..losses import FORMS, LOSSES
from .document import KEYS
from ..layers import REGISTRY, Setting
from .layers import REQUIRED, RESERVED, SETTINGS
from .values import DISTRIBUTIONS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
NULL = {"type": "null"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _nullable(schema: dict) -> dict:
    """A key written as null counts as absent (docs/reference.md §1)."""
    return {"anyOf": [NULL, schema]}


def _object(properties: dict, required=(), description: str | None = None) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def _pair(minimum: int, description: str) -> dict:
    """An int or an [h, w] pair."""
    number = {"type": "integer", "minimum": minimum}
    return {"description": description,
            "anyOf": [number, {"type": "array", "items": number, "minItems": 2, "maxItems": 2}]}


DEFINITIONS = {
    "array": {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "number"}, _ref("array")]},
              "description": "a nested list of numbers"},
    "value": {"description": "a number, a nested list, {random: ...} or {file: ...}", "anyOf": [
        {"type": "number"}, _ref("array"),
        _object({"random": _object({
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
            "distribution": {"enum": list(DISTRIBUTIONS)},
            "scale": {"type": "number"},
            "seed": {"type": "integer", "minimum": 0}}, required=("shape",))}, required=("random",)),
        _ref("file")]},
    "file": _object({"file": {"type": "string", "description": ".npy, .npz, .csv or .txt, relative to the spec"},
                     "key": {"type": "string", "description": "the array's name in a .npz file"}},
                    required=("file",)),
    "padding": {"description": "int | [ph, pw] | [[top, bottom], [left, right]] | valid | same", "anyOf": [
        {"enum": ["valid", "same"]}, _pair(0, "padding"),
        {"type": "array", "minItems": 2, "maxItems": 2,
         "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}}]},
    "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "not": {"enum": list(RESERVED)},
             "description": "the layer's name in quantity names (default: kind and count, conv1)"},
    "from": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
             "description": "the value this layer reads: input or an earlier layer's name (default: the previous layer)"},
}

def _setting(setting: Setting) -> dict:
    """The schema of one declared setting, from what it reads."""
    described = {"description": setting.description} if setting.description else {}
    if setting.reads == "array":
        schema = {**_ref("value"), **described}
        return schema if setting.required else _nullable(schema)
    if setting.reads == "pair":
        return _pair(setting.minimum, setting.description)
    if setting.reads == "word":
        return {"enum": list(setting.choices), **described}
    if setting.reads == "names":
        return {"type": "array", "minItems": 2, "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                **described}
    if setting.reads == "flag":
        return {"type": "boolean", **described}
    if setting.reads == "integer":
        return {"type": "integer", "minimum": setting.minimum, **described}
    return {"padding": _ref("padding"), "number": {"type": "number"}}[setting.reads]


def _layer(kind: str) -> dict:
    """`- kind: {settings}` (with an optional sibling `name:`)."""
    declared = {setting.name: _setting(setting) for setting in REGISTRY[kind].settings}
    if not REGISTRY[kind].joins:   # add and concat name their values in inputs:
        declared["from"] = _ref("from")
    settings = _object({**declared, "name": _ref("name")}, REQUIRED.get(kind, ()),
                       f"{kind} settings")
    return _object({kind: settings if kind in REQUIRED else _nullable(settings), "name": _ref("name")},
                   required=(kind,))


def _loss_form() -> dict:
    """``{cross_entropy: {from: logits}}``: one entropy loss with what it reads; or a loss with its
    numeric options (``{multiclass_svm: {margin: 1}}``)."""
    settings = _nullable(_object({"from": {"enum": list(FORMS), "description": "probabilities (the "
                                           "default: after softmax/sigmoid) or logits (as PyTorch)"}}))
    forms = {name: settings for name, cls in LOSSES.items() if cls.logits_form is not None}
    forms.update({name: _nullable(_object({option: {"type": "number"} for option in cls.options}))
                  for name, cls in LOSSES.items() if cls.options})
    return {**_object(forms), "minProperties": 1, "maxProperties": 1}


def spec_schema() -> dict:
    """The JSON Schema of a cnngrad spec."""
    bare = [kind for kind in SETTINGS if kind not in REQUIRED]
    layer = {"anyOf": [{"enum": bare, "description": "a layer without settings"},
                       *(_layer(kind) for kind in SETTINGS)]}
    quantity = r"^(?!tolerance$)[A-Za-z_][A-Za-z0-9_.]*\s*(\[[0-9, ]*\])?$"
    expect = {"type": "object", "description": "values to verify, by quantity name (conv1, grad.conv1.kernel[0,1])",
              "properties": {"tolerance": {"anyOf": [{"const": "auto"}, {"type": "number", "minimum": 0}]}},
              "patternProperties": {quantity: {"anyOf": [{"type": "number"}, _ref("array"), _ref("file")]}},
              "additionalProperties": False}
    properties = {
        "name": _nullable({"type": "string"}),
        "description": _nullable({"type": "string"}),
        "input": {**_ref("value"), "description": "2-D (H, W), 3-D (C, H, W) or a 1-D vector"},
        "layers": {"type": "array", "items": layer,
                   "description": "applied in order; [] for a loss-only example (the input is the output)"},
        "loss": _nullable({"anyOf": [{"enum": list(LOSSES)}, _loss_form()]}),
        "target": _nullable({**_ref("value"), "description": "an integer is a class index for cross_entropy "
                                                              "and multiclass_svm"}),
        "upstream_grad": _nullable({**_ref("value"), "description": "with loss: none, ∂E/∂(final output)"}),
        "expect": _nullable(expect),
    }
    properties = {key: properties[key] for key in KEYS}     # a KeyError if the loader gained a key
    # backward and check need where the gradient starts: a loss, or upstream_grad (loss: none)
    starts = [{"required": [key], "properties": {key: {"not": {"type": "null"}}}}
              for key in ("loss", "upstream_grad")]
    return {"$schema": DIALECT, "title": "cnngrad spec", **_object(properties, required=("input", "layers")),
            "anyOf": starts, "$defs": DEFINITIONS}
