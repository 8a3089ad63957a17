//! Results do not depend on threads. An inference runs on its caller's thread alone
//! (burn-ndarray without rayon, sequential kernels), but a node runs calls on many threads
//! at once over the same prepared models (its cache shares them): the engine's outputs over
//! many random models, computed by four threads at once on shared engines, equal the
//! outputs computed one after another.

use std::sync::Arc;

use myelin_precompile::random::{self, Rng};
use myelin_precompile::{validate, Engine};

#[test]
fn concurrent_inferences_on_shared_engines_match_sequential_ones() {
    let cases: Arc<Vec<(Engine, Vec<i8>)>> = Arc::new(
        (0..150)
            .map(|seed| {
                let mut rng = Rng::new(1_000 + seed);
                let valid = validate::validate(random::model(&mut rng, 6)).expect("valid");
                let input = random::input(&mut rng, valid.analysis().input_len());
                (Engine::new(valid), input)
            })
            .collect(),
    );
    let sequential: Vec<Vec<i8>> = cases.iter().map(|(e, x)| e.run(x)).collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let cases = Arc::clone(&cases);
            // each thread walks the models from another starting point, so that different
            // models and the same model run at the same time
            std::thread::spawn(move || {
                let n = cases.len();
                (0..n)
                    .map(|i| (i + t * n / 4) % n)
                    .map(|i| (i, cases[i].0.run(&cases[i].1)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for (i, out) in t.join().expect("no inference panics") {
            assert_eq!(
                out, sequential[i],
                "model {i} differs when run concurrently"
            );
        }
    }
}
