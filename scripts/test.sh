#!/usr/bin/env bash
# Runs the whole rsgrpc test suite: unit, integration, interop, golden, plugin and doc
# tests, and the main example. Installs what the tests need when it is missing:
#   - protoc (Debian's protobuf-compiler), for the protoc plugin tests;
#   - gRPC's standard protos (Debian's grpc-proto), the reference our interop protos are
#     checked against.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/share/grpc-proto/grpc/testing/test.proto ] || missing+=(grpc-proto)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}..."
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

cargo run --quiet -p helloworld
cargo run --quiet -p macro-greeter
cargo test --workspace --all-targets
cargo test --workspace --doc
