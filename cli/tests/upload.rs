//! `myelin calldata upload` end to end through `myelin precompile`: every printed calldata
//! runs, in order and each as its own transaction, against one directory store, and the model
//! is then published (chunks persist between invocations as the store's code files).

use std::path::Path;
use std::process::Command;

fn myelin(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_myelin"))
        .args(args)
        .output()
        .expect("myelin runs");
    assert!(
        out.status.success(),
        "myelin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn upload_calldata_publishes_the_model_through_the_precompile() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits_mlp.myl");
    let model = model.to_str().unwrap();
    let store = std::env::temp_dir().join(format!("myelin-upload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let store = store.to_str().unwrap();

    let lines = myelin(&["calldata", "upload", model, "--chunk", "1000"]);
    let calls: Vec<&str> = lines.lines().collect();
    let size = std::fs::metadata(model).unwrap().len() as usize;
    assert_eq!(
        calls.len(),
        size.div_ceil(1000) + 1,
        "chunks, then the commit"
    );
    let precompile = |calldata: &str| myelin(&["precompile", "--store", store, calldata]);

    // Committing first names a missing chunk.
    let early = precompile(calls[calls.len() - 1]);
    assert!(early.contains("status     revert"), "{early}");
    assert!(
        early.contains("error      UploadMismatch {") && early.contains("code: 2 }"),
        "a chunk never written: {early}"
    );
    for call in &calls[..calls.len() - 1] {
        let out = precompile(call);
        assert!(out.contains("status     success"), "{out}");
    }
    let out = precompile(calls[calls.len() - 1]);
    assert!(out.contains("status     success"), "{out}");
    assert!(out.contains("log "), "ModelPublished: {out}");

    let info = myelin(&["calldata", "info", model]);
    let out = precompile(info.trim());
    assert!(out.contains("status     success"), "{out}");
    let _ = std::fs::remove_dir_all(store);
}

#[test]
fn upload_refuses_chunks_the_precompile_would_refuse() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits_mlp.myl");
    for chunk in ["0", "24577"] {
        let out = Command::new(env!("CARGO_BIN_EXE_myelin"))
            .args([
                "calldata",
                "upload",
                model.to_str().unwrap(),
                "--chunk",
                chunk,
            ])
            .output()
            .expect("myelin runs");
        assert!(!out.status.success(), "--chunk {chunk}");
    }
}

#[test]
fn a_revert_is_named_with_its_code() {
    use alloy_sol_types::SolCall;
    use myelin_precompile::abi::IMyelin;

    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits_mlp.myl");
    let bytes = std::fs::read(model).unwrap();
    let call = IMyelin::publishModelCall {
        model: bytes[..100].to_vec().into(),
    };
    let store = std::env::temp_dir().join(format!("myelin-revert-{}", std::process::id()));
    let out = myelin(&[
        "precompile",
        "--store",
        store.to_str().unwrap(),
        &format!("0x{}", hex::encode(call.abi_encode())),
    ]);
    assert!(
        out.contains("error      InvalidModel(code 2 \"truncated\", node 0)"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(store);
}
