"""gRPC's interop test cases on Python grpcio: the real peer our servers are tested against.

Usage: grpcio_client.py PROTO_DIR --server_port P [--server_host H] [--test_case NAME,...|all]
[--use_tls --ca_file PEM --server_host_override NAME] [--compression gzip|deflate] (what
the compressed cases compress with, and the channel accepts; gzip unless said). A server_host of unix:PATH is a Unix
socket (the port is then ignored).
Prints each case's result and "N passed, M failed"; exits non-zero when a case failed.
"""

import argparse
import queue
import sys

from interop_stubs import generate_stubs

REQUEST_SIZES = [27182, 8, 1828, 45904]
RESPONSE_SIZES = [31415, 9, 2653, 58979]
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("proto_dir")
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, default=0)
    parser.add_argument("--use_tls", action="store_true")
    parser.add_argument("--ca_file")
    parser.add_argument("--server_host_override")
    parser.add_argument("--test_case", default="all")
    parser.add_argument("--compression", choices=["gzip", "deflate"], default="gzip")
    args = parser.parse_args()
    generate_stubs(args.proto_dir)
    import grpc
    from interop_pb.grpc.testing import empty_pb2, messages_pb2 as m, test_pb2_grpc
    compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}[args.compression]

    if args.server_host.startswith("unix:"):
        target = args.server_host
    else:
        target = "%s:%d" % (args.server_host, args.server_port)
    if args.use_tls:
        with open(args.ca_file, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = []
        if args.server_host_override:
            options.append(("grpc.ssl_target_name_override", args.server_host_override))
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        # Over a Unix socket grpc-core sends the socket's path, percent-encoded, as
        # :authority, which h2 refuses: the server drops it before h2 sees it, so no
        # client-side option (grpc.default_authority) is needed.
        channel = grpc.insecure_channel(target)
    stub = test_pb2_grpc.TestServiceStub(channel)

    def payload(size):
        return m.Payload(body=b"\0" * size)

    def large():
        return m.SimpleRequest(response_size=314159, payload=payload(271828))

    def expect(code, fn, details=None):
        try:
            fn()
        except grpc.RpcError as e:
            assert e.code() == code, "expected %s, got %s %r" % (code, e.code(), e.details())
            if details is not None:
                assert e.details() == details, "details %r" % e.details()
            return
        raise AssertionError("expected %s, the call succeeded" % code)

    def probe(fn):
        # Servers that check expect_compressed answer INVALID_ARGUMENT; others OK.
        try:
            fn()
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e

    def output_request(sizes, compressed=None, size=0):
        params = [
            m.ResponseParameters(size=s, compressed=None if compressed is None else m.BoolValue(value=compressed))
            for s in sizes
        ]
        return m.StreamingOutputCallRequest(response_parameters=params, payload=payload(size))

    class Requests:
        """A request iterator fed from the test, for ping-pong style calls."""

        def __init__(self):
            self.q = queue.Queue()

        def put(self, item):
            self.q.put(item)

        def close(self):
            self.q.put(None)

        def __iter__(self):
            return self

        def __next__(self):
            item = self.q.get()
            if item is None:
                raise StopIteration
            return item

    def empty_unary():
        assert stub.EmptyCall(empty_pb2.Empty()) == empty_pb2.Empty()

    def large_unary():
        assert len(stub.UnaryCall(large()).payload.body) == 314159

    def client_compressed_unary():
        req = large()
        req.expect_compressed.value = True
        probe(lambda: stub.UnaryCall(req))
        assert len(stub.UnaryCall(req, compression=compression).payload.body) == 314159
        req.expect_compressed.value = False
        assert len(stub.UnaryCall(req).payload.body) == 314159

    def server_compressed_unary():
        for compressed in (True, False):
            req = large()
            req.response_compressed.value = compressed
            assert len(stub.UnaryCall(req).payload.body) == 314159

    def client_streaming():
        reqs = [m.StreamingInputCallRequest(payload=payload(s)) for s in REQUEST_SIZES]
        assert stub.StreamingInputCall(iter(reqs)).aggregated_payload_size == 74922

    def client_compressed_streaming():
        first = m.StreamingInputCallRequest(payload=payload(27182), expect_compressed=m.BoolValue(value=True))
        probe(lambda: stub.StreamingInputCall(iter([first])))
        second = m.StreamingInputCallRequest(payload=payload(45904), expect_compressed=m.BoolValue(value=False))
        reply = stub.StreamingInputCall(iter([first, second]), compression=compression)
        assert reply.aggregated_payload_size == 73086

    def server_streaming():
        sizes = [len(r.payload.body) for r in stub.StreamingOutputCall(output_request(RESPONSE_SIZES))]
        assert sizes == RESPONSE_SIZES, sizes

    def server_compressed_streaming():
        req = m.StreamingOutputCallRequest(response_parameters=[
            m.ResponseParameters(size=31415, compressed=m.BoolValue(value=True)),
            m.ResponseParameters(size=92653, compressed=m.BoolValue(value=False)),
        ])
        sizes = [len(r.payload.body) for r in stub.StreamingOutputCall(req)]
        assert sizes == [31415, 92653], sizes

    def ping_pong():
        reqs = Requests()
        responses = stub.FullDuplexCall(reqs)
        for req_size, resp_size in zip(REQUEST_SIZES, RESPONSE_SIZES):
            reqs.put(output_request([resp_size], size=req_size))
            assert len(next(responses).payload.body) == resp_size
        reqs.close()
        assert next(responses, None) is None

    def empty_stream():
        assert list(stub.FullDuplexCall(iter([]))) == []

    def timeout_on_sleeping_server():
        reqs = Requests()
        reqs.put(output_request([31415], size=27182))
        expect(grpc.StatusCode.DEADLINE_EXCEEDED, lambda: list(stub.FullDuplexCall(reqs, timeout=0.001)))

    def cancel_after_begin():
        reqs = Requests()
        future = stub.StreamingInputCall.future(reqs)
        future.cancel()
        assert future.cancelled()
        assert future.code() == grpc.StatusCode.CANCELLED, future.code()

    def cancel_after_first_response():
        reqs = Requests()
        responses = stub.FullDuplexCall(reqs)
        reqs.put(output_request([31415], size=27182))
        assert len(next(responses).payload.body) == 31415
        responses.cancel()
        expect(grpc.StatusCode.CANCELLED, lambda: next(responses))

    def status_code_and_message():
        status = m.EchoStatus(code=2, message="test status message")
        expect(grpc.StatusCode.UNKNOWN, lambda: stub.UnaryCall(m.SimpleRequest(response_status=status)),
               "test status message")
        req = m.StreamingOutputCallRequest(response_status=status)
        expect(grpc.StatusCode.UNKNOWN, lambda: list(stub.FullDuplexCall(iter([req]))), "test status message")

    def special_status_message():
        status = m.EchoStatus(code=2, message=SPECIAL)
        expect(grpc.StatusCode.UNKNOWN, lambda: stub.UnaryCall(m.SimpleRequest(response_status=status)), SPECIAL)

    def unimplemented_method():
        expect(grpc.StatusCode.UNIMPLEMENTED, lambda: stub.UnimplementedCall(empty_pb2.Empty()))

    def unimplemented_service():
        other = test_pb2_grpc.UnimplementedServiceStub(channel)
        expect(grpc.StatusCode.UNIMPLEMENTED, lambda: other.UnimplementedCall(empty_pb2.Empty()))

    def custom_metadata():
        metadata = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
                    ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))

        def check(initial, trailing):
            assert dict(initial).get("x-grpc-test-echo-initial") == "test_initial_metadata_value", initial
            assert dict(trailing).get("x-grpc-test-echo-trailing-bin") == b"\xab\xab\xab", trailing

        _, call = stub.UnaryCall.with_call(large(), metadata=metadata)
        check(call.initial_metadata(), call.trailing_metadata())
        responses = stub.FullDuplexCall(iter([output_request([314159], size=271828)]), metadata=metadata)
        list(responses)
        check(responses.initial_metadata(), responses.trailing_metadata())

    cases = {name: fn for name, fn in locals().items() if name in (
        "empty_unary", "large_unary", "client_compressed_unary", "server_compressed_unary",
        "client_streaming", "client_compressed_streaming", "server_streaming",
        "server_compressed_streaming", "ping_pong", "empty_stream", "timeout_on_sleeping_server",
        "cancel_after_begin", "cancel_after_first_response", "status_code_and_message",
        "special_status_message", "unimplemented_method", "unimplemented_service", "custom_metadata")}
    names = list(cases) if args.test_case == "all" else args.test_case.split(",")
    passed = failed = 0
    for name in names:
        try:
            cases[name]()
            passed += 1
            print("%s: passed" % name, flush=True)
        except Exception as e:  # report every kind of failure, keep going
            failed += 1
            print("%s: FAILED: %r" % (name, e), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
