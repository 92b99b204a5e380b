// Builds the gRPC-Web interop client: generates JavaScript for gRPC's interop protos into gen/
// with protoc and protoc-gen-es, then bundles the browser entry page.js into dist/page.js with
// esbuild and copies index.html beside it. Paths are taken from this script's own directory, so
// it can run from any working directory. Run it again at will: gen/ and dist/ are made anew.
//
// Usage: node build.mjs        (needs `npm ci` first, and protoc on PATH or in $PROTOC)
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const protoRoot = join(here, "..", "..", "..", "tests", "proto");
const gen = join(here, "gen");
const dist = join(here, "dist");
const protos = ["test.proto", "messages.proto", "empty.proto"].map((f) => `grpc/testing/${f}`);

// Generate gen/grpc/testing/*_pb.js: plain ES modules with ".js" import paths, so Node can
// import them directly and esbuild can bundle them, with no TypeScript step.
rmSync(gen, { recursive: true, force: true });
mkdirSync(gen, { recursive: true });
execFileSync(
  process.env.PROTOC ?? "protoc",
  [
    `--plugin=protoc-gen-es=${join(here, "node_modules", ".bin", "protoc-gen-es")}`,
    `--es_out=${gen}`,
    "--es_opt=target=js,import_extension=js",
    `-I${protoRoot}`,
    ...protos,
  ],
  { stdio: "inherit" },
);

// Bundle the browser entry (page.js, cases.js, gen/, connect-web) into one ES module.
rmSync(dist, { recursive: true, force: true });
await esbuild.build({
  entryPoints: [join(here, "page.js")],
  outfile: join(dist, "page.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  sourcemap: true,
  logLevel: "warning",
});
copyFileSync(join(here, "index.html"), join(dist, "index.html"));
console.log(`built ${gen} and ${dist}`);
