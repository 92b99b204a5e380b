//! Where the stubs of a service go, and under which names, so that they cannot clash with
//! what prost-build generates for the same package or with each other.
//!
//! # The layout
//!
//! For `service Greeter` in package `helloworld` the package module gets two submodules:
//!
//! ```text
//! helloworld::greeter_client::{GreeterClient, GreeterBlockingClient}
//! helloworld::greeter_server::{Greeter, GreeterServer, GreeterBlocking, GreeterBlockingServer}
//! ```
//!
//! Inside them every name is the generator's own: message types are reached as `super::X`
//! (or by an absolute path), standard items by absolute paths (`::core::marker::Send`), so a
//! message named `Send`, `Result` or `T` cannot shadow or be shadowed by anything. In the
//! package module the stubs add only the two module names.
//!
//! prost-build, too, adds modules to the package module: one per message with nested types
//! or oneofs (message `GameClient` with a nested message gives `game_client`), and the
//! include file adds one per subpackage. When such a module takes the name the stubs would
//! use, the stubs' module gets a trailing underscore (`game_client_`). prost-build never
//! makes a name ending in `_` other than `self_`, `super_`, `crate_`, `extern_` and `__`,
//! so the fallback is always free. Two services of one package whose names differ only in
//! case or underscores (`FooBar`, `Foo_Bar`) would share modules; that is reported as an
//! error.
//!
//! Inside a client, the methods it defines (`new`, `connect_lazy`, `channel`, the
//! settings such as `timeout`, `with_interceptor`) and those of the traits it derives
//! (`clone`, `clone_from`, `fmt`) are the client's own: the list is read from the code the
//! generator emits, so it cannot miss one. An RPC that would take one of these names gets
//! a trailing underscore (`rpc New` becomes `new_`, `rpc Clone` `clone_`), which no other
//! RPC can produce.
//!
//! The blocking client has two methods for a bidirectional RPC `Txn`: `txn()` and
//! `txn_with(request)`, whose `Request<()>` carries metadata and per-call options. The
//! second name is derived, so it yields to every other: when a client's own method or
//! another RPC has it (`rpc TxnWith` beside `rpc Txn`), it gets a trailing underscore
//! (`txn_with_`), more of them while that is taken too (see [`client_names`]). RPCs thus
//! keep the names they have on the async client and in the server traits.
//!
//! The server types' own methods cannot clash with RPCs, which are
//! only trait methods there. The server types' type parameter is `T`, or `S` for a service
//! named `T` (whose trait is `T`).

use std::collections::{BTreeMap, BTreeSet};

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_types::{DescriptorProto, FileDescriptorSet};

/// Module names that prost-build (and the include file) put into each package's module,
/// keyed by the Rust module path of the package (empty for files without a package).
///
/// Keyed by module, not by package: packages that differ only in case (`x.Dup`, `x.dup`)
/// become one Rust module, and the names of both count there.
#[derive(Clone, Debug, Default)]
pub(crate) struct TakenNames {
    by_module: BTreeMap<Vec<String>, BTreeSet<String>>,
}

/// The Rust module path prost-build gives `package` (`["x", "dup"]` for `x.Dup`).
pub(crate) fn module_of(package: &str) -> Vec<String> {
    prost_build::Module::from_protobuf_package_name(package)
        .parts()
        .map(str::to_owned)
        .collect()
}

impl TakenNames {
    /// Collects the names from every file of `set`, since any of them may end up in the
    /// same module tree.
    pub(crate) fn new(set: &FileDescriptorSet) -> TakenNames {
        let mut taken = TakenNames::default();
        for file in &set.file {
            let module = module_of(file.package());
            for depth in 0..module.len() {
                // Every package is a child module of each of its ancestors' modules.
                taken
                    .by_module
                    .entry(module[..depth].to_vec())
                    .or_default()
                    .insert(module[depth].clone());
            }
            let names = taken.by_module.entry(module).or_default();
            for message in &file.message_type {
                if has_module(message) {
                    names.insert(rust_snake(message.name()));
                }
            }
        }
        taken
    }

    /// Whether `name` is a module prost-build or the include file creates in the module
    /// of `package`.
    pub(crate) fn is_taken(&self, package: &str, name: &str) -> bool {
        self.by_module
            .get(&module_of(package))
            .is_some_and(|names| names.contains(name))
    }
}

/// Whether prost-build gives `message` a module for its nested types (as its code generator
/// decides: nested enums, nested messages other than map entries, or real oneofs).
fn has_module(message: &DescriptorProto) -> bool {
    let nested = message
        .nested_type
        .iter()
        .any(|n| !n.options.as_ref().is_some_and(|o| o.map_entry()));
    let oneofs = message.oneof_decl.iter().enumerate().any(|(index, _)| {
        message
            .field
            .iter()
            .any(|f| f.oneof_index == Some(index as i32) && !f.proto3_optional())
    });
    !message.enum_type.is_empty() || nested || oneofs
}

/// A protobuf name in snake case, escaped as prost-build escapes it.
pub(crate) fn rust_snake(name: &str) -> String {
    sanitize(name.to_snake_case())
}

/// prost-build's escaping of identifiers that are Rust keywords.
fn sanitize(ident: String) -> String {
    match ident.as_str() {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{ident}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        _ => ident,
    }
}

/// The names of one service's stubs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceNames {
    /// The clients' module, `greeter_client`.
    pub(crate) client_mod: String,
    /// The servers' module, `greeter_server`.
    pub(crate) server_mod: String,
    /// The async trait, `Greeter` (escaped like prost-build escapes type names).
    pub(crate) trait_name: String,
    /// The stem of the composed type names: `Greeter` for `GreeterClient`, `Self` (not
    /// `Self_`) for a service named `Self`.
    pub(crate) stem: String,
}

impl ServiceNames {
    /// The names for `service` (its protobuf name) in `package`.
    pub(crate) fn new(taken: &TakenNames, package: &str, service: &str) -> ServiceNames {
        let snake = service.to_snake_case();
        let pick = |suffix: &str| {
            let name = format!("{snake}_{suffix}");
            if taken.is_taken(package, &name) {
                format!("{name}_")
            } else {
                name
            }
        };
        let stem = service.to_upper_camel_case();
        ServiceNames {
            client_mod: pick("client"),
            server_mod: pick("server"),
            trait_name: sanitize(stem.clone()),
            stem,
        }
    }
}

/// The suffix of the blocking client's second method for a bidirectional RPC, the one
/// taking a `Request<()>`: `txn_with` beside `txn`.
pub(crate) const WITH_SUFFIX: &str = "_with";

/// An RPC of a service, as far as the clients' method names go.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rpc<'a> {
    /// Its prost-build name (`say_hello`, `r#type`, `self_`).
    pub(crate) name: &'a str,
    /// Whether the blocking client has a second method for it (a bidirectional RPC).
    pub(crate) with: bool,
}

/// The names of one RPC's methods on the clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientNames {
    /// The method of both clients: the prost-build name, or that name with a trailing
    /// underscore when it is a client's own (`new_`).
    pub(crate) call: String,
    /// The name [`Self::call`] would have had without the client's own methods.
    pub(crate) call_wanted: String,
    /// For a bidirectional RPC, the blocking client's method taking a `Request<()>`:
    /// `txn_with`, with trailing underscores while that is taken (`txn_with_`).
    pub(crate) call_with: Option<String>,
    /// The name [`Self::call_with`] would have had, were it free.
    pub(crate) call_with_wanted: Option<String>,
}

/// The client method names of a service's RPCs, given in declaration order.
pub(crate) fn client_names(rpcs: &[Rpc<'_>]) -> Vec<ClientNames> {
    client_names_beside(crate::service::client_reserved_names(), rpcs)
}

/// [`client_names`] for clients whose own methods are `reserved`.
///
/// The RPCs' own names come first: each is its prost-build name unless that is in
/// `reserved`, when it gets a trailing underscore (no RPC has such a name, see below).
/// Then each bidirectional RPC's second method takes its name without the `r#` or the
/// trailing underscore of an escaped keyword, and [`WITH_SUFFIX`] (`type_with`,
/// `self_with`), with a trailing underscore for as long as that is reserved or the name of
/// another method: an RPC's call (`rpc TxnWith` beside `rpc Txn`) or an earlier second
/// method. So an RPC is named alike on both clients and in the server traits whatever
/// else the service has, and every method of a client has a name of its own.
///
/// prost-build gives no RPC a name ending in `_` other than escaped keywords (`self_`,
/// `super_`, `crate_`, `extern_`), none of which is reserved, so a reserved name with an
/// underscore is free; and no name ending in [`WITH_SUFFIX`] is reserved, so one underscore
/// is always enough for a second method (the loop does not rely on it).
fn client_names_beside(reserved: &[String], rpcs: &[Rpc<'_>]) -> Vec<ClientNames> {
    let is_reserved = |name: &str| reserved.iter().any(|r| r == name);
    let calls: Vec<String> = rpcs
        .iter()
        .map(|rpc| {
            if is_reserved(rpc.name) {
                format!("{}_", rpc.name)
            } else {
                rpc.name.to_owned()
            }
        })
        .collect();
    let mut taken: BTreeSet<String> = reserved.iter().chain(&calls).cloned().collect();
    rpcs.iter()
        .zip(calls)
        .map(|(rpc, call)| {
            let wanted = rpc.with.then(|| {
                let bare = rpc.name.strip_prefix("r#").unwrap_or(rpc.name);
                let bare = bare.strip_suffix('_').unwrap_or(bare);
                format!("{bare}{WITH_SUFFIX}")
            });
            let call_with = wanted.as_ref().map(|wanted| {
                let mut name = wanted.clone();
                while taken.contains(&name) {
                    name.push('_');
                }
                taken.insert(name.clone());
                name
            });
            ClientNames {
                call,
                call_wanted: rpc.name.to_owned(),
                call_with,
                call_with_wanted: wanted,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{
        FieldDescriptorProto, FileDescriptorProto, MessageOptions, OneofDescriptorProto,
    };

    fn message(name: &str) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.to_owned()),
            ..DescriptorProto::default()
        }
    }

    fn set(package: &str, messages: Vec<DescriptorProto>) -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("x.proto".to_owned()),
                package: Some(package.to_owned()),
                message_type: messages,
                ..FileDescriptorProto::default()
            }],
        }
    }

    #[test]
    fn common_case_is_tonic_like() {
        let names = ServiceNames::new(&TakenNames::default(), "helloworld", "Greeter");
        assert_eq!(names.client_mod, "greeter_client");
        assert_eq!(names.server_mod, "greeter_server");
        assert_eq!(names.trait_name, "Greeter");
        assert_eq!(names.stem, "Greeter");
    }

    #[test]
    fn a_message_module_with_the_same_name_moves_the_stubs() {
        let mut game_client = message("GameClient");
        game_client.nested_type.push(message("Inner"));
        let taken = TakenNames::new(&set("g", vec![game_client]));
        let names = ServiceNames::new(&taken, "g", "Game");
        assert_eq!(names.client_mod, "game_client_");
        assert_eq!(names.server_mod, "game_server");
    }

    #[test]
    fn messages_without_a_module_do_not_move_the_stubs() {
        // A map field's entry type and a proto3 optional's synthetic oneof make no module.
        let mut game_client = message("GameClient");
        let mut entry = message("LabelsEntry");
        entry.options = Some(MessageOptions {
            map_entry: Some(true),
            ..MessageOptions::default()
        });
        game_client.nested_type.push(entry);
        game_client.oneof_decl.push(OneofDescriptorProto {
            name: Some("_n".to_owned()),
            ..OneofDescriptorProto::default()
        });
        game_client.field.push(FieldDescriptorProto {
            name: Some("n".to_owned()),
            oneof_index: Some(0),
            proto3_optional: Some(true),
            ..FieldDescriptorProto::default()
        });
        let taken = TakenNames::new(&set("g", vec![game_client]));
        assert_eq!(
            ServiceNames::new(&taken, "g", "Game").client_mod,
            "game_client"
        );
    }

    #[test]
    fn a_subpackage_with_the_same_name_moves_the_stubs() {
        let mut both = set("a", Vec::new());
        both.file
            .extend(set("a.greeter_server.v1", Vec::new()).file);
        let taken = TakenNames::new(&both);
        let names = ServiceNames::new(&taken, "a", "Greeter");
        assert_eq!(names.server_mod, "greeter_server_");
        assert_eq!(names.client_mod, "greeter_client");
    }

    /// The call names of unary RPCs named `names`.
    fn calls(names: &[&str]) -> Vec<String> {
        let rpcs: Vec<Rpc<'_>> = names
            .iter()
            .map(|&name| Rpc { name, with: false })
            .collect();
        client_names(&rpcs).into_iter().map(|n| n.call).collect()
    }

    /// `(call, call_with)` for RPCs given as `(name, bidirectional)` beside `reserved`.
    fn named(reserved: &[&str], rpcs: &[(&str, bool)]) -> Vec<(String, Option<String>)> {
        let reserved: Vec<String> = reserved.iter().map(|&r| r.to_owned()).collect();
        let rpcs: Vec<Rpc<'_>> = rpcs
            .iter()
            .map(|&(name, with)| Rpc { name, with })
            .collect();
        client_names_beside(&reserved, &rpcs)
            .into_iter()
            .map(|n| (n.call, n.call_with))
            .collect()
    }

    fn pair(call: &str, with: Option<&str>) -> (String, Option<String>) {
        (call.to_owned(), with.map(str::to_owned))
    }

    #[test]
    fn client_methods_yield_to_the_clients_own() {
        assert_eq!(
            calls(&[
                "new",
                "connect_lazy",
                "max_receive_message_size",
                "with_interceptor",
                "timeout",
                "wait_for_ready",
                "clone",
                "say_hello",
                "r#type",
            ]),
            [
                "new_",
                "connect_lazy_",
                "max_receive_message_size_",
                "with_interceptor_",
                "timeout_",
                "wait_for_ready_",
                "clone_",
                "say_hello",
                "r#type",
            ]
        );
    }

    #[test]
    fn a_bidirectional_rpc_gets_a_with_method() {
        assert_eq!(
            named(&["new"], &[("txn", true), ("get", false)]),
            [pair("txn", Some("txn_with")), pair("get", None)]
        );
        // Named after the RPC, not after its escaped or underscored call.
        assert_eq!(
            named(
                &["new"],
                &[("new", true), ("r#type", true), ("self_", true)]
            ),
            [
                pair("new_", Some("new_with")),
                pair("r#type", Some("type_with")),
                pair("self_", Some("self_with")),
            ]
        );
    }

    #[test]
    fn an_rpc_keeps_its_name_and_the_with_method_yields() {
        // In either order, and whatever the kind of `TxnWith`.
        for with in [false, true] {
            let txn_with_with = with.then_some("txn_with_with");
            assert_eq!(
                named(&[], &[("txn", true), ("txn_with", with)]),
                [
                    pair("txn", Some("txn_with_")),
                    pair("txn_with", txn_with_with)
                ]
            );
            assert_eq!(
                named(&[], &[("txn_with", with), ("txn", true)]),
                [
                    pair("txn_with", txn_with_with),
                    pair("txn", Some("txn_with_"))
                ]
            );
        }
        // A chain: each `_with` method is named by an RPC of the next link.
        assert_eq!(
            named(&[], &[("a", true), ("a_with", true), ("a_with_with", true)]),
            [
                pair("a", Some("a_with_")),
                pair("a_with", Some("a_with_with_")),
                pair("a_with_with", Some("a_with_with_with")),
            ]
        );
    }

    #[test]
    fn a_with_method_yields_to_the_clients_own_and_their_renamings() {
        // No client's own method ends in `_with` today; should one, the `_with` method of
        // `Txn` and `rpc TxnWith`, renamed to `txn_with_`, leave each other room.
        assert_eq!(
            named(&["txn_with"], &[("txn", true)]),
            [pair("txn", Some("txn_with_"))]
        );
        assert_eq!(
            named(&["txn_with"], &[("txn", true), ("txn_with", false)]),
            [pair("txn", Some("txn_with__")), pair("txn_with_", None)]
        );
    }

    #[test]
    fn no_reserved_name_ends_in_an_underscore_or_the_with_suffix() {
        // What the renaming rules take for granted.
        for name in crate::service::client_reserved_names() {
            assert!(!name.ends_with('_'), "{name}");
            assert!(!name.ends_with(WITH_SUFFIX), "{name}");
        }
    }

    #[test]
    fn packages_that_share_a_module_share_its_names() {
        // `x.Dup` and `x.dup` are both the module `x::dup`.
        let mut svc_client = message("SvcClient");
        svc_client.nested_type.push(message("Inner"));
        let mut both = set("x.Dup", vec![svc_client]);
        both.file.extend(set("x.dup", Vec::new()).file);
        let taken = TakenNames::new(&both);
        assert_eq!(
            ServiceNames::new(&taken, "x.dup", "Svc").client_mod,
            "svc_client_"
        );
        assert!(taken.is_taken("x", "dup"));
    }

    #[test]
    fn keyword_names_are_escaped_like_prost_build() {
        assert_eq!(rust_snake("Type"), "r#type");
        assert_eq!(rust_snake("Self"), "self_");
        let names = ServiceNames::new(&TakenNames::default(), "p", "Self");
        assert_eq!(names.trait_name, "Self_");
        assert_eq!(names.stem, "Self");
        assert_eq!(names.client_mod, "self_client");
    }
}
