// gRPC's interop test cases that gRPC-Web can carry (unary and server streaming), written once
// for any connect Transport: connect-web's in the browser (page.js), connect-node's in Node
// (node_client.mjs). Each case throws an Error saying what went wrong, or returns a note.
import { Code, ConnectError, createClient, decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import { TestService } from "./gen/grpc/testing/test_pb.js";

const RESPONSE_SIZES = [31415, 9, 2653, 58979];
const SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n";
const INITIAL_KEY = "x-grpc-test-echo-initial";
const INITIAL_VALUE = "test_initial_metadata_value";
const TRAILING_KEY = "x-grpc-test-echo-trailing-bin";
const TRAILING_VALUE = new Uint8Array([0xab, 0xab, 0xab]);
// Every call but the deadline case's has this deadline, so no case waits forever.
const TIMEOUT_MS = 10_000;

// A payload of `size` zero bytes.
const payload = (size) => ({ body: new Uint8Array(size) });

// large_unary's request: 271828 bytes out, 314159 bytes asked back.
const largeRequest = () => ({ responseSize: 314159, payload: payload(271828) });

function check(cond, what) {
  if (!cond) {
    throw new Error(what);
  }
}

function bodySize(reply) {
  return reply.payload?.body?.length ?? 0;
}

// Reads a server stream to its end; returns the replies.
async function drain(stream) {
  const replies = [];
  for await (const reply of stream) {
    replies.push(reply);
  }
  return replies;
}

// Runs `call`, which must fail with gRPC status `code` (and `message` when given); returns the
// ConnectError.
async function expectError(call, code, message) {
  try {
    await call();
  } catch (e) {
    const err = ConnectError.from(e);
    check(
      err.code === code,
      `want code ${Code[code]} (${code}), got ${Code[err.code]} (${err.code}): ${JSON.stringify(err.rawMessage)}`,
    );
    if (message !== undefined) {
      check(err.rawMessage === message, `want message ${JSON.stringify(message)}, got ${JSON.stringify(err.rawMessage)}`);
    }
    return err;
  }
  throw new Error(`call succeeded, want code ${Code[code]} (${code})`);
}

// Asks UnaryCall and StreamingOutputCall for status 2 with `message`; both must return it.
async function statusBothWays(client, message) {
  const responseStatus = { code: Code.Unknown, message };
  await expectError(() => client.unaryCall({ responseStatus }, { timeoutMs: TIMEOUT_MS }), Code.Unknown, message);
  await expectError(
    () => drain(client.streamingOutputCall({ responseStatus }, { timeoutMs: TIMEOUT_MS })),
    Code.Unknown,
    message,
  );
}

// Checks the echoed response header and trailer of a custom_metadata call.
function checkEchoes(how, header, trailer) {
  check(header !== undefined, `${how}: no response headers`);
  check(
    header.get(INITIAL_KEY) === INITIAL_VALUE,
    `${how}: header ${INITIAL_KEY} is ${JSON.stringify(header.get(INITIAL_KEY))}`,
  );
  const raw = trailer?.get(TRAILING_KEY);
  check(raw !== null && raw !== undefined, `${how}: no trailer ${TRAILING_KEY}`);
  const got = decodeBinaryHeader(raw);
  check(
    got.length === TRAILING_VALUE.length && got.every((b, i) => b === TRAILING_VALUE[i]),
    `${how}: trailer ${TRAILING_KEY} is ${JSON.stringify(raw)}, want base64 of ab ab ab`,
  );
}

const CASES = {
  async empty_unary(client) {
    const reply = await client.emptyCall({}, { timeoutMs: TIMEOUT_MS });
    check(reply.$typeName === "grpc.testing.Empty", `reply is ${reply.$typeName}`);
  },

  async large_unary(client) {
    const reply = await client.unaryCall(largeRequest(), { timeoutMs: TIMEOUT_MS });
    check(bodySize(reply) === 314159, `reply payload is ${bodySize(reply)} bytes, want 314159`);
  },

  async server_streaming(client) {
    const replies = await drain(
      client.streamingOutputCall(
        { responseParameters: RESPONSE_SIZES.map((size) => ({ size })) },
        { timeoutMs: TIMEOUT_MS },
      ),
    );
    const sizes = replies.map(bodySize);
    check(JSON.stringify(sizes) === JSON.stringify(RESPONSE_SIZES), `reply sizes ${sizes}, want ${RESPONSE_SIZES}`);
  },

  async status_code_and_message(client) {
    await statusBothWays(client, "test status message");
  },

  async special_status_message(client) {
    await statusBothWays(client, SPECIAL);
  },

  async custom_metadata(client) {
    const headers = { [INITIAL_KEY]: INITIAL_VALUE, [TRAILING_KEY]: encodeBinaryHeader(TRAILING_VALUE) };
    // Unary: connect returns a unary call's headers and trailers through the same callbacks.
    let header;
    let trailer;
    const opts = { headers, timeoutMs: TIMEOUT_MS, onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) };
    const reply = await client.unaryCall(largeRequest(), opts);
    check(bodySize(reply) === 314159, `unary reply payload is ${bodySize(reply)} bytes, want 314159`);
    checkEchoes("UnaryCall", header, trailer);
    // Server streaming: one 314159-byte reply.
    header = undefined;
    trailer = undefined;
    const replies = await drain(
      client.streamingOutputCall({ responseParameters: [{ size: 314159 }], payload: payload(271828) }, opts),
    );
    check(replies.length === 1 && bodySize(replies[0]) === 314159, `stream replies ${replies.map(bodySize)}`);
    checkEchoes("StreamingOutputCall", header, trailer);
  },

  async timeout_on_sleeping_server(client) {
    // The server waits 2 s before its one reply; the call's deadline, 200 ms, is only in the
    // grpc-timeout header (no timer in the client), so the server must end the call.
    const started = Date.now();
    const err = await expectError(
      () =>
        drain(
          client.streamingOutputCall(
            { responseParameters: [{ size: 27182, intervalUs: 2_000_000 }], payload: payload(27182) },
            { headers: { "grpc-timeout": "200m" } },
          ),
        ),
      Code.DeadlineExceeded,
    );
    const elapsed = Date.now() - started;
    check(elapsed < 1900, `the server ended the call after ${elapsed} ms, not at its deadline`);
    return err.rawMessage;
  },

  async unimplemented_method(client) {
    // test.proto declares TestService/UnimplementedCall; interop servers do not implement it.
    await expectError(() => client.unimplementedCall({}, { timeoutMs: TIMEOUT_MS }), Code.Unimplemented);
  },

  // Browser only: the server must refuse this page's origin, so fetch itself fails (connect wraps
  // fetch's TypeError, e.g. "Failed to fetch", as code Unknown with the TypeError as its cause)
  // and no gRPC status from the server is seen.
  async cors_refused(client) {
    let err;
    try {
      await client.emptyCall({}, { timeoutMs: TIMEOUT_MS });
    } catch (e) {
      err = ConnectError.from(e);
    }
    check(err !== undefined, "call succeeded: the server allowed this origin");
    const seen = `${Code[err.code]} (${err.code}): ${err.rawMessage}; cause: ${err.cause?.name}: ${err.cause?.message}`;
    check(
      (err.code === Code.Unknown || err.code === Code.Unavailable) && err.cause?.name === "TypeError",
      `not a fetch-level failure: ${seen}`,
    );
    return seen;
  },
};

// Every case but the browser-only cors_refused.
export const DEFAULT_CASES = Object.keys(CASES).filter((name) => name !== "cors_refused");

// Runs the named cases (DEFAULT_CASES when `cases` is empty or absent) in order on `transport`;
// resolves to [{name, ok, why}], `why` being the failure or the case's note.
export async function runCases(transport, cases) {
  const client = createClient(TestService, transport);
  const results = [];
  for (const name of cases?.length ? cases : DEFAULT_CASES) {
    const run = CASES[name];
    if (run === undefined) {
      results.push({ name, ok: false, why: `no such case (known: ${Object.keys(CASES).join(", ")})` });
      continue;
    }
    try {
      results.push({ name, ok: true, why: (await run(client)) ?? "" });
    } catch (e) {
      results.push({ name, ok: false, why: e instanceof Error ? e.message : String(e) });
    }
  }
  return results;
}

// Prints each result as "NAME: passed" (followed by " (note)" when the case returned one) or
// "NAME: FAILED: why", then "N passed, M failed"; returns the number failed.
export function report(results, print = console.log) {
  for (const { name, ok, why } of results) {
    print(ok ? `${name}: passed${why ? ` (${why})` : ""}` : `${name}: FAILED: ${why}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  print(`${results.length - failed} passed, ${failed} failed`);
  return failed;
}
