#!/usr/bin/env python3
"""Train the tabular model with categorical embeddings (`diabetes_embed`) and export it as
the ONNX graph `torch.onnx.export` writes for it (opset 13). Same conventions, helpers and
outputs as scripts/train_models.py (run it the same way, with the same requirements).

Data: scikit-learn's load_diabetes (442 patients, shipped inside the package), RAW values.
Task: is the disease progression a year later above the training median? (binary, 2 logits
and a softmax). Features:
  * numeric  x_num [N, 8]: bmi, bp, s1..s6, STANDARDIZED with the training mean/std (saved to
    models/data/diabetes_embed_standardize.json; the calling contract standardizes, as
    CreditLending does, because one int8 input scale cannot serve raw values spanning 3..300);
  * categorical x_cat [N, 3] int64: sex (2 values), age band (<30, 30s, 40s, 50s, 60s, 70+:
    6 values), BMI class (<25, 25-30, 30-35, 35+: 4 values), each through its own nn.Embedding.

The network, as PyTorch would write it:

    class DiabetesEmbed(nn.Module):
        def __init__(self):
            self.sex, self.age, self.bmi = nn.Embedding(2, 2), nn.Embedding(6, 3), nn.Embedding(4, 2)
            self.fc1, self.fc2 = nn.Linear(15, 8), nn.Linear(8, 2)
        def forward(self, x_num, x_cat):
            e = [self.sex(x_cat[:, 0]), self.age(x_cat[:, 1]), self.bmi(x_cat[:, 2])]
            h = torch.relu(self.fc1(torch.cat([x_num] + e, dim=1)))
            return torch.softmax(self.fc2(h), dim=1)

torch.onnx.export writes `x_cat[:, c]` as Constant(c) -> Gather(axis=1) and each embedding as
Gather(<module>.weight, ids) (axis 0), then Concat(axis=1) -> Gemm -> Relu -> Gemm -> Softmax.
Trained here in numpy (Adam, full batch, cross-entropy + L2), since torch does not install
on this machine.

The .npy rows the CLI reads hold the 8 standardized features, then the 3 ids (as float32).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from sklearn.datasets import load_diabetes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_models import IR_VERSION, N_CALIB, OPSET, Adam, save_float_metrics, softmax, split, standardize, train_stats  # noqa: E402

NAME = "diabetes_embed"
CARDINALITY = {"sex": 2, "age": 6, "bmi": 4}
EMBED_DIM = {"sex": 2, "age": 3, "bmi": 2}
HIDDEN = 8


def features():
    d = load_diabetes(scaled=False)
    raw = d.data  # age, sex, bmi, bp, s1..s6
    age, sex, bmi = raw[:, 0], raw[:, 1], raw[:, 2]
    ids = np.stack([
        sex.astype(np.int64) - 1,
        np.clip((age.astype(np.int64) - 20) // 10, 0, 5),
        np.digitize(bmi, [25.0, 30.0, 35.0]).astype(np.int64),
    ], axis=1)
    num = raw[:, 2:].astype(np.float64)  # bmi, bp, s1..s6
    return num, ids, d.target


def forward(p: dict, x: np.ndarray, ids: np.ndarray):
    embs = [p[f"{k}.weight"][ids[:, c]] for c, k in enumerate(CARDINALITY)]
    z = np.concatenate([x] + embs, axis=1)
    h_pre = z @ p["fc1.weight"].T + p["fc1.bias"]
    h = np.maximum(h_pre, 0.0)
    logits = h @ p["fc2.weight"].T + p["fc2.bias"]
    return logits, (z, h_pre, h)


def train(x: np.ndarray, ids: np.ndarray, y: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    n_in = x.shape[1] + sum(EMBED_DIM.values())
    p = {f"{k}.weight": rng.normal(0, 0.5, (CARDINALITY[k], EMBED_DIM[k])) for k in CARDINALITY}
    p["fc1.weight"] = rng.normal(0, np.sqrt(2.0 / n_in), (HIDDEN, n_in))
    p["fc1.bias"] = np.zeros(HIDDEN)
    p["fc2.weight"] = rng.normal(0, np.sqrt(1.0 / HIDDEN), (2, HIDDEN))
    p["fc2.bias"] = np.zeros(2)
    opt = Adam(p, lr=0.01)
    onehot = np.eye(2)[y]
    for _ in range(200):
        logits, (z, h_pre, h) = forward(p, x, ids)
        d_logits = (softmax(logits) - onehot) / len(x)
        g = {"fc2.weight": d_logits.T @ h, "fc2.bias": d_logits.sum(0)}
        d_h = (d_logits @ p["fc2.weight"]) * (h_pre > 0)
        g["fc1.weight"], g["fc1.bias"] = d_h.T @ z, d_h.sum(0)
        d_z = d_h @ p["fc1.weight"]
        at = x.shape[1]
        for c, k in enumerate(CARDINALITY):
            d_e = d_z[:, at:at + EMBED_DIM[k]]
            at += EMBED_DIM[k]
            g[f"{k}.weight"] = np.zeros_like(p[f"{k}.weight"])
            np.add.at(g[f"{k}.weight"], ids[:, c], d_e)
        for k in g:
            if k.endswith("weight"):
                g[k] = g[k] + 3e-2 * p[k]
        opt.step(g)
    return p


def export(p: dict) -> onnx.ModelProto:
    nodes, inits = [], []
    for k in p:
        inits.append(numpy_helper.from_array(p[k].astype(np.float32), k))
    embs = []
    for c, k in enumerate(CARDINALITY):
        suffix = "" if c == 0 else f"_{c}"
        const = f"/Constant{suffix}_output_0"
        nodes.append(helper.make_node("Constant", [], [const], name=f"/Constant{suffix}",
                                      value=numpy_helper.from_array(np.array(c, dtype=np.int64))))
        col = f"/Gather{suffix}_output_0"
        nodes.append(helper.make_node("Gather", ["x_cat", const], [col], name=f"/Gather{suffix}", axis=1))
        emb = f"/{k}/Gather_output_0"
        nodes.append(helper.make_node("Gather", [f"{k}.weight", col], [emb], name=f"/{k}/Gather"))
        embs.append(emb)
    nodes.append(helper.make_node("Concat", ["x_num"] + embs, ["/Concat_output_0"], name="/Concat", axis=1))
    nodes.append(helper.make_node("Gemm", ["/Concat_output_0", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"],
                                  name="/fc1/Gemm", alpha=1.0, beta=1.0, transB=1))
    nodes.append(helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/Relu_output_0"], name="/Relu"))
    nodes.append(helper.make_node("Gemm", ["/Relu_output_0", "fc2.weight", "fc2.bias"], ["/fc2/Gemm_output_0"],
                                  name="/fc2/Gemm", alpha=1.0, beta=1.0, transB=1))
    nodes.append(helper.make_node("Softmax", ["/fc2/Gemm_output_0"], ["output"], name="/Softmax", axis=1))
    graph = helper.make_graph(
        nodes, NAME,
        [helper.make_tensor_value_info("x_num", TensorProto.FLOAT, ["N", 8]),
         helper.make_tensor_value_info("x_cat", TensorProto.INT64, ["N", 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="myelin-train_tabular", producer_version="1")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def main() -> int:
    out_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
    data_dir = os.path.join(out_dir, "data")
    num, ids, target = features()
    rows = np.arange(len(num))
    tr, te, _, _ = split(rows, rows, stratify=False)
    y = (target > np.median(target[tr])).astype(np.int64)
    mean, std = train_stats(num[tr])
    x_tr, x_te = standardize(num[tr], mean, std), standardize(num[te], mean, std)
    p = train(x_tr.astype(np.float64), ids[tr], y[tr])
    model = export(p)
    sess = ReferenceEvaluator(model)
    out = sess.run(None, {"x_num": x_te, "x_cat": ids[te]})[0]
    ref = softmax(forward(p, x_te.astype(np.float64), ids[te])[0])
    diff = float(np.abs(out - ref).max())
    assert diff < 1e-4, f"ONNX vs trained model: max abs diff {diff}"
    acc = float((out.argmax(1) == y[te]).mean())
    train_acc = float((forward(p, x_tr.astype(np.float64), ids[tr])[0].argmax(1) == y[tr]).mean())
    onnx.save_model(model, os.path.join(out_dir, f"{NAME}.onnx"))
    rows_of = lambda x, i: np.concatenate([x, i.astype(np.float32)], axis=1).astype(np.float32)
    np.save(os.path.join(data_dir, f"{NAME}_calib.npy"), rows_of(x_tr, ids[tr])[:N_CALIB])
    np.save(os.path.join(data_dir, f"{NAME}_test_x.npy"), rows_of(x_te, ids[te]))
    np.save(os.path.join(data_dir, f"{NAME}_test_y.npy"), y[te])
    with open(os.path.join(data_dir, f"{NAME}_standardize.json"), "w") as f:
        json.dump({"mean": mean.tolist(), "std": std.tolist()}, f, indent=2)
        f.write("\n")
    save_float_metrics(out_dir, {NAME: {"accuracy": acc}})
    print(f"{NAME}: test accuracy {acc:.4f} (train {train_acc:.4f}), ONNX vs numpy {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
