"""grpcio-status on the other end of rich errors.

client PORT: calls /rich.Rich/Fail on PORT, reads the google.rpc.Status with
    grpc_status.rpc_status.from_call, and prints one line per detail.
server: serves /rich.Rich/Fail, which aborts with a google.rpc.Status carrying one detail of
    each type (made with grpc_status.rpc_status.to_status); prints "PORT n", then serves
    until stdin closes.

Detail lines are "TYPE field=value ...", sorted by field, as the Rust test expects.
"""

import sys

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

TYPES = [
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.DebugInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.BadRequest,
    error_details_pb2.RequestInfo,
    error_details_pb2.ResourceInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
]


def describe(any_detail):
    for kind in TYPES:
        if any_detail.Is(kind.DESCRIPTOR):
            message = kind()
            any_detail.Unpack(message)
            fields = " ".join(
                "%s=%s" % (field.name, value_text(value))
                for field, value in sorted(message.ListFields(), key=lambda f: f[0].name)
            )
            return "%s %s" % (kind.DESCRIPTOR.name, fields)
    return "OTHER %s" % any_detail.type_url


def value_text(value):
    if isinstance(value, duration_pb2.Duration):
        return "%ds%dn" % (value.seconds, value.nanos)
    if hasattr(value, "ListFields"):
        return "{%s}" % " ".join("%s=%s" % (f.name, value_text(v)) for f, v in sorted(value.ListFields(), key=lambda f: f[0].name))
    if isinstance(value, str):
        return value
    if hasattr(value, "items"):
        return "{%s}" % ",".join("%s:%s" % kv for kv in sorted(value.items()))
    try:
        return "[%s]" % ",".join(value_text(v) for v in value)
    except TypeError:
        return str(value)


def client(port):
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    fail = channel.unary_unary(
        "/rich.Rich/Fail",
        request_serializer=lambda _: b"",
        response_deserializer=lambda data: data,
    )
    try:
        fail(None, timeout=20)
    except grpc.RpcError as call:
        status = rpc_status.from_call(call)
        assert status is not None, "no google.rpc.Status in the trailers"
        print("STATUS %d %s" % (status.code, status.message))
        for detail in status.details:
            print(describe(detail))
        return
    sys.exit("the call succeeded")


def details():
    out = []

    def pack(message):
        detail = any_pb2.Any()
        detail.Pack(message)
        out.append(detail)

    pack(error_details_pb2.ErrorInfo(reason="QUOTA", domain="example.com", metadata={"zone": "eu"}))
    pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3, nanos=500)))
    pack(error_details_pb2.DebugInfo(stack_entries=["a.py:1", "b.py:2"], detail="boom"))
    pack(error_details_pb2.QuotaFailure(violations=[error_details_pb2.QuotaFailure.Violation(subject="user:1", description="daily")]))
    pack(error_details_pb2.PreconditionFailure(violations=[error_details_pb2.PreconditionFailure.Violation(type="TOS", subject="user:1", description="unsigned")]))
    pack(error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field="name", description="empty")]))
    pack(error_details_pb2.RequestInfo(request_id="r-1", serving_data="node 7"))
    pack(error_details_pb2.ResourceInfo(resource_type="book", resource_name="b/1", owner="me", description="gone"))
    pack(error_details_pb2.Help(links=[error_details_pb2.Help.Link(description="docs", url="https://example.com")]))
    pack(error_details_pb2.LocalizedMessage(locale="fr-FR", message="non"))
    return out


def server():
    from concurrent import futures

    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="rich: \u00e9", details=details())

    def fail(request, context):
        context.abort_with_status(rpc_status.to_status(status))

    handler = grpc.method_handlers_generic_handler(
        "rich.Rich",
        {
            "Fail": grpc.unary_unary_rpc_method_handler(
                fail, request_deserializer=lambda data: data, response_serializer=lambda data: data
            )
        },
    )
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    grpc_server.add_generic_rpc_handlers((handler,))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    print("PORT %d" % port, flush=True)
    sys.stdin.read()
    grpc_server.stop(None)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(int(sys.argv[2]))
    elif sys.argv[1] == "server":
        server()
    else:
        sys.exit("client PORT or server")
