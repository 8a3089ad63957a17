#!/usr/bin/env python3
"""Build the tiny attention encoder (`digits_transformer`) and export it as the ONNX graph
`torch.onnx.export` writes for it (opset 17, so LayerNormalization is one node). Same
conventions, helpers and outputs as scripts/train_models.py (run it the same way).

Data: scikit-learn's load_digits; each 8×8 image is a sequence of 8 tokens (its rows) of 8
features (pixels / 16). The network, as PyTorch would write it:

    class DigitsEncoder(nn.Module):
        def __init__(self, d=8):
            self.q, self.k, self.v, self.o = (nn.Linear(8, d) for _ in range(4))
            self.norm = nn.LayerNorm(8)
            self.head = nn.Linear(64, 10)
        def forward(self, x):                       # [N, 8, 8]
            q, k, v = self.q(x), self.k(x), self.v(x)
            a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
            h = self.norm(x + self.o(a @ v))        # residual, LayerNorm
            return torch.softmax(self.head(h.flatten(1)), dim=1)

torch.onnx.export writes nn.Linear on a rank-3 input as MatMul(x, Wᵀ) + Add(bias), `k.transpose`
as Transpose(perm=[0, 2, 1]), the scaling as Div by a constant, then Softmax(axis=-1), MatMul,
Add, LayerNormalization(axis=-1), Flatten(axis=1), Gemm(transB=1), Softmax(axis=1).

Training: torch does not install here, so the encoder's weights are fixed (random, seeded,
scaled like PyTorch's default init) and only the head is trained (scikit-learn's
LogisticRegression on the encoder's outputs): the graph is the real thing, the accuracy is
what a frozen random encoder gives.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_models import IR_VERSION, N_CALIB, digits_data, save_float_metrics, softmax  # noqa: E402

NAME = "digits_transformer"
OPSET = 17
D = 8
LN_EPS = 1e-5


def encoder_params() -> dict:
    rng = np.random.default_rng(1)
    bound = 1.0 / np.sqrt(8)  # nn.Linear's default init range for fan_in 8
    p = {}
    for m in "qkvo":
        p[f"{m}.weight"] = rng.uniform(-bound, bound, (D, 8))
        p[f"{m}.bias"] = rng.uniform(-bound, bound, D)
    p["norm.weight"], p["norm.bias"] = np.ones(8), np.zeros(8)
    return p


def encode(p: dict, x: np.ndarray) -> np.ndarray:
    """The encoder in float64: [N, 8, 8] -> [N, 64]."""
    lin = lambda m, t: t @ p[f"{m}.weight"].T + p[f"{m}.bias"]
    q, k, v = lin("q", x), lin("k", x), lin("v", x)
    s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    h = x + lin("o", a @ v)
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    h = (h - mu) / np.sqrt(var + LN_EPS) * p["norm.weight"] + p["norm.bias"]
    return h.reshape(len(x), -1)


def export(p: dict) -> onnx.ModelProto:
    nodes, inits = [], []
    init = lambda name, arr: inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)) or name

    def node(op, name, inputs, **attrs):
        out = f"{name}_output_0"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def linear(m, x):  # nn.Linear on a rank-3 input: MatMul by Wᵀ, then Add the bias
        h = node("MatMul", f"/{m}/MatMul", [x, init(f"onnx::MatMul_{m}", p[f"{m}.weight"].T)])
        return node("Add", f"/{m}/Add", [init(f"{m}.bias", p[f"{m}.bias"]), h])

    q, k, v = linear("q", "input"), linear("k", "input"), linear("v", "input")
    kt = node("Transpose", "/Transpose", [k], perm=[0, 2, 1])
    s = node("MatMul", "/MatMul", [q, kt])
    s = node("Div", "/Div", [s, init("/Constant_output_0", np.array(np.sqrt(D)))])
    a = node("Softmax", "/Softmax", [s], axis=-1)
    av = node("MatMul", "/MatMul_1", [a, v])
    h = node("Add", "/Add", ["input", linear("o", av)])
    h = node("LayerNormalization", "/norm/LayerNormalization",
             [h, init("norm.weight", p["norm.weight"]), init("norm.bias", p["norm.bias"])],
             axis=-1, epsilon=LN_EPS)
    h = node("Flatten", "/Flatten", [h], axis=1)
    h = node("Gemm", "/head/Gemm", [h, init("head.weight", p["head.weight"]), init("head.bias", p["head.bias"])],
             alpha=1.0, beta=1.0, transB=1)
    nodes.append(helper.make_node("Softmax", [h], ["output"], name="/Softmax_1", axis=1))
    graph = helper.make_graph(
        nodes, NAME,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="myelin-train_transformer", producer_version="1")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def main() -> int:
    out_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
    data_dir = os.path.join(out_dir, "data")
    xtr, xte, ytr, yte = digits_data()
    p = encoder_params()
    ftr = encode(p, xtr.reshape(-1, 8, 8).astype(np.float64))
    fte = encode(p, xte.reshape(-1, 8, 8).astype(np.float64))
    head = LogisticRegression(C=1.0, max_iter=5000).fit(ftr, ytr)
    p["head.weight"], p["head.bias"] = head.coef_, head.intercept_
    model = export(p)
    out = ReferenceEvaluator(model).run(None, {"input": xte.reshape(-1, 8, 8)})[0]
    ref = softmax(fte @ head.coef_.T + head.intercept_)
    diff = float(np.abs(out - ref).max())
    assert diff < 1e-4, f"ONNX vs numpy: max abs diff {diff}"
    acc = float((out.argmax(1) == yte).mean())
    onnx.save_model(model, os.path.join(out_dir, f"{NAME}.onnx"))
    for suffix, arr in (("calib", xtr[:N_CALIB]), ("test_x", xte)):
        np.save(os.path.join(data_dir, f"{NAME}_{suffix}.npy"), arr.reshape(-1, 8, 8).astype(np.float32))
    np.save(os.path.join(data_dir, f"{NAME}_test_y.npy"), yte.astype(np.int64))
    save_float_metrics(out_dir, {NAME: {"accuracy": acc}})
    print(f"{NAME}: test accuracy {acc:.4f}, ONNX vs numpy {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
