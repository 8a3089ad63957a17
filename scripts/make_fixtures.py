"""Writes the small JSON fixtures the Foundry tests read (contracts/test/fixtures/), from the
committed held-out data in models/data/. Deterministic; run with the project venv:
    .venv/bin/python scripts/make_fixtures.py
Big numbers are decimal strings (18-decimal fixed point), which forge's parseJson* accept."""
import json
import pathlib

import numpy as np

root = pathlib.Path(__file__).resolve().parent.parent
data = root / "models" / "data"
out = root / "contracts" / "test" / "fixtures"
out.mkdir(parents=True, exist_ok=True)

# Digits: test rows are pixels / 16 in [0, 1]; the contract takes the raw 0..16 intensities.
x = np.load(data / "digits_mlp_test_x.npy")
y = np.load(data / "digits_mlp_test_y.npy")
samples = []
for digit in range(10):
    i = int(np.flatnonzero(y == digit)[0])
    samples.append({"label": digit, "pixels": [int(round(v * 16)) for v in x[i]]})
(out / "digits.json").write_text(json.dumps({"samples": samples}, indent=1) + "\n")

# Credit: the model takes standardized features; the contract standardizes raw ones itself.
std = json.loads((data / "credit_mlp_standardize.json").read_text())
z = np.load(data / "credit_mlp_test_x.npy")
labels = np.load(data / "credit_mlp_test_y.npy")
fx = lambda v: str(int(round(float(v) * 1e18)))
raw = z * np.array(std["std"]) + np.array(std["mean"])
applicants = []
for label in (1, 0):
    for i in np.flatnonzero(labels == label)[:3]:
        applicants.append({"label": int(label), "features": [fx(v) for v in raw[i]]})
fixture = {"mean": [fx(v) for v in std["mean"]], "std": [fx(v) for v in std["std"]], "applicants": applicants}
(out / "credit.json").write_text(json.dumps(fixture, indent=1) + "\n")
# Health cover: standardized labs and three ids per row; the contract takes raw labs (18
# decimals; load_diabetes ships them with at most 4 decimals), sex and an age in years (the
# middle of the row's age band), and derives the ids itself. Patients the float model is
# confident about (probability of progression below 0.2 or above 0.8), three of each.
from onnx.reference import ReferenceEvaluator  # noqa: E402

std = json.loads((data / "diabetes_embed_standardize.json").read_text())
rows = np.load(data / "diabetes_embed_test_x.npy")
z, ids = rows[:, :8], rows[:, 8:].astype(np.int64)
prob = ReferenceEvaluator(str(root / "models" / "diabetes_embed.onnx")).run(None, {"x_num": z, "x_cat": ids})[0][:, 1]
labs = np.round(z.astype(np.float64) * np.array(std["std"]) + np.array(std["mean"]), 4)
patients = []
for confident in (prob > 0.8, prob < 0.2):
    for i in np.flatnonzero(confident)[:3]:
        patients.append({"labs": [fx(v) for v in labs[i]], "sex": int(ids[i, 0]), "age": int(25 + 10 * ids[i, 1]),
                         "high": bool(prob[i] > 0.5)})
fixture = {"mean": [fx(v) for v in std["mean"]], "std": [fx(v) for v in std["std"]], "patients": patients}
(out / "health.json").write_text(json.dumps(fixture, indent=1) + "\n")
print("wrote", sorted(p.name for p in out.iterdir()))
