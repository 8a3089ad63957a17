#!/usr/bin/env python3
"""Writes the dispatch fuzz target's seed corpus (fuzz/corpus/dispatch/seed-*) from calldata made
by `myelin calldata` and `cast calldata`: each seed is a sequence of calls, each
`flags: u8, gas: u32 LE, len: u16 LE, calldata` (fuzz/fuzz_targets/dispatch.rs).
Run from the repository root after `cargo build --workspace --bins --tests`."""
import struct, subprocess
M = "target/debug/myelin"
CAST = "scripts/cast"
out = "fuzz/corpus/dispatch"
def sh(*a): return subprocess.check_output(a, text=True).strip()
def hx(s): return bytes.fromhex(s.strip().removeprefix("0x"))
def call(data, gas=10_000_000, flags=0): return struct.pack("<BIH", flags, gas, len(data)) + data
def seed(name, *calls): open(f"{out}/seed-{name}", "wb").write(b"".join(calls))
STATIC, NEWTX, CALLER_B = 1, 8, 16
diab, cnn, res, credit = (f"models/{m}.myl" for m in ("diabetes_reg", "digits_cnn", "residual_mlp", "credit_mlp"))
info = lambda m: hx(sh(M, "calldata", "info", m))
infer = lambda m, row=0: hx(sh(M, "calldata", "infer", m, "--input", m.replace(".myl", "_test_x.npy").replace("models/", "models/data/"), "--row", str(row)))
seed("info-diabetes", call(info(diab), flags=STATIC))
seed("infer-diabetes", call(infer(diab), 100_000))
seed("infer-cnn-twice", call(infer(cnn), flags=STATIC), call(infer(cnn, 1)))
seed("info-unknown", call(info(res)))
seed("publish-infer-residual", call(hx(sh(M, "calldata", "publish", res))), call(infer(res)), call(info(res), flags=NEWTX))
up = [hx(l) for l in sh(M, "calldata", "upload", credit, "--chunk", "320").split()]
seed("upload-credit", *[call(d) for d in up[:-1]], call(up[-1], flags=NEWTX))
seed("upload-other-caller", call(up[0]), call(up[1], flags=CALLER_B), call(up[-1]))
did = sh(M, "calldata", "info", diab)[10:74]
x = infer(diab)
row = x[4+96:4+96+10].hex()
seed("batch-diabetes", call(hx(sh(CAST, "calldata", "inferBatch(bytes32,bytes[])", "0x"+did, f"[0x{row},0x{row[::-1]}]"))))
seed("fixed-diabetes", call(hx(sh(CAST, "calldata", "inferFixed(bytes32,int256[],uint8)", "0x"+did, "[1,-2,3,-4,5,-6,7,-8,9,-10]", "18")), flags=STATIC))
# A model with an index input: ids follow the features (2 bytes each); the last one set past
# its limit reverts with InvalidIndex, as does an id past its limit in inferFixed.
emb = "models/diabetes_embed.myl"
seed("infer-embed", call(infer(emb), flags=STATIC))
bad = bytearray(infer(emb))
bad[4 + 96 + 8 + 4] = 0x01  # the last id's high byte: 256 + its id, past the limit of 4
seed("infer-embed-bad-id", call(bytes(bad), flags=STATIC))
eid = sh(M, "calldata", "info", emb)[10:74]
seed("fixed-embed", call(hx(sh(CAST, "calldata", "inferFixed(bytes32,int256[],uint8)", "0x"+eid, "[1,-2,3,-4,5,-6,7,-8,1,5,9]", "18")), flags=STATIC))
