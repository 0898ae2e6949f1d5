"""Fully-connected layer: y = W a + b with W of shape (out, in).

Backward: ∂E/∂W = δ aᵀ (outer product), ∂E/∂b = δ, ∂E/∂a = Wᵀ δ.
"""
from __future__ import annotations

import numpy as np

from ..quantities import shape_text
from .base import Layer, ParamError, Setting, ShapeError, register
from .explanation import Explanation, Factor, Ref, Term

SYMBOLS = {"dy": "δ", "x": "a", "weights": "W", "bias": "b"}


@register
class FC(Layer):
    kind = "fc"
    settings = (
        Setting("weights", "array", required=True, description="(outputs, inputs): y = W a + b"),
        Setting("bias", "array", 0.0, description="a scalar, one per filter/output, or an untied map"),
    )
    param_names = ("weights", "bias")
    affine_in_input = affine_in_params = param_moves_one_unit = True

    # --- building from a spec entry: the weights size the layer

    @classmethod
    def from_spec(cls, options, shapes):
        """An fc sized by its weights, which must be 2-D (outputs, inputs)."""
        if len(shapes["weights"]) != 2:
            raise ParamError(f"weights must be 2-D (outputs, inputs), not {shape_text(shapes['weights'], 'a scalar')}",
                             "weights")
        return cls(shapes["weights"])

    def param_mismatch(self, pname, written, wanted, layer):
        """Only the bias can mismatch (the weights size the layer): one value per row of the weights."""
        return (f"{layer}.bias has shape {shape_text(written, 'a scalar')} but {layer}.weights has "
                f"{self.outputs} row(s) (outputs)")

    # --- engine: shape rule, forward, backward, and the memory they take

    def __init__(self, weights_shape):
        self.outputs, self.inputs = weights_shape

    def output_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ShapeError("fc needs a vector, but its input is a map", fix="add `- flatten` before it")
        if in_shape[0] != self.inputs:
            raise ShapeError(f"the weights have {self.inputs} columns but its input has {in_shape[0]} values",
                             "weights")
        return (self.outputs,)

    def param_shapes(self, in_shape):
        return {"weights": (self.outputs, self.inputs), "bias": (self.outputs,)}

    def forward(self, x, params):
        return x @ params["weights"].T + params["bias"], x

    def forward_each(self, x, params, pname, values):
        """x Wᵀ + b for each of ``values`` of W or b, (len(values), B, outputs): one stacked product
        (each the product ``forward`` makes, so the same bits), or x Wᵀ once for the biases."""
        if pname == "bias":
            return (x @ params["weights"].T)[None] + values[:, None, :]
        return np.matmul(x, values.transpose(0, 2, 1)) + params["bias"]

    def backward(self, dy, cache, params):
        x = cache
        # one example: ∂E/∂W is an outer product, and a broadcast multiply forms it about twice as
        # fast as a k = 1 matrix product (the same products, so the same bits)
        dweights = dy.T * x if dy.shape[0] == 1 else dy.T @ x
        return dy @ params["weights"], {"weights": dweights, "bias": dy.sum(axis=0)}

    # --- explanation: the chain rule one step, for cnngrad explain

    def explain_param(self, pname, index, x, cache, dy, params) -> Explanation:
        """∂E/∂W[o,i] = δ[o] · a[i]; ∂E/∂b[o] = δ[o]."""
        out = index[0]
        delta = Factor(float(dy[0, out]), Ref("dy", (out,)))
        if pname == "bias":
            return Explanation("∂E/∂b[o] = δ[o]", [Term([delta])], symbols=SYMBOLS)
        inp = index[1]
        return Explanation("∂E/∂W[o,i] = δ[o] · a[i]", [Term([delta, Factor(float(x[0, inp]), Ref("x", (inp,)))])],
                           symbols=SYMBOLS)

    def explain_input(self, index, x, cache, dy, params) -> Explanation:
        """∂E/∂a[i] = Σ_o W[o,i] · δ[o]: every output reads every input."""
        inp = index[0]
        terms = [Term([Factor(float(params["weights"][o, inp]), Ref("weights", (o, inp))),
                       Factor(float(dy[0, o]), Ref("dy", (o,)))]) for o in range(self.outputs)]
        return Explanation("∂E/∂a[i] = Σ_o W[o,i] · δ[o]", terms, symbols=SYMBOLS)

    # --- checker hooks: rounding size, work, kinks, exact shortcuts

    def term_magnitude(self, x, y, params):
        """Σ_i |W[o,i]| |a[i]| + |b[o]|: y[o] is a sum of these terms, which may cancel."""
        return np.abs(x) @ np.abs(params["weights"]).T + np.abs(params["bias"])

    def operations(self, in_shape):
        return self.outputs * self.inputs

    def output_unit(self, x, params, pname, entries):
        """Each flat entry of ``pname`` moves one output unit only: W[o, i] moves y[o] by a[i]
        per unit step, b[o] moves y[o] by 1. Returns (units, factors)."""
        if pname == "weights":
            out, inp = np.unravel_index(entries, (self.outputs, self.inputs))
            return out, x[0, inp]
        return np.asarray(entries), np.ones(len(entries))

    def output_change(self, x, params, pname, entries):
        """∂y/∂θ for each flat entry of ``pname`` (see ``output_unit``)."""
        units, factors = self.output_unit(x, params, pname, entries)
        change = np.zeros((len(entries), self.outputs))
        change[np.arange(len(entries)), units] = factors
        return change
