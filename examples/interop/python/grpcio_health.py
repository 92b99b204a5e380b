"""grpcio-health-checking's client against a health service: Check, and a Watch that sees
a status change made by the server's owner.

Usage: grpcio_health.py PORT SERVICE. The server must report SERVICE and the whole server
("") as SERVING. After the first Watch answer the script prints "WATCHING" and waits for
SERVICE to become NOT_SERVING. Prints each case's result and "N passed, M failed"; exits
non-zero when a case failed.
"""

import sys
import traceback

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def main():
    port, service = int(sys.argv[1]), sys.argv[2]
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    stub = health_pb2_grpc.HealthStub(channel)

    def check_server():
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=20)
        assert response.status == SERVING, response

    def check_service():
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=20)
        assert response.status == SERVING, response

    def check_unknown():
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=20)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
            return
        raise AssertionError("Check of an unknown service succeeded")

    def watch_unknown():
        call = stub.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=20)
        first = next(call)
        assert first.status == SERVICE_UNKNOWN, first
        call.cancel()

    def watch_change():
        call = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=60)
        first = next(call)
        assert first.status == SERVING, first
        print("WATCHING", flush=True)
        second = next(call)
        assert second.status == NOT_SERVING, second
        call.cancel()

    cases = [check_server, check_service, check_unknown, watch_unknown, watch_change]
    passed = failed = 0
    for case in cases:
        try:
            case()
            passed += 1
            print("%s: passed" % case.__name__, flush=True)
        except Exception:
            failed += 1
            print("%s: FAILED\n%s" % (case.__name__, traceback.format_exc()), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
