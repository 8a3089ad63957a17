#!/usr/bin/env bash
# Rebuilds the committed .myl models from the committed ONNX models and calibration rows
# (models/*.onnx and models/data/ come from scripts/train_models.py, the ONNX-ML ones from
# scripts/train_trees.py; digits_cnn_qdq.onnx from scripts/make_qdq_model.py), and prints what quantization cost on the held-out rows, node by
# node. Deterministic: rerunning changes no byte.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --workspace --bin myelin  # whole-workspace features: no rebuild of what the tests built
myelin=target/release/myelin
# The models shipped before bias correction keep their bytes (and ids): with it, digits_mlp
# loses one held-out row and diabetes_reg's largest error grows, so it is off for them.
options() {
  case $1 in
    digits_sensitive_cnn) ;;
    *) echo --no-bias-correction ;;
  esac
}
for name in digits_mlp digits_cnn digits_sensitive_cnn credit_mlp residual_mlp diabetes_reg diabetes_embed digits_transformer digits_branch_cnn digits_gru; do
  calib=(--calib "models/data/${name}_calib.npy" $(options $name))
  $myelin convert "models/$name.onnx" "${calib[@]}" -o "models/$name.myl"
  $myelin compare "models/$name.onnx" "models/$name.myl" --input "models/data/${name}_test_x.npy" "${calib[@]}"
  case $name in
    diabetes_reg) ;;
    *) $myelin eval "models/$name.myl" --input "models/data/${name}_test_x.npy" --labels "models/data/${name}_test_y.npy" ;;
  esac
done
# ONNX-ML models of scripts/train_trees.py (tree ensembles, linear models, the MLP baseline),
# with the default options; the regressors (diabetes_*) have no classes to count
for name in breast_gbdt breast_rf breast_extra wine_hgb digits_gbdt diabetes_gbdt diabetes_rf breast_linear diabetes_linear breast_mlp breast_xgb breast_lgbm; do
  calib=(--calib "models/data/${name}_calib.npy")
  $myelin convert "models/$name.onnx" "${calib[@]}" -o "models/$name.myl"
  $myelin compare "models/$name.onnx" "models/$name.myl" --input "models/data/${name}_test_x.npy" "${calib[@]}"
  case $name in
    diabetes_*) ;;
    *) $myelin eval "models/$name.myl" --input "models/data/${name}_test_x.npy" --labels "models/data/${name}_test_y.npy" ;;
  esac
done
# quantized by onnxruntime: its own scales, no calibration rows; against the float model,
# then against the QDQ graph itself (whose float evaluation rounds like onnxruntime)
$myelin convert models/digits_cnn_qdq.onnx -o models/digits_cnn_qdq.myl
$myelin compare models/digits_cnn.onnx models/digits_cnn_qdq.myl --input models/data/digits_cnn_test_x.npy
$myelin compare models/digits_cnn_qdq.onnx models/digits_cnn_qdq.myl --input models/data/digits_cnn_test_x.npy
$myelin eval models/digits_cnn_qdq.myl --input models/data/digits_cnn_test_x.npy --labels models/data/digits_cnn_test_y.npy
