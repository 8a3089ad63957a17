//! Arbitrary bytes into `decode` (parse + validate): it must never panic, and whatever it
//! accepts must be the one canonical encoding of the model it yields (`encode` gives the
//! same bytes back), so a model id names exactly one function.

use crate::{decode, encode};

/// One execution of the `decode` target.
pub fn run(data: &[u8]) {
    if let Ok(valid) = decode(data) {
        let model = valid.model();
        assert!(
            encode(model) == data,
            "decode accepted a non-canonical encoding of {model:?}"
        );
    }
}
