#!/usr/bin/env python3
"""Train tree-ensemble, linear and baseline-MLP scikit-learn models on RAW features and export
them as ONNX-ML graphs with skl2onnx / onnxmltools. Same conventions, helpers and output files as
scripts/train_models.py (split, N_CALIB, save_float_metrics), but these graphs are the
converters' own output, not written by hand.

Usage (from the repo root; needs the extra packages at the end of scripts/requirements.txt):

    python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt
    .venv/bin/python scripts/train_trees.py                     # writes models/
    .venv/bin/python scripts/train_trees.py --only breast_rf    # one (or more) models
    .venv/bin/python scripts/train_trees.py --out DIR           # elsewhere

Outputs (deterministic: fixed random_state everywhere, single-threaded training):

    models/<name>.onnx                 ONNX-ML model, < 300 KB
    models/data/<name>_calib.npy       the first 200 training rows (float32, RAW features)
    models/data/<name>_test_x.npy      every held-out row (float32, RAW features)
    models/data/<name>_test_y.npy      int64 labels / float32 raw targets
    models/data/<name>_test_float.npy  onnxruntime's output on test_x (float32): the class
                                       probabilities [N, C] of a classifier (its probability
                                       output, never the label), the prediction [N, 1] of a
                                       regressor; the reference for a float evaluator
    models/float_metrics.json          accuracy (classifiers) or rmse/r2 (regressors, raw
                                       target units), onnx_vs_sklearn_max_abs_diff, and the
                                       graph's output names (onnx_outputs)

Opsets: requested {'': 13, 'ai.onnx.ml': 3}; the converters declare the lowest versions the
graph needs: ai.onnx.ml 1 in every file, ai.onnx 13 (skl2onnx), ai.onnx 9 (LightGBM), no
ai.onnx import at all (XGBoost: one ai.onnx.ml node). The only edits made to the converters'
graphs: opset imports deduplicated and ordered (canonical_opsets), batch dimension named "N"
(name_batch_dim), graph name = model name.

No standardization in the data: the ONNX input "input" [N, F] is the raw float32 feature
vector of the scikit-learn dataset (breast_cancer 30 features ~0..4254, wine 13, digits 64
pixels 0..16, diabetes load_diabetes(scaled=False): age, sex 1/2, bmi, bp, s1..s6). The linear
and MLP pipelines carry their StandardScaler inside the graph (an ai.onnx.ml Scaler node).
Models are fit on the float32 rows. Classifier splits are stratified (train_models.split,
test_size 0.25, random_state 0); regressor splits are not. Diabetes targets are raw (25..346).

Models and graphs (classifier outputs "label" [N] int64 + "probabilities" [N, C] float, except
breast_rf, which keeps the default ZipMap; regressor output "variable" [N, 1]):

    breast_gbdt     GradientBoostingClassifier(n_estimators=100, max_depth=3), binary:
                    TreeEnsembleClassifier(LOGISTIC, base_values) -> Identity
    breast_rf       RandomForestClassifier(n_estimators=50, max_depth=8), default ZipMap:
                    TreeEnsembleClassifier(NONE) -> Cast(label, to int64) + ZipMap -> outputs
                    "output_label" [N] int64, "output_probability" seq(map(int64, float));
                    test_float holds the map values as [N, 2] in class order 0, 1
    breast_extra    ExtraTreesClassifier(n_estimators=30, max_depth=8): TreeEnsembleClassifier(NONE)
    wine_hgb        HistGradientBoostingClassifier(max_iter=50), 3 classes:
                    TreeEnsembleClassifier(SOFTMAX, base_values), 3 trees per iteration
    digits_gbdt     GradientBoostingClassifier(n_estimators=30, max_depth=3), 10 classes, raw
                    pixels 0..16: TreeEnsembleClassifier(SOFTMAX, base_values) -> Identity
    diabetes_gbdt   GradientBoostingRegressor(n_estimators=100, max_depth=3):
                    TreeEnsembleRegressor(NONE, base_values)
    diabetes_rf     RandomForestRegressor(n_estimators=30, max_depth=6): TreeEnsembleRegressor
                    (aggregate SUM of leaf values pre-divided by the tree count)
    breast_linear   Pipeline(StandardScaler, LogisticRegression): Scaler -> LinearClassifier(LOGISTIC)
    diabetes_linear Pipeline(StandardScaler, Ridge): Scaler -> LinearRegressor
    breast_mlp      Pipeline(StandardScaler, MLPClassifier((16,), max_iter=2000)), the MLP
                    baseline of similar accuracy: Scaler -> Cast -> MatMul -> Add -> Relu ->
                    MatMul -> Add -> Sigmoid -> Sub(1, p) -> Concat (probabilities) and
                    ArgMax -> ArrayFeatureExtractor -> Reshape -> Cast (label)
    breast_xgb      xgboost XGBClassifier(n_estimators=50, max_depth=4) via onnxmltools:
                    TreeEnsembleClassifier(LOGISTIC, base_values, BRANCH_LT)
    breast_lgbm     lightgbm LGBMClassifier(n_estimators=50, num_leaves=15) via onnxmltools:
                    TreeEnsembleClassifier(LOGISTIC) -> Identity x2 -> Cast(label) + Mul(prob, 1)
    (breast_xgb / breast_lgbm are skipped with a message when xgboost / lightgbm / onnxmltools
    do not import.)

Binary TreeEnsembleClassifier graphs (all breast_* trees) put ONE weight per leaf on class id 0;
onnxruntime reads it as the score s of class 1 (plus base_values[0]) and outputs
[1 - s, s] (post_transform NONE) or [sigmoid(-s), sigmoid(s)] (LOGISTIC).

Every run prints each graph node by node (op, domain, inputs -> outputs) with a summary of
its attributes (tree counts, node modes, depth, post_transform, ...) for converter writers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import helper
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_models import N_CALIB, save_float_metrics, split  # noqa: E402

TARGET_OPSET = {"": 13, "ai.onnx.ml": 3}
MAX_ONNX_BYTES = 300_000
SEED = 0
# Minimum float test accuracy of each classifier (guards against a silently broken run).
THRESHOLDS = {"breast_gbdt": 0.93, "breast_rf": 0.93, "breast_extra": 0.93, "wine_hgb": 0.90,
              "digits_gbdt": 0.90, "breast_linear": 0.95, "breast_mlp": 0.95, "breast_xgb": 0.93,
              "breast_lgbm": 0.91}


# --------------------------------------------------------------------------
# data (RAW float32 features)
# --------------------------------------------------------------------------
def dataset(loader, stratify: bool, **kw):
    d = loader(**kw)
    x = d.data.astype(np.float32)
    y = d.target.astype(np.int64 if stratify else np.float32)
    return split(x, y, stratify=stratify)


def breast():
    return dataset(load_breast_cancer, True)


def wine():
    return dataset(load_wine, True)


def digits():
    return dataset(load_digits, True)


def diabetes():
    return dataset(load_diabetes, False, scaled=False)


# --------------------------------------------------------------------------
# models: name -> (data, estimator factory, kind, converter, converter options)
# --------------------------------------------------------------------------
def _xgb():
    from xgboost import XGBClassifier
    return XGBClassifier(n_estimators=50, max_depth=4, random_state=SEED, n_jobs=1, tree_method="exact")


def _lgbm():
    from lightgbm import LGBMClassifier
    return LGBMClassifier(n_estimators=50, num_leaves=15, random_state=SEED, n_jobs=1, deterministic=True,
                          force_row_wise=True, verbose=-1)


MODELS = {
    "breast_gbdt": (breast, lambda: GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=SEED),
                    "classifier", "skl2onnx", {"zipmap": False}),
    "breast_rf": (breast, lambda: RandomForestClassifier(n_estimators=50, max_depth=8, random_state=SEED, n_jobs=1),
                  "classifier", "skl2onnx", {}),  # default ZipMap kept on purpose
    "breast_extra": (breast, lambda: ExtraTreesClassifier(n_estimators=30, max_depth=8, random_state=SEED, n_jobs=1),
                     "classifier", "skl2onnx", {"zipmap": False}),
    "wine_hgb": (wine, lambda: HistGradientBoostingClassifier(max_iter=50, random_state=SEED),
                 "classifier", "skl2onnx", {"zipmap": False}),
    "digits_gbdt": (digits, lambda: GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=SEED),
                    "classifier", "skl2onnx", {"zipmap": False}),
    "diabetes_gbdt": (diabetes, lambda: GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=SEED),
                      "regressor", "skl2onnx", {}),
    "diabetes_rf": (diabetes, lambda: RandomForestRegressor(n_estimators=30, max_depth=6, random_state=SEED, n_jobs=1),
                    "regressor", "skl2onnx", {}),
    "breast_linear": (breast, lambda: Pipeline([("scaler", StandardScaler()),
                                                ("clf", LogisticRegression(max_iter=5000, random_state=SEED))]),
                      "classifier", "skl2onnx", {"zipmap": False}),
    "diabetes_linear": (diabetes, lambda: Pipeline([("scaler", StandardScaler()), ("reg", Ridge(alpha=1.0))]),
                        "regressor", "skl2onnx", {}),
    "breast_mlp": (breast, lambda: Pipeline([("scaler", StandardScaler()),
                                             ("clf", MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000,
                                                                   random_state=SEED))]),
                   "classifier", "skl2onnx", {"zipmap": False}),
    "breast_xgb": (breast, _xgb, "classifier", "xgboost", {}),
    "breast_lgbm": (breast, _lgbm, "classifier", "lightgbm", {"zipmap": False}),
}


def final_estimator(est):
    return est.steps[-1][1] if isinstance(est, Pipeline) else est


def patch_skl2onnx() -> None:
    """skl2onnx 1.20 passes HistGradientBoosting leaves' nodes_missing_value_tracks_true as the
    Python bool False next to sklearn's uint8 flags of the branch nodes; onnx 1.23's make_attribute
    rejects a bool in an ints attribute ("Expected an int, got a boolean"). Pass 0/1 instead."""
    from skl2onnx.common import tree_ensemble
    if getattr(tree_ensemble.add_node, "_myelin_patched", False):
        return
    orig = tree_ensemble.add_node

    def add_node(*args, nodes_missing_value_tracks_true=0, **kw):
        return orig(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kw)

    add_node._myelin_patched = True
    tree_ensemble.add_node = add_node


def convert(est, n_features: int, converter: str, options: dict) -> onnx.ModelProto:
    if converter == "skl2onnx":
        from skl2onnx import to_onnx
        patch_skl2onnx()
        from skl2onnx.common.data_types import FloatTensorType
        opts = {id(final_estimator(est)): options} if options else None
        return to_onnx(est, initial_types=[("input", FloatTensorType([None, n_features]))],
                       target_opset=TARGET_OPSET, options=opts)
    from onnxmltools.convert.common.data_types import FloatTensorType
    types = [("input", FloatTensorType([None, n_features]))]
    if converter == "xgboost":
        from onnxmltools import convert_xgboost
        return convert_xgboost(est, initial_types=types, target_opset=TARGET_OPSET[""])
    if converter == "lightgbm":
        from onnxmltools import convert_lightgbm
        return convert_lightgbm(est, initial_types=types, target_opset=TARGET_OPSET[""],
                                zipmap=options.get("zipmap", True))
    raise ValueError(converter)


def name_batch_dim(model: onnx.ModelProto) -> None:
    """The converters leave the batch dimension unnamed; call it "N" like train_models.py does.
    onnxmltools' LightGBM converter also declares the "label" output as [1] although it has one
    value per row (onnxruntime warns "Expected shape from model of {1} does not match actual
    shape"): make that dimension "N" too."""
    for vi in list(model.graph.input) + list(model.graph.output):
        t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if t is not None and t.HasField("shape") and len(t.shape.dim) > 0:
            d = t.shape.dim[0]
            if (not d.HasField("dim_value") and not d.dim_param) or (
                    vi in model.graph.output and len(t.shape.dim) == 1 and d.dim_value == 1):
                d.dim_param = "N"


def canonical_opsets(model: onnx.ModelProto) -> None:
    """skl2onnx collects the opset imports in a set: their order follows Python's string hash
    (PYTHONHASHSEED), and ai.onnx is sometimes listed twice. Write each domain once, ai.onnx
    first, so that the files are byte-for-byte reproducible."""
    versions = {}
    for o in model.opset_import:
        versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    del model.opset_import[:]
    for domain in sorted(versions, key=lambda d: (d != "", d)):
        model.opset_import.append(helper.make_opsetid(domain, versions[domain]))


def probabilities(out: dict, n_classes: int, classes: np.ndarray) -> np.ndarray:
    """The probability output of a classifier graph as float32 [N, C] (a ZipMap's list of dicts
    becomes the map values ordered by class label)."""
    names = [k for k in out if "prob" in k]
    assert len(names) == 1, list(out)
    p = out[names[0]]
    if isinstance(p, list):  # ZipMap: seq(map(int64 | string, float))
        p = np.array([[row[c] for c in classes.tolist()] for row in p], dtype=np.float32)
    p = np.asarray(p, dtype=np.float32)
    assert p.shape[1] == n_classes, p.shape
    return p


# --------------------------------------------------------------------------
# graph description for converter writers
# --------------------------------------------------------------------------
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def tree_summary(node: onnx.NodeProto) -> list[str]:
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    tids, nids = a["nodes_treeids"], a["nodes_nodeids"]
    modes = [m.decode() if isinstance(m, bytes) else m for m in a["nodes_modes"]]
    true_ids, false_ids = a["nodes_truenodeids"], a["nodes_falsenodeids"]
    children = {}
    for t, n, m, tt, ff in zip(tids, nids, modes, true_ids, false_ids):
        children[(t, n)] = None if m == "LEAF" else ((t, tt), (t, ff))
    max_depth = 0
    roots = sorted(set(tids))
    for t in roots:
        kids = {c for k, v in children.items() if k[0] == t and v for c in v}
        root = [k for k in children if k[0] == t and k not in kids]
        assert len(root) == 1, (t, root)
        stack = [(root[0], 0)]
        while stack:
            k, depth = stack.pop()
            if children[k] is None:
                max_depth = max(max_depth, depth)
            else:
                stack.extend((c, depth + 1) for c in children[k])
    pre = "class" if "class_ids" in a else "target"
    leaf_ids, leaf_tids = a[f"{pre}_ids"], a[f"{pre}_treeids"]
    weights = a.get(f"{pre}_weights", a.get(f"{pre}_weights_as_tensor"))
    lines = [f"      attributes: {sorted(a)}",
             f"      trees {len(roots)} (tree ids {min(tids)}..{max(tids)}), total nodes {len(nids)}, "
             f"leaves {modes.count('LEAF')}, max depth {max_depth} (branch nodes on the longest path)",
             f"      nodes_modes used: {sorted(set(modes))}",
             f"      thresholds in: {'nodes_values' if 'nodes_values' in a else 'nodes_values_as_tensor'}; "
             f"feature ids {min(a['nodes_featureids'])}..{max(a['nodes_featureids'])}",
             f"      post_transform: {a.get('post_transform', b'NONE (default)')!r}",
             f"      {pre}_ids range {min(leaf_ids)}..{max(leaf_ids)}, {len(leaf_ids)} leaf weights, "
             f"{pre}_treeids {min(leaf_tids)}..{max(leaf_tids)}, weights range "
             f"[{min(weights):.6g}, {max(weights):.6g}]"]
    for k in ("base_values", "base_values_as_tensor", "nodes_hitrates", "nodes_hitrates_as_tensor",
              "nodes_missing_value_tracks_true"):
        if k in a:
            v = list(a[k]) if not isinstance(a[k], onnx.TensorProto) else onnx.numpy_helper.to_array(a[k]).tolist()
            shown = v if len(v) <= 12 else f"{len(v)} values, distinct {sorted(set(v))[:6]}"
            lines.append(f"      {k}: {shown}")
        else:
            lines.append(f"      {k}: absent")
    for k in ("classlabels_int64s", "classlabels_strings", "n_targets", "aggregate_function"):
        if k in a:
            lines.append(f"      {k}: {a[k]!r}")
    return lines


def short(v):
    if isinstance(v, onnx.TensorProto):
        arr = onnx.numpy_helper.to_array(v)
        return f"tensor{list(arr.shape)} {arr.ravel()[:6].tolist()}{'...' if arr.size > 6 else ''}"
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} values: {list(v[:4])}...]"
    return repr(v)


def describe(model: onnx.ModelProto) -> str:
    g = model.graph
    opsets = [(o.domain or "ai.onnx", o.version) for o in model.opset_import]

    def vi_str(vi):
        t = vi.type
        if t.HasField("tensor_type"):
            dims = [d.dim_param or d.dim_value for d in t.tensor_type.shape.dim]
            return f"{vi.name}: {onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)}{dims}"
        if t.HasField("sequence_type") and t.sequence_type.elem_type.HasField("map_type"):
            m = t.sequence_type.elem_type.map_type
            key = onnx.TensorProto.DataType.Name(m.key_type)
            val = onnx.TensorProto.DataType.Name(m.value_type.tensor_type.elem_type)
            return f"{vi.name}: seq(map({key}, tensor({val})))"
        return f"{vi.name}: {helper.printable_type(t)}"

    lines = [f"  opsets {opsets}, ir_version {model.ir_version}, producer {model.producer_name} "
             f"{model.producer_version}, {model.ByteSize()} bytes",
             f"  inputs  {[vi_str(v) for v in g.input]}",
             f"  outputs {[vi_str(v) for v in g.output]}"]
    for i, n in enumerate(g.node):
        lines.append(f"  [{i}] {n.op_type} ({n.domain or 'ai.onnx'}) {n.name!r}: {list(n.input)} -> {list(n.output)}")
        if n.op_type in TREE_OPS:
            lines.extend(tree_summary(n))
        elif n.attribute:
            for a in n.attribute:
                lines.append(f"      {a.name} = {short(helper.get_attribute_value(a))}")
    for t in g.initializer:
        lines.append(f"  init {t.name} {onnx.TensorProto.DataType.Name(t.data_type)}{list(t.dims)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# build, verify, save
# --------------------------------------------------------------------------
def build(name: str, out_dir: str) -> dict:
    import onnxruntime as ort

    data, make, kind, converter, options = MODELS[name]
    xtr, xte, ytr, yte = data()
    est = make()
    est.fit(xtr, ytr)
    model = convert(est, xtr.shape[1], converter, options)
    name_batch_dim(model)
    canonical_opsets(model)
    model.graph.name = name
    onnx.checker.check_model(model, full_check=True)
    size = model.ByteSize()
    assert size < MAX_ONNX_BYTES, f"{name}: ONNX is {size} bytes"

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(out_names, sess.run(None, {"input": xte})))
    one = dict(zip(out_names, sess.run(None, {"input": xte[:1]})))  # dynamic batch dim
    metrics = {}
    if kind == "classifier":
        classes = final_estimator(est).classes_
        ref = est.predict_proba(xte)
        ref_label = est.predict(xte)
        got = probabilities(outs, len(classes), classes)
        assert np.allclose(probabilities(one, len(classes), classes), got[:1], atol=1e-6)
        label = [k for k in out_names if "label" in k][0]
        assert (outs[label] == ref_label).mean() == 1.0, f"{name}: ONNX labels differ from sklearn"
        acc = float((ref_label == yte).mean())
        onnx_acc = float((classes[got.argmax(1)] == yte).mean())
        assert onnx_acc == acc, (onnx_acc, acc)
        metrics["accuracy"] = acc
        metrics["train_accuracy"] = float((est.predict(xtr) == ytr).mean())
        thr = THRESHOLDS.get(name)
        assert thr is None or acc >= thr, f"{name}: accuracy {acc} < {thr}"
        test_y = yte.astype(np.int64)
        tol = 1e-4
    else:
        ref = est.predict(xte)
        got = np.asarray(outs[out_names[0]], dtype=np.float32)
        assert np.allclose(np.asarray(one[out_names[0]]), got[:1], atol=1e-3)
        pred = got.reshape(len(xte))
        err = pred.astype(np.float64) - yte
        metrics["rmse"] = float(np.sqrt(np.mean((ref - yte) ** 2)))
        metrics["r2"] = float(1 - np.sum((ref - yte) ** 2) / np.sum((yte - yte.mean()) ** 2))
        metrics["onnx_rmse"] = float(np.sqrt(np.mean(err ** 2)))
        test_y = yte.astype(np.float32)
        tol = 1e-5 * float(np.abs(ref).max())  # float32 sums of ~150-sized targets
    diff = float(np.abs(got.reshape(ref.shape).astype(np.float64) - ref).max())
    assert diff < tol, f"{name}: onnxruntime vs sklearn max abs diff {diff}"
    metrics["onnx_vs_sklearn_max_abs_diff"] = diff
    metrics["onnx_outputs"] = out_names

    data_dir = os.path.join(out_dir, "data")
    onnx.save_model(model, os.path.join(out_dir, f"{name}.onnx"))
    for suffix, arr in (("calib", xtr[:N_CALIB].astype(np.float32)), ("test_x", xte.astype(np.float32)),
                        ("test_y", test_y), ("test_float", got.astype(np.float32))):
        np.save(os.path.join(data_dir, f"{name}_{suffix}.npy"), np.ascontiguousarray(arr))
    return dict(model=model, metrics=metrics)


def available(name: str) -> str | None:
    """None if the model's training/conversion packages import, else the reason."""
    converter = MODELS[name][3]
    mods = {"skl2onnx": ["skl2onnx"], "xgboost": ["xgboost", "onnxmltools"],
            "lightgbm": ["lightgbm", "onnxmltools"]}[converter]
    for m in mods:
        try:
            __import__(m)
        except Exception as e:  # noqa: BLE001 (ImportError, or a missing libgomp OSError)
            return f"{m} unavailable ({type(e).__name__}: {e})"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "models"))
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(MODELS), help="build only these models")
    ap.add_argument("--quiet", action="store_true", help="skip the node-by-node graph description")
    args = ap.parse_args()
    out_dir = args.out
    os.makedirs(os.path.join(out_dir, "data"), exist_ok=True)

    t0 = time.time()
    metrics = {}
    for name in args.only or MODELS:
        why = available(name)
        if why:
            print(f"{name}: SKIPPED, {why}")
            continue
        t = time.time()
        res = build(name, out_dir)
        metrics[name] = res["metrics"]
        shown = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in res["metrics"].items())
        print(f"{name}: {shown}  ({time.time() - t:.1f}s)")
        if not args.quiet:
            print(describe(res["model"]))
    save_float_metrics(out_dir, metrics)
    print(f"done in {time.time() - t0:.1f}s -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
