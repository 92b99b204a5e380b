"""grpcio-reflection's ProtoReflectionDescriptorDatabase against a reflection service: list
the services, then resolve every method's input and output types to full descriptors
through a protobuf DescriptorPool.

Usage: grpcio_reflection.py PORT v1|v1alpha. grpcio's database speaks v1alpha; for v1 its
stub is pointed at the v1 method, whose messages are the same on the wire. Prints
"SERVICE name", "METHOD name input output" and "FIELDS type n" lines, then
"N passed, M failed"; exits non-zero when a case failed.
"""

import sys
import traceback
import types

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_reflection.v1alpha.reflection_pb2 import ServerReflectionRequest, ServerReflectionResponse


def main():
    port, version = int(sys.argv[1]), sys.argv[2]
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    database = ProtoReflectionDescriptorDatabase(channel)
    if version == "v1":
        database._stub = types.SimpleNamespace(
            ServerReflectionInfo=channel.stream_stream(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                request_serializer=ServerReflectionRequest.SerializeToString,
                response_deserializer=ServerReflectionResponse.FromString,
            )
        )
    elif version != "v1alpha":
        sys.exit("version is v1 or v1alpha, not %r" % version)
    pool = DescriptorPool(database)
    passed = failed = 0

    def case(name, fn):
        nonlocal passed, failed
        try:
            fn()
            passed += 1
        except Exception:
            failed += 1
            print("%s: FAILED\n%s" % (name, traceback.format_exc()), flush=True)

    services = []

    def list_services():
        services.extend(database.get_services())
        assert services, "no services listed"
        for name in services:
            print("SERVICE %s" % name, flush=True)

    case("list_services", list_services)
    for name in services:

        def resolve(name=name):
            service = pool.FindServiceByName(name)
            assert service.methods, "%s has no methods" % name
            for method in service.methods:
                print(
                    "METHOD %s %s %s"
                    % (method.full_name, method.input_type.full_name, method.output_type.full_name),
                    flush=True,
                )
                for message in (method.input_type, method.output_type):
                    # A full descriptor: its fields, and theirs, are resolved.
                    print("FIELDS %s %d" % (message.full_name, len(message.fields)), flush=True)
                    for field in message.fields:
                        if field.message_type is not None:
                            assert field.message_type.full_name, field

        case("resolve %s" % name, resolve)

    def unknown_symbol():
        try:
            pool.FindMessageTypeByName("no.such.Message")
        except KeyError:
            return
        raise AssertionError("an unknown symbol was found")

    case("unknown_symbol", unknown_symbol)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
