#!/usr/bin/env python3
"""Quantize models/digits_cnn.onnx with onnxruntime's static quantizer (QDQ format) into
models/digits_cnn_qdq.onnx: the test model for `myelin convert` of QDQ models.

Needs onnxruntime (pinned in scripts/requirements.txt); only this script does: the outputs
are committed, so CI and the Rust tests never run onnxruntime.

    .venv/bin/python scripts/make_qdq_model.py

Writes (deterministic: onnxruntime's MinMax calibration over fixed rows):

    models/digits_cnn_qdq.onnx              QuantizeLinear/DequantizeLinear around every
                                            activation (uint8, onnxruntime's default), int8
                                            weights per output channel, int32 biases
    models/data/digits_cnn_qdq_ort_y.npy    onnxruntime's own outputs of the QDQ model on
                                            models/data/digits_cnn_test_x.npy (float32)

The quantizer's pre-processing folds the BatchNormalization into the first Conv, and its
QDQ pass drops the Relus after the Convs (the uint8 range starting at 0 clamps instead).
Calibration uses the same 200 rows as `myelin convert` (models/data/digits_cnn_calib.npy).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(os.path.dirname(HERE), "models")


class Rows(CalibrationDataReader):
    def __init__(self, x: np.ndarray):
        self.rows = iter([{"input": r[None]} for r in x])

    def get_next(self):
        return next(self.rows, None)


def run(path: str, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i:i + 64]})[0] for i in range(0, len(x), 64)])


def main() -> int:
    src = os.path.join(MODELS, "digits_cnn.onnx")
    dst = os.path.join(MODELS, "digits_cnn_qdq.onnx")
    calib = np.load(os.path.join(MODELS, "data", "digits_cnn_calib.npy"))
    test_x = np.load(os.path.join(MODELS, "data", "digits_cnn_test_x.npy"))
    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, dst, Rows(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    model = onnx.load(dst)
    onnx.checker.check_model(model, full_check=True)
    float_y, ort_y = run(src, test_x), run(dst, test_x)
    np.save(os.path.join(MODELS, "data", "digits_cnn_qdq_ort_y.npy"), ort_y.astype(np.float32))
    agree = float((float_y.argmax(1) == ort_y.argmax(1)).mean())
    print(f"{dst}: {len(model.graph.node)} nodes; onnxruntime int8 vs float top-1 agreement "
          f"{agree:.4} on {len(test_x)} rows (onnxruntime {ort.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
