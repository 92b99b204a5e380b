// Runs the shared gRPC-Web interop cases (cases.js) from Node.js, on connect-node's gRPC-Web
// transport (binary format) over HTTP/1.1 or HTTP/2 (h2c for http://, ALPN h2 for https://).
//
// Usage: node node_client.mjs GRPC_BASE_URL HTTP_VERSION [case,case,...] [--ca PEM_FILE]
//   HTTP_VERSION is 1.1 or 2; --ca trusts PEM_FILE's certificate(s) for https:// URLs.
// Prints "NAME: passed [(note)]" or "NAME: FAILED: why" per case, then "N passed, M failed"; exits 1
// when a case failed, on bad usage, or when the whole run takes over 60 s.
import { readFileSync } from "node:fs";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { report, runCases } from "./cases.js";

const RUN_TIMEOUT_MS = 60_000;

function usage(why) {
  console.error(`${why}\nusage: node node_client.mjs GRPC_BASE_URL HTTP_VERSION [case,...] [--ca PEM_FILE]`);
  process.exit(1);
}

// Splits argv into positional arguments and the --ca option.
const args = process.argv.slice(2);
let ca;
const caAt = args.indexOf("--ca");
if (caAt >= 0) {
  if (caAt + 1 >= args.length) usage("--ca needs a file");
  ca = readFileSync(args[caAt + 1]);
  args.splice(caAt, 2);
}
const [baseUrl, httpVersion, caseList] = args;
if (!baseUrl || args.length > 3) usage("bad arguments");
if (httpVersion !== "1.1" && httpVersion !== "2") usage(`HTTP_VERSION must be 1.1 or 2, not ${httpVersion}`);
const cases = caseList ? caseList.split(",").filter(Boolean) : [];

const timer = setTimeout(() => {
  console.error(`timed out after ${RUN_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, RUN_TIMEOUT_MS);

const transport = createGrpcWebTransport({
  baseUrl,
  httpVersion,
  useBinaryFormat: true,
  ...(ca ? { nodeOptions: { ca } } : {}),
});
const failed = report(await runCases(transport, cases));
clearTimeout(timer);
// Exits at once: an HTTP/2 session may otherwise keep the process alive.
process.exit(failed ? 1 : 0);
