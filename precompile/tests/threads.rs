//! Results do not depend on the thread count: the engine's outputs over many random models
//! (grouped convolutions run their per-group matmuls in parallel) are digested in this
//! process (default rayon pool) and in a child process with `RAYON_NUM_THREADS=1`.

use std::process::Command;

use myelin_precompile::random::{self, Rng};
use myelin_precompile::{validate, Engine};

const CHILD: &str = "MYELIN_THREADS_CHILD";

fn digest() -> String {
    let mut all = Vec::new();
    for seed in 0..150 {
        let mut rng = Rng::new(1_000 + seed);
        let model = random::model(&mut rng, 6);
        let valid = validate::validate(model).expect("valid");
        let input = random::input(&mut rng, valid.analysis().input_len());
        all.extend(Engine::new(valid).run(&input));
    }
    let bytes: Vec<u8> = all.iter().map(|&v| v as u8).collect();
    alloy_primitives::keccak256(bytes).to_string()
}

#[test]
fn single_thread_matches_default_pool() {
    if std::env::var(CHILD).is_ok() {
        println!("DIGEST {}", digest());
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([
            "--exact",
            "single_thread_matches_default_pool",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let child = stdout
        .lines()
        .find_map(|l| l.split("DIGEST ").nth(1))
        .unwrap_or_else(|| panic!("child printed no digest:\n{stdout}"));
    assert_eq!(
        child,
        digest(),
        "outputs differ between 1 thread and the default pool"
    );
}
