//! A reader that stops early (`myelin calldata upload m.myl | head -1`) ends the command
//! quietly and successfully, as it ends `cat`, instead of a panic on the broken pipe.

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits_mlp.myl");
    // One-byte chunks: one calldata line per byte of the model, ~1 MB, more than a pipe holds.
    let mut child = Command::new(env!("CARGO_BIN_EXE_myelin"))
        .args(["calldata", "upload", "--chunk", "1"])
        .arg(&model)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}
