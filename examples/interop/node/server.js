// gRPC's interop TestService on @grpc/grpc-js: a real peer, sharing no code with rsgrpc,
// that rsgrpc's clients are tested against.
//
// Usage: node server.js PROTO_DIR. Binds 127.0.0.1 on a port chosen by the OS and prints
// "PORT <n>" once it serves.
'use strict';

const { grpc, loadTesting, payload } = require('./common');

const ECHO_INITIAL = 'x-grpc-test-echo-initial';
const ECHO_TRAILING = 'x-grpc-test-echo-trailing-bin';

const testing = loadTesting(process.argv[2]);

// Sends the echo header of the custom_metadata case; returns the trailers to end with.
function echoMetadata(call) {
  const initial = call.metadata.get(ECHO_INITIAL);
  if (initial.length > 0) {
    const headers = new grpc.Metadata();
    headers.set(ECHO_INITIAL, initial[0]);
    call.sendMetadata(headers);
  }
  const trailers = new grpc.Metadata();
  const trailing = call.metadata.get(ECHO_TRAILING);
  if (trailing.length > 0) {
    trailers.set(ECHO_TRAILING, trailing[0]);
  }
  return trailers;
}

// The error a request's response_status asks for, if any.
function requestedError(status, trailers) {
  if (status && status.code !== 0) {
    return { code: status.code, details: status.message, metadata: trailers };
  }
  return null;
}

function sleep(us) {
  return new Promise((resolve) => setTimeout(resolve, us / 1000));
}

// Writes the responses a StreamingOutputCallRequest asks for.
async function respond(call, request) {
  for (const params of request.response_parameters) {
    if (params.interval_us > 0) {
      await sleep(params.interval_us);
    }
    if (call.cancelled) {
      return;
    }
    call.write({ payload: payload(params.size) });
  }
}

const service = {
  EmptyCall(call, callback) {
    callback(null, {}, echoMetadata(call));
  },
  UnaryCall(call, callback) {
    const trailers = echoMetadata(call);
    const error = requestedError(call.request.response_status, trailers);
    if (error) {
      callback(error);
      return;
    }
    callback(null, { payload: payload(call.request.response_size) }, trailers);
  },
  CacheableUnaryCall(call, callback) {
    service.UnaryCall(call, callback);
  },
  StreamingOutputCall(call) {
    const trailers = echoMetadata(call);
    respond(call, call.request).then(() => {
      const error = requestedError(call.request.response_status, trailers);
      if (error) {
        call.emit('error', error);
      } else {
        call.end(trailers);
      }
    });
  },
  StreamingInputCall(call, callback) {
    let total = 0;
    call.on('data', (request) => {
      total += request.payload ? request.payload.body.length : 0;
    });
    call.on('end', () => callback(null, { aggregated_payload_size: total }));
    call.on('error', () => {});
  },
  FullDuplexCall(call) {
    const trailers = echoMetadata(call);
    // Requests are answered in order, each after the previous one's responses.
    let chain = Promise.resolve();
    let failed = false;
    call.on('data', (request) => {
      chain = chain.then(async () => {
        if (failed) {
          return;
        }
        const error = requestedError(request.response_status, trailers);
        if (error) {
          failed = true;
          call.emit('error', error);
          return;
        }
        await respond(call, request);
      });
    });
    call.on('end', () => {
      chain = chain.then(() => {
        if (!failed) {
          call.end(trailers);
        }
      });
    });
    call.on('error', () => {});
  },
  HalfDuplexCall(call) {
    const trailers = echoMetadata(call);
    const requests = [];
    call.on('data', (request) => requests.push(request));
    call.on('end', async () => {
      for (const request of requests) {
        await respond(call, request);
      }
      call.end(trailers);
    });
    call.on('error', () => {});
  },
};

const server = new grpc.Server();
// UnimplementedCall is left out on purpose: grpc-js answers it UNIMPLEMENTED.
const { UnimplementedCall, ...implemented } = testing.TestService.service;
server.addService(implemented, service);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    console.error(`cannot bind: ${error.message}`);
    process.exit(1);
  }
  console.log(`PORT ${port}`);
});
