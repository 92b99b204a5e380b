// Browser entry, bundled into dist/page.js by build.mjs: exposes the shared interop cases on
// connect-web's gRPC-Web transport (binary format, over fetch) as window.runInteropCases.
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { runCases } from "./cases.js";

// Runs the named cases (all but the browser-only ones when `cases` is empty or absent) against
// the gRPC-Web server at baseUrl; resolves to [{name, ok, why}].
window.runInteropCases = async (baseUrl, cases) =>
  runCases(createGrpcWebTransport({ baseUrl, useBinaryFormat: true }), cases);
