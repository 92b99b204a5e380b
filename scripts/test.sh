#!/usr/bin/env bash
# Runs the whole rsgrpc test suite: unit, integration, interop, golden, plugin and doc
# tests, and the main example. Installs what the tests need when it is missing:
#   - protoc (Debian's protobuf-compiler), for the protoc plugin tests;
#   - gRPC's standard protos (Debian's grpc-proto), the reference our interop protos are
#     checked against;
#   - Python grpcio and grpcio-tools, in a virtualenv at .venv, the interop peer, with
#     gRPC's Python clients for health (grpcio-health-checking), reflection
#     (grpcio-reflection) and rich error details (grpcio-status);
#   - Google's common protos (pip's googleapis-common-protos, in .venv), which with gRPC's
#     protos are the real-world input of the plugin test protoc-gen-rsgrpc/tests/real_protos.rs;
#   - nginx (Debian's nginx-light), a real gRPC proxy (grpc_pass) the transport tests call
#     through. Only its binary is used; the system service is not started;
#   - Node.js (Debian's nodejs and npm, when node is missing) and @grpc/grpc-js with
#     @grpc/proto-loader from npm, at the versions of examples/interop/node/package-lock.json,
#     the third interop peer (examples/interop/tests/grpcjs.rs);
#   - for gRPC-Web: Debian's chromium (a real browser, headless) and curl, and from npm
#     connect-web, connect-node, protoc-gen-es, esbuild and puppeteer-core (which drives
#     the system's chromium and downloads no browser), at the versions of
#     examples/interop/web/package-lock.json (examples/interop/tests/grpc_web.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/share/grpc-proto/grpc/testing/test.proto ] || missing+=(grpc-proto)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}..."
    as_root apt-get update -qq
    # Installing nginx would start its system service on port 80: the tests need none.
    own_policy=false
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        own_policy=true
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    if $own_policy; then as_root rm -f /usr/sbin/policy-rc.d; fi
fi

if ! .venv/bin/python -c "import grpc, grpc_tools, google.rpc.status_pb2, grpc_health.v1, grpc_reflection.v1alpha, grpc_status" >/dev/null 2>&1; then
    echo "installing grpcio, its health, reflection and status packages and googleapis-common-protos into .venv..."
    if ! python3 -m venv .venv >/dev/null 2>&1; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv .venv
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check \
        grpcio grpcio-tools googleapis-common-protos \
        grpcio-health-checking grpcio-reflection grpcio-status
fi

if ! (cd examples/interop/node && node -e 'require("@grpc/grpc-js"); require("@grpc/proto-loader")') >/dev/null 2>&1; then
    echo "installing @grpc/grpc-js and @grpc/proto-loader into examples/interop/node..."
    (cd examples/interop/node && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! (cd examples/interop/web && node -e 'require.resolve("puppeteer-core"); require.resolve("@connectrpc/connect-web"); require.resolve("esbuild")') >/dev/null 2>&1; then
    echo "installing the gRPC-Web test page's packages into examples/interop/web..."
    (cd examples/interop/web && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo run --quiet -p helloworld
cargo run --quiet -p macro-greeter
cargo test --workspace --all-targets
cargo test --workspace --doc
