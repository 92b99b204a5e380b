"""Generates Python stubs for gRPC's interop protos at run time (grpcio-tools), under a
private package name so they do not shadow grpcio's own `grpc` package."""

import os
import sys
import tempfile


def generate_stubs(proto_dir):
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="rsgrpc-interop-py-")
    src = os.path.join(out, "src", "interop_pb", "grpc", "testing")
    os.makedirs(src)
    for name in ("empty.proto", "messages.proto", "test.proto"):
        with open(os.path.join(proto_dir, "grpc", "testing", name)) as f:
            text = f.read().replace('import "grpc/testing/', 'import "interop_pb/grpc/testing/')
        with open(os.path.join(src, name), "w") as f:
            f.write(text)
    files = [os.path.join("interop_pb", "grpc", "testing", n) for n in ("empty.proto", "messages.proto", "test.proto")]
    code = protoc.main(["protoc", "-I" + os.path.join(out, "src"), "--python_out=" + out, "--grpc_python_out=" + out] + files)
    if code != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
