//! Runnable examples live beside this crate (`cargo run --example quickstart`). The crate also
//! compiles and runs the README's code blocks as doctests, so the README cannot drift.
#![doc = include_str!("../../README.md")]
