//! Benchmarks live beside this crate: `cargo bench -p usage-benches`.
