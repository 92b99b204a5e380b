#!/usr/bin/env bash
# Runs the whole rsgrpc test suite: unit, integration, interop, golden, plugin and doc
# tests, and the main example. Installs what the tests need when it is missing:
#   - protoc (Debian's protobuf-compiler), for the protoc plugin tests.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v protoc >/dev/null 2>&1; then
    echo "installing protoc (protobuf-compiler)..."
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
fi

cargo run --quiet -p helloworld
cargo run --quiet -p macro-greeter
cargo test --workspace --all-targets
cargo test --workspace --doc
