// The golden sets: what generates each directory of `tests/generated/src`, the one list
// of them. Included by the build API's golden test (`codegen/tests/golden.rs`), which
// writes and checks them, and by the plugin's test (`protoc-gen-rsgrpc/tests/plugin.rs`),
// which must produce the same files.

/// One directory of golden files and what generates it.
pub(crate) struct GoldenSet {
    /// The directory under `tests/generated/src`.
    pub(crate) dir: &'static str,
    /// Include directories, relative to the workspace root.
    pub(crate) includes: &'static [&'static str],
    /// The files to generate, relative to an include directory.
    pub(crate) protos: &'static [&'static str],
    /// Options as `rsgrpc_codegen::Builder::option` and the plugin's `--rsgrpc_opt` take
    /// them, besides `include_file=_includes.rs`.
    pub(crate) options: &'static [&'static str],
    /// Whether the plugin produces the same files from the same protos and options; not
    /// when the set generates imports protoc is not asked to (the well-known types).
    pub(crate) plugin: bool,
}

/// The name of the include file in each golden directory.
pub(crate) const INCLUDE_FILE: &str = "_includes.rs";

/// The corpus: the examples' protos and `tests/proto/corpus`, with default settings.
pub(crate) const CORPUS: GoldenSet = GoldenSet {
    dir: "golden",
    includes: &["examples/proto", "tests/proto"],
    protos: &[
        "helloworld/helloworld.proto",
        "routeguide/route_guide.proto",
        "corpus/common/types.proto",
        "corpus/app/v1/app.proto",
        "corpus/names/names.proto",
        "corpus/service_config/service_config.proto",
        "corpus/mod/mod.proto",
        "corpus/nopackage.proto",
    ],
    options: &[],
    plugin: true,
};

/// Part of the corpus with most builder settings on, the well-known types compiled.
pub(crate) const OPTIONS: GoldenSet = GoldenSet {
    dir: "golden_options",
    includes: &["examples/proto", "tests/proto"],
    protos: &[
        "helloworld/helloworld.proto",
        "routeguide/route_guide.proto",
        "corpus/app/v1/app.proto",
        "corpus/service_config/service_config.proto",
    ],
    options: &[
        "compile_well_known_types=true",
        "retain_enum_prefix=true",
        "enable_type_names=true",
        "type_name_domain=.routeguide=example.com",
        "default_stubs=true",
        "emit_package=false",
        "client_attribute=.routeguide.RouteGuide=#[doc(alias = \"guide\")]",
        "client_attribute=.helloworld.Greeter.SayHello=#[inline]",
        "server_attribute=.=#[must_use = \"a server does nothing until it is added to a ServerBuilder\"]",
        "trait_attribute=Greeter=#[doc(alias = \"greeting\")]",
        "trait_attribute=RouteGuide.RouteChat=#[doc(alias = \"chat\")]",
        "client_mod_attribute=.helloworld=#[doc(alias = \"clients\")]",
        "server_mod_attribute=.helloworld=#[doc(alias = \"servers\")]",
        "message_attribute=.helloworld=#[derive(PartialOrd)]",
        "enum_attribute=.corpus.common=#[doc(alias = \"status\")]",
        "boxed=.corpus.service_config.ServiceConfig.big",
        "skip_debug=.helloworld.HelloReply",
        "disable_comments=.routeguide",
        "file_descriptor_set=true",
    ],
    plugin: false,
};

/// `corpus.app.v1` generated on its own, referring to `corpus.common` of [`CORPUS`].
pub(crate) const SPLIT: GoldenSet = GoldenSet {
    dir: "golden_split",
    includes: &["examples/proto", "tests/proto"],
    protos: &["corpus/app/v1/app.proto"],
    options: &["extern_path=.corpus.common=crate::golden::corpus::common"],
    plugin: true,
};

/// Names, packages, comments and file orders that real APIs showed the generator got
/// wrong (issue 18), in `tests/generated/proto/edge`.
pub(crate) const EDGE: GoldenSet = GoldenSet {
    dir: "golden_edge",
    includes: &["tests/generated/proto"],
    protos: &[
        "edge/names/names.proto",
        "edge/case/upper.proto",
        "edge/case/lower.proto",
        "edge/docs/docs.proto",
        "edge/order/b.proto",
        "edge/order/a.proto",
    ],
    options: &[],
    plugin: true,
};

/// Every golden set.
pub(crate) const ALL: &[&GoldenSet] = &[&CORPUS, &OPTIONS, &SPLIT, &EDGE];
