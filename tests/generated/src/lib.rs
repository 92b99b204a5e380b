//! Compile-only check of the golden generated code in `src/golden` (see
//! `codegen/tests/golden.rs`): it must build with every warning denied and pass clippy, as
//! it would in a user's crate.

#![deny(warnings)]

pub mod golden;
