#!/usr/bin/env bash
# Rebuilds the committed .myl models from the committed ONNX models and calibration rows
# (models/*.onnx and models/data/ come from scripts/train_models.py), and prints what
# quantization cost on the held-out rows. Deterministic: rerunning changes no byte.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p myelin-cli --bin myelin
myelin=target/release/myelin
for name in digits_mlp digits_cnn credit_mlp residual_mlp diabetes_reg digits_branch_cnn digits_gru digits_transformer; do
  $myelin convert "models/$name.onnx" --calib "models/data/${name}_calib.npy" -o "models/$name.myl"
  $myelin compare "models/$name.onnx" "models/$name.myl" --input "models/data/${name}_test_x.npy"
  case $name in
    diabetes_reg) ;;
    *) $myelin eval "models/$name.myl" --input "models/data/${name}_test_x.npy" --labels "models/data/${name}_test_y.npy" ;;
  esac
done
