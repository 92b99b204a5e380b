// Loads gRPC's interop protos (grpc/testing/test.proto under the directory given) with
// @grpc/proto-loader, keeping the protos' field names.
'use strict';

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function loadTesting(protoDir) {
  const definition = protoLoader.loadSync('grpc/testing/test.proto', {
    includeDirs: [protoDir],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).grpc.testing;
}

function payload(size) {
  return { type: 'COMPRESSABLE', body: Buffer.alloc(size) };
}

module.exports = { grpc, loadTesting, payload };
