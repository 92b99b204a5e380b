// gRPC's interop test cases, and a concurrent mix of calls, on @grpc/grpc-js: a real peer,
// sharing no code with rsgrpc, that rsgrpc's servers are tested against.
//
// Usage: node client.js PROTO_DIR --server_port P [--server_host H] [--test_case NAME|all]
//        node client.js PROTO_DIR --server_port P --test_case mix [--seconds S] [--in_flight N]
// Prints each case's result and "N passed, M failed"; exits non-zero when a case failed. The
// mix keeps N calls in flight (64 by default), cycling through unary, server streaming,
// client streaming and bidi streaming calls whose responses it checks, for S seconds (3 by
// default); every call has a deadline, so nothing waits forever.
'use strict';

const assert = require('node:assert/strict');
const { grpc, loadTesting, payload } = require('./common');

const REQUEST_SIZES = [27182, 8, 1828, 45904];
const RESPONSE_SIZES = [31415, 9, 2653, 58979];
const SPECIAL = '\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n';
const GZIP = 2;
const NO_COMPRESS = 2; // grpc-js WriteFlags.NoCompress

function flag(name, fallback) {
  const args = process.argv;
  const at = args.indexOf(name);
  if (at >= 0 && at + 1 < args.length) {
    return args[at + 1];
  }
  const prefixed = args.find((a) => a.startsWith(`${name}=`));
  return prefixed ? prefixed.slice(name.length + 1) : fallback;
}

const testing = loadTesting(process.argv[2]);
const target = `${flag('--server_host', '127.0.0.1')}:${flag('--server_port', '0')}`;
const insecure = grpc.credentials.createInsecure();
const stub = new testing.TestService(target, insecure);
const gzipStub = new testing.TestService(target, insecure, {
  'grpc.default_compression_algorithm': GZIP,
});

function deadline(ms = 30000) {
  return Date.now() + ms;
}

function unary(client, method, request, options = {}) {
  return new Promise((resolve, reject) => {
    const metadata = options.metadata || new grpc.Metadata();
    let headers = null;
    let trailers = null;
    const call = client[method](request, metadata, { deadline: options.deadline || deadline() },
      (error, response) => (error ? reject(error) : resolve({ response, headers, trailers: () => trailers })));
    call.on('metadata', (m) => { headers = m; });
    call.on('status', (s) => { trailers = s.metadata; });
  });
}

// Collects a readable call's responses until its status.
function collect(call) {
  return new Promise((resolve, reject) => {
    const responses = [];
    let headers = null;
    call.on('metadata', (m) => { headers = m; });
    call.on('data', (r) => responses.push(r));
    call.on('error', reject);
    call.on('status', (s) => {
      if (s.code === grpc.status.OK) {
        resolve({ responses, headers, trailers: s.metadata });
      }
    });
  });
}

// Resolves with the code and details of a call expected to fail.
function failure(promise) {
  return promise.then(
    () => { throw new Error('the call succeeded'); },
    (error) => ({ code: error.code, details: error.details }),
  );
}

// Servers that check expect_compressed answer INVALID_ARGUMENT to an uncompressed
// message that claims to be compressed; others OK.
async function probe(promise) {
  try {
    await promise;
  } catch (error) {
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT, error.message);
  }
}

// A queue of responses of a bidi call, read one at a time.
function reader(call) {
  const waiting = [];
  const ready = [];
  const settle = (item) => (waiting.length ? waiting.shift()(item) : ready.push(item));
  call.on('data', (r) => settle({ value: r }));
  call.on('error', (e) => settle({ error: e }));
  call.on('status', (s) => { if (s.code === grpc.status.OK) settle({ done: true }); });
  return () => new Promise((resolve) => (ready.length ? resolve(ready.shift()) : waiting.push(resolve)));
}

function large() {
  return { response_size: 314159, payload: payload(271828) };
}

function outputRequest(sizes, compressed, size = 0) {
  return {
    response_parameters: sizes.map((s) => ({
      size: s,
      compressed: compressed === undefined ? null : { value: compressed },
    })),
    payload: payload(size),
  };
}

function clientStream(client, requests, options = {}) {
  return new Promise((resolve, reject) => {
    const call = client.StreamingInputCall(new grpc.Metadata(), { deadline: deadline() },
      (error, response) => (error ? reject(error) : resolve(response)));
    for (const [request, flags] of requests) {
      call.write(request, flags);
    }
    if (options.cancel) {
      call.cancel();
    } else {
      call.end();
    }
  });
}

const cases = {
  async empty_unary() {
    const { response } = await unary(stub, 'EmptyCall', {});
    assert.deepEqual(response, {});
  },
  async large_unary() {
    const { response } = await unary(stub, 'UnaryCall', large());
    assert.equal(response.payload.body.length, 314159);
  },
  async client_compressed_unary() {
    const request = { ...large(), expect_compressed: { value: true } };
    await probe(unary(stub, 'UnaryCall', request));
    const { response } = await unary(gzipStub, 'UnaryCall', request);
    assert.equal(response.payload.body.length, 314159);
    const plain = await unary(stub, 'UnaryCall', { ...large(), expect_compressed: { value: false } });
    assert.equal(plain.response.payload.body.length, 314159);
  },
  async server_compressed_unary() {
    for (const compressed of [true, false]) {
      const { response } = await unary(stub, 'UnaryCall', { ...large(), response_compressed: { value: compressed } });
      assert.equal(response.payload.body.length, 314159);
    }
  },
  async client_streaming() {
    const response = await clientStream(stub, REQUEST_SIZES.map((s) => [{ payload: payload(s) }]));
    assert.equal(response.aggregated_payload_size, 74922);
  },
  async client_compressed_streaming() {
    const first = { payload: payload(27182), expect_compressed: { value: true } };
    await probe(clientStream(stub, [[first]]));
    const second = { payload: payload(45904), expect_compressed: { value: false } };
    const response = await clientStream(gzipStub, [[first], [second, NO_COMPRESS]]);
    assert.equal(response.aggregated_payload_size, 73086);
  },
  async server_streaming() {
    const { responses } = await collect(stub.StreamingOutputCall(outputRequest(RESPONSE_SIZES), { deadline: deadline() }));
    assert.deepEqual(responses.map((r) => r.payload.body.length), RESPONSE_SIZES);
  },
  async server_compressed_streaming() {
    const request = {
      response_parameters: [
        { size: 31415, compressed: { value: true } },
        { size: 92653, compressed: { value: false } },
      ],
    };
    const { responses } = await collect(stub.StreamingOutputCall(request, { deadline: deadline() }));
    assert.deepEqual(responses.map((r) => r.payload.body.length), [31415, 92653]);
  },
  async ping_pong() {
    const call = stub.FullDuplexCall({ deadline: deadline() });
    const next = reader(call);
    for (let i = 0; i < REQUEST_SIZES.length; i++) {
      call.write(outputRequest([RESPONSE_SIZES[i]], undefined, REQUEST_SIZES[i]));
      const item = await next();
      assert.ok(item.value, `response ${i}: ${item.error || 'end of stream'}`);
      assert.equal(item.value.payload.body.length, RESPONSE_SIZES[i]);
    }
    call.end();
    const last = await next();
    assert.ok(last.done, `after the last response: ${JSON.stringify(last)}`);
  },
  async empty_stream() {
    const call = stub.FullDuplexCall({ deadline: deadline() });
    call.end();
    const { responses } = await collect(call);
    assert.equal(responses.length, 0);
  },
  async timeout_on_sleeping_server() {
    const call = stub.FullDuplexCall({ deadline: Date.now() + 1 });
    call.write(outputRequest([31415], undefined, 27182));
    const { code } = await failure(collect(call));
    assert.equal(code, grpc.status.DEADLINE_EXCEEDED);
  },
  async cancel_after_begin() {
    const { code } = await failure(clientStream(stub, [], { cancel: true }));
    assert.equal(code, grpc.status.CANCELLED);
  },
  async cancel_after_first_response() {
    const call = stub.FullDuplexCall({ deadline: deadline() });
    const next = reader(call);
    call.write(outputRequest([31415], undefined, 27182));
    const first = await next();
    assert.ok(first.value, `first response: ${first.error}`);
    assert.equal(first.value.payload.body.length, 31415);
    call.cancel();
    const after = await next();
    assert.ok(after.error, `after cancel: ${JSON.stringify(after)}`);
    assert.equal(after.error.code, grpc.status.CANCELLED);
  },
  async status_code_and_message() {
    const status = { code: 2, message: 'test status message' };
    const unaryFailure = await failure(unary(stub, 'UnaryCall', { response_status: status }));
    assert.deepEqual(unaryFailure, { code: grpc.status.UNKNOWN, details: 'test status message' });
    const call = stub.FullDuplexCall({ deadline: deadline() });
    call.write({ response_status: status });
    call.end();
    const streamFailure = await failure(collect(call));
    assert.deepEqual(streamFailure, { code: grpc.status.UNKNOWN, details: 'test status message' });
  },
  async special_status_message() {
    const status = { code: 2, message: SPECIAL };
    const got = await failure(unary(stub, 'UnaryCall', { response_status: status }));
    assert.deepEqual(got, { code: grpc.status.UNKNOWN, details: SPECIAL });
  },
  async unimplemented_method() {
    const { code } = await failure(unary(stub, 'UnimplementedCall', {}));
    assert.equal(code, grpc.status.UNIMPLEMENTED);
  },
  async unimplemented_service() {
    const other = new testing.UnimplementedService(target, insecure);
    const { code } = await failure(unary(other, 'UnimplementedCall', {}));
    assert.equal(code, grpc.status.UNIMPLEMENTED);
    other.close();
  },
  async custom_metadata() {
    const metadata = () => {
      const m = new grpc.Metadata();
      m.set('x-grpc-test-echo-initial', 'test_initial_metadata_value');
      m.set('x-grpc-test-echo-trailing-bin', Buffer.from([0xab, 0xab, 0xab]));
      return m;
    };
    const check = (headers, trailers) => {
      assert.deepEqual(headers.get('x-grpc-test-echo-initial'), ['test_initial_metadata_value']);
      assert.deepEqual(trailers.get('x-grpc-test-echo-trailing-bin'), [Buffer.from([0xab, 0xab, 0xab])]);
    };
    const call = await unary(stub, 'UnaryCall', large(), { metadata: metadata() });
    check(call.headers, call.trailers());
    const stream = stub.FullDuplexCall(metadata(), { deadline: deadline() });
    stream.write(outputRequest([314159], undefined, 271828));
    stream.end();
    const { responses, headers, trailers } = await collect(stream);
    assert.equal(responses.length, 1);
    check(headers, trailers);
  },
};

// One call of each kind, by index, with its responses checked.
const mixCalls = [
  async (i) => {
    const { response } = await unary(stub, 'UnaryCall', { response_size: i % 100, payload: payload(i % 50) }, { deadline: deadline(10000) });
    assert.equal(response.payload.body.length, i % 100);
  },
  async (i) => {
    const sizes = [i % 7, 1, i % 1000];
    const { responses } = await collect(stub.StreamingOutputCall(outputRequest(sizes), { deadline: deadline(10000) }));
    assert.deepEqual(responses.map((r) => r.payload.body.length), sizes);
  },
  async (i) => {
    const sizes = [i % 13, 3, i % 500];
    const response = await clientStream(stub, sizes.map((s) => [{ payload: payload(s) }]));
    assert.equal(response.aggregated_payload_size, sizes.reduce((a, b) => a + b, 0));
  },
  async (i) => {
    const call = stub.FullDuplexCall({ deadline: deadline(10000) });
    const next = reader(call);
    for (const size of [i % 11, 2, i % 300]) {
      call.write(outputRequest([size], undefined, size));
      const item = await next();
      assert.ok(item.value, `bidi response: ${item.error || 'end of stream'}`);
      assert.equal(item.value.payload.body.length, size);
    }
    call.end();
    const last = await next();
    assert.ok(last.done, `bidi end: ${JSON.stringify(last)}`);
  },
];

async function mix() {
  const seconds = Number(flag('--seconds', '3'));
  const inFlight = Number(flag('--in_flight', '64'));
  const until = Date.now() + seconds * 1000;
  const counts = [0, 0, 0, 0];
  const failures = [];
  let started = 0;
  async function worker(w) {
    while (Date.now() < until && failures.length < 10) {
      const i = started++;
      const kind = (w + i) % 4;
      try {
        await mixCalls[kind](i);
        counts[kind]++;
      } catch (error) {
        failures.push(`call ${i} (kind ${kind}): ${error.message}`);
      }
    }
  }
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  const passed = counts.reduce((a, b) => a + b, 0);
  console.log(`mix: ${inFlight} in flight for ${seconds} s: unary ${counts[0]}, server streaming ${counts[1]}, client streaming ${counts[2]}, bidi ${counts[3]}`);
  for (const f of failures) {
    console.log(`FAILED: ${f}`);
  }
  console.log(`${passed} passed, ${failures.length} failed`);
  return failures.length === 0 && counts.every((c) => c > 0);
}

async function main() {
  const name = flag('--test_case', 'all');
  let ok;
  if (name === 'mix') {
    ok = await mix();
  } else {
    const names = name === 'all' ? Object.keys(cases) : [name];
    let passed = 0;
    let failed = 0;
    for (const n of names) {
      try {
        await cases[n]();
        passed++;
        console.log(`${n}: passed`);
      } catch (error) {
        failed++;
        console.log(`${n}: FAILED: ${error.stack || error}`);
      }
    }
    console.log(`${passed} passed, ${failed} failed`);
    ok = failed === 0;
  }
  stub.close();
  gzipStub.close();
  process.exit(ok ? 0 : 1);
}

main();
