//! Compile-fail tests: bad arguments and bad `.proto` files are compile errors pointing at
//! the attribute, with checked-in expected output (`ui/*.stderr`). To accept new output:
//! `TRYBUILD=overwrite cargo test -p rsgrpc-macros --test ui`, then review the diff.
//!
//! trybuild compiles each case in `target/tests/trybuild/rsgrpc-macros`, which is then the
//! case's `CARGO_MANIFEST_DIR`; the cases reach their `.proto` files from there.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
