"""gRPC's interop TestService on Python grpcio: the real peer our clients are tested against.

Usage: grpcio_server.py PROTO_DIR [--use_tls CERT_PEM KEY_PEM] [--socket PATH]
[--compression gzip|deflate] (what responses asked to be compressed are compressed with;
gzip unless said). Binds
127.0.0.1 on a port chosen by the OS (over TLS with --use_tls) and prints "PORT <n>" once it
serves, or binds the Unix socket PATH and prints "PORT 0". Stubs are generated at start from PROTO_DIR/grpc/testing/*.proto
(copied under a private package name so they do not shadow grpcio's own `grpc` package).
"""

import sys
import time
from concurrent import futures

from interop_stubs import generate_stubs


def main():
    generate_stubs(sys.argv[1])
    import grpc
    args = sys.argv[2:]
    compression = grpc.Compression.Gzip
    if "--compression" in args:
        compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}[
            args[args.index("--compression") + 1]]
    from interop_pb.grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc

    def payload(size):
        return messages_pb2.Payload(body=b"\0" * size)

    def echo_metadata(context):
        metadata = dict(context.invocation_metadata())
        if "x-grpc-test-echo-initial" in metadata:
            context.send_initial_metadata((("x-grpc-test-echo-initial", metadata["x-grpc-test-echo-initial"]),))
        if "x-grpc-test-echo-trailing-bin" in metadata:
            context.set_trailing_metadata((("x-grpc-test-echo-trailing-bin", metadata["x-grpc-test-echo-trailing-bin"]),))

    def maybe_fail(status, context):
        if status is not None and status.code != 0:
            context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == status.code).value), status.message)

    class TestService(test_pb2_grpc.TestServiceServicer):
        def EmptyCall(self, request, context):
            echo_metadata(context)
            return empty_pb2.Empty()

        def UnaryCall(self, request, context):
            echo_metadata(context)
            # grpcio shows a servicer neither message flags nor grpc-encoding, so this
            # server cannot check expect_compressed (the clients' feature probe finds out).
            if request.HasField("response_status"):
                maybe_fail(request.response_status, context)
            if request.response_compressed.value:
                context.set_compression(compression)
            return messages_pb2.SimpleResponse(payload=payload(request.response_size))

        CacheableUnaryCall = UnaryCall

        def _respond(self, request, context):
            for params in request.response_parameters:
                if params.interval_us:
                    time.sleep(params.interval_us / 1e6)
                if params.compressed.value:
                    context.set_compression(compression)
                else:
                    context.disable_next_message_compression()
                yield messages_pb2.StreamingOutputCallResponse(payload=payload(params.size))

        def StreamingOutputCall(self, request, context):
            yield from self._respond(request, context)
            if request.HasField("response_status"):
                maybe_fail(request.response_status, context)

        def StreamingInputCall(self, request_iterator, context):
            total = 0
            for request in request_iterator:
                total += len(request.payload.body)
            return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

        def FullDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            for request in request_iterator:
                if request.HasField("response_status"):
                    maybe_fail(request.response_status, context)
                yield from self._respond(request, context)

        def HalfDuplexCall(self, request_iterator, context):
            requests = list(request_iterator)
            for request in requests:
                yield from self._respond(request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    if "--socket" in args:
        server.add_insecure_port("unix:" + args[args.index("--socket") + 1])
        port = 0
    elif "--use_tls" in args:
        at = args.index("--use_tls")
        with open(args[at + 1], "rb") as f:
            cert = f.read()
        with open(args[at + 2], "rb") as f:
            key = f.read()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
