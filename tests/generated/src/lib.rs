//! Compile-only check of the golden generated code (see `codegen/tests/golden.rs`): it must
//! build with every warning denied and pass clippy, as it would in a user's crate.

#![deny(warnings)]

/// The corpus with default settings.
pub mod golden {
    include!("golden/_includes.rs");
}

/// Part of the corpus with most builder settings on.
pub mod golden_options {
    include!("golden_options/_includes.rs");
}

/// `corpus.app.v1` generated on its own, using `corpus.common` from [`golden`].
pub mod golden_split {
    include!("golden_split/_includes.rs");
}

/// The names, packages, comments and file orders of `proto/edge` (issue 18).
pub mod golden_edge {
    include!("golden_edge/_includes.rs");
}

/// The same protos as [`golden_edge`], through the `#[grpc_service]` macro: the same code,
/// and the same warnings (none).
pub mod macro_edge {
    #[rsgrpc::grpc_service(
        includes = ["proto"],
        proto = [
            "proto/edge/names/names.proto",
            "proto/edge/case/upper.proto",
            "proto/edge/case/lower.proto",
            "proto/edge/docs/docs.proto",
            "proto/edge/order/b.proto",
            "proto/edge/order/a.proto",
        ]
    )]
    pub mod edge {}
}

/// Enums whose variant names clippy's `enum_variant_names` reports where they are not
/// exported, as in a binary: in a private module, generated from `proto/private` and, with
/// the enums' prefixes kept, from the corpus.
#[allow(
    dead_code,
    reason = "compiled for the warnings it would give, never used"
)]
mod private {
    #[rsgrpc::grpc_service(includes = ["proto"], proto = "proto/private/affixes.proto")]
    mod affixes {}

    #[rsgrpc::grpc_service(
        includes = ["../proto"],
        proto = "../proto/corpus/common/types.proto",
        retain_enum_prefix = true
    )]
    mod retained {}
}

/// The code generated from the fuzz corpus's `generated--*` seeds
/// (`tests/fuzz-checks/tests/generated_seeds.rs` keeps it current): built here, it shows
/// that what the fuzz target only parses also compiles.
pub mod fuzz_seeds {
    /// `generated--all-four-kinds`.
    pub mod seed_all_four_kinds {
        include!("fuzz_seeds/all-four-kinds/_includes.rs");
    }
    /// `generated--empty-set`.
    pub mod seed_empty_set {
        include!("fuzz_seeds/empty-set/_includes.rs");
    }
    /// `generated--helloworld`.
    pub mod seed_helloworld {
        include!("fuzz_seeds/helloworld/_includes.rs");
    }
    /// `generated--keyword-names`.
    pub mod seed_keyword_names {
        include!("fuzz_seeds/keyword-names/_includes.rs");
    }
    /// `generated--no-package`.
    pub mod seed_no_package {
        include!("fuzz_seeds/no-package/_includes.rs");
    }
    /// `generated--routeguide`.
    pub mod seed_routeguide {
        include!("fuzz_seeds/routeguide/_includes.rs");
    }
}

// `skip_debug` leaves Debug to the user, and prost's Message needs it.
impl std::fmt::Debug for golden_options::helloworld::HelloReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelloReply").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    /// The names of the files in an encoded descriptor set.
    fn files(encoded: &[u8]) -> Vec<String> {
        prost_types::FileDescriptorSet::decode(encoded)
            .unwrap()
            .file
            .into_iter()
            .map(|f| f.name().to_owned())
            .collect()
    }

    #[test]
    fn each_package_constant_holds_its_files_and_their_imports() {
        use super::golden_options as g;
        assert_eq!(
            files(g::helloworld::FILE_DESCRIPTOR_SET),
            ["helloworld/helloworld.proto"]
        );
        let names = files(g::corpus::app::v1::FILE_DESCRIPTOR_SET);
        assert!(names.contains(&"corpus/common/types.proto".to_owned()));
        assert!(names.contains(&"google/protobuf/timestamp.proto".to_owned()));
        // Every import is there, before the file importing it; nothing else is.
        let decoded =
            prost_types::FileDescriptorSet::decode(g::corpus::app::v1::FILE_DESCRIPTOR_SET)
                .unwrap();
        for (i, file) in decoded.file.iter().enumerate() {
            for dependency in &file.dependency {
                let at = names.iter().position(|n| n == dependency).unwrap();
                assert!(at < i, "{dependency} after {}", file.name());
            }
        }
        let imported: std::collections::BTreeSet<&String> =
            decoded.file.iter().flat_map(|f| &f.dependency).collect();
        for name in &names[..names.len() - 1] {
            assert!(imported.contains(name), "{name} is not imported");
        }
        assert!(decoded.file.iter().all(|f| f.source_code_info.is_none()));
        let app = decoded.file.last().unwrap();
        assert_eq!(app.package(), "corpus.app.v1");
        assert!(!app.service.is_empty());
    }
}
