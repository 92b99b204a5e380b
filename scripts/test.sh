#!/usr/bin/env bash
# Runs the whole rsgrpc test suite: unit, integration, interop and doc tests, and the
# main example. Installs whatever the tests need that is missing; today that is nothing
# beyond a Rust toolchain (tonic, the interop peer, comes from crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo run --quiet -p helloworld
cargo test --workspace --all-targets
cargo test --workspace --doc
