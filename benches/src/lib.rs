//! Benchmarks of usage-core and usage-store. The criterion micro-benches live beside this crate
//! (`cargo bench -p usage-benches`); the storage benches of issue 3 are two binaries built on
//! this library: `gen-dataset` fills a store with the reference data set and `store-bench`
//! measures recording, reports and export on it (see `benches/README.md`).

pub mod cli;
pub mod dataset;
pub mod rng;
pub mod stats;
