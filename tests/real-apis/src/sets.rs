// The vendored API sets: name, include directories and files, relative to this crate's
// directory. Shared by the build script and the tests (the plugin's in protoc-gen-rsgrpc
// among them); the macro in `lib.rs` names the same files, which a test checks.

/// One API set: its name, the include directories and the files to generate.
pub(crate) struct Set {
    /// The module it goes in.
    pub(crate) name: &'static str,
    /// Include directories, relative to this crate's directory.
    pub(crate) includes: &'static [&'static str],
    /// The files, relative to an include directory; all the `.proto` files of the set.
    pub(crate) files: &'static [&'static str],
}

/// Every set, in the order the build script generates them.
pub(crate) const SETS: &[Set] = &[
    Set {
        name: "otlp",
        includes: &["proto/opentelemetry"],
        files: &[
            "opentelemetry/proto/collector/logs/v1/logs_service.proto",
            "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
            "opentelemetry/proto/collector/profiles/v1development/profiles_service.proto",
            "opentelemetry/proto/collector/trace/v1/trace_service.proto",
            "opentelemetry/proto/common/v1/common.proto",
            "opentelemetry/proto/logs/v1/logs.proto",
            "opentelemetry/proto/metrics/v1/metrics.proto",
            "opentelemetry/proto/processcontext/v1development/process_context.proto",
            "opentelemetry/proto/profiles/v1development/profiles.proto",
            "opentelemetry/proto/resource/v1/resource.proto",
            "opentelemetry/proto/trace/v1/trace.proto",
        ],
    },
    Set {
        name: "containerd_api",
        includes: &["proto/containerd", "proto/googleapis"],
        files: &[
            "events/container.proto",
            "events/content.proto",
            "events/image.proto",
            "events/namespace.proto",
            "events/sandbox.proto",
            "events/snapshot.proto",
            "events/task.proto",
            "runtime/bootstrap/v1/bootstrap.proto",
            "runtime/sandbox/v1/sandbox.proto",
            "runtime/task/v2/shim.proto",
            "runtime/task/v3/shim.proto",
            "services/containers/v1/containers.proto",
            "services/content/v1/content.proto",
            "services/diff/v1/diff.proto",
            "services/events/v1/events.proto",
            "services/images/v1/images.proto",
            "services/introspection/v1/introspection.proto",
            "services/leases/v1/leases.proto",
            "services/mounts/v1/mounts.proto",
            "services/namespaces/v1/namespace.proto",
            "services/sandbox/v1/sandbox.proto",
            "services/snapshots/v1/snapshots.proto",
            "services/streaming/v1/streaming.proto",
            "services/tasks/v1/tasks.proto",
            "services/transfer/v1/transfer.proto",
            "services/ttrpc/events/v1/events.proto",
            "services/version/v1/version.proto",
            "types/descriptor.proto",
            "types/event.proto",
            "types/fieldpath.proto",
            "types/introspection.proto",
            "types/metrics.proto",
            "types/mount.proto",
            "types/platform.proto",
            "types/runc/options/oci.proto",
            "types/runtimeoptions/v1/api.proto",
            "types/sandbox.proto",
            "types/task/task.proto",
            "types/transfer/container.proto",
            "types/transfer/imagestore.proto",
            "types/transfer/importexport.proto",
            "types/transfer/progress.proto",
            "types/transfer/registry.proto",
            "types/transfer/streaming.proto",
            "google/rpc/status.proto",
        ],
    },
    Set {
        name: "etcd_api",
        // `raft_internal.proto` imports `rpc.proto` from its own directory, which comes
        // first so that the file has one name.
        includes: &[
            "proto/etcd/etcd/api/etcdserverpb",
            "proto/etcd",
            "proto/googleapis",
            "proto/grpc-gateway",
        ],
        files: &[
            "etcd/api/authpb/auth.proto",
            "etcd/api/membershippb/membership.proto",
            "etcd/api/mvccpb/kv.proto",
            "etcd/api/versionpb/version.proto",
            "etcdserver.proto",
            "raft_internal.proto",
            "rpc.proto",
            "google/api/annotations.proto",
            "google/api/http.proto",
            "protoc-gen-openapiv2/options/annotations.proto",
            "protoc-gen-openapiv2/options/openapiv2.proto",
        ],
    },
];
