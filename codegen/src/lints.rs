//! Clippy lints that a stub method can trip because of the name the proto gives it, and
//! the targeted allows that answer them; and whether the names the proto gives an enum's
//! variants trip `enum_variant_names` (answered by [`crate::tidy`]).
//!
//! The stubs take their method names from the proto (`rpc Cmp` is a client method `cmp`),
//! so clippy's naming conventions are the proto's choice, not a mistake in the generated
//! code. Each allow is placed on the one method clippy reports, names only the lints that
//! the method's name and shape can trip (as clippy decides them, below), and says why.
//! (prost's getters are written by its derive, where clippy does not look, but for
//! `len_without_is_empty`, which [`crate::tidy`] answers on the message.)

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// How a method takes `self`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// No `self`: an associated function.
    No,
    /// `&self`.
    Ref,
    /// `&mut self`.
    RefMut,
    /// `self`.
    Value,
}

/// What a method returns, as far as clippy's `should_implement_trait` looks at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// Nothing, or `()`.
    Unit,
    /// `bool`.
    Bool,
    /// A reference.
    Ref,
    /// Anything else, `Self` not among it (a `Result`, a scalar, a future).
    Other,
}

/// The shape of a method whose name the proto chose.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Method<'a> {
    /// Its name, without `r#`.
    pub(crate) name: &'a str,
    pub(crate) receiver: Receiver,
    /// Its parameters, `self` included.
    pub(crate) params: usize,
    pub(crate) output: Output,
    /// Declared in a trait (the server traits) rather than an inherent impl.
    pub(crate) in_trait: bool,
}

/// The methods of std traits that clippy's `should_implement_trait` expects to be those
/// traits' (its `TRAIT_METHODS`): name, parameter count, receiver and output, where `None`
/// is any output but `()`.
const TRAIT_METHODS: &[(&str, usize, Receiver, Option<Output>)] = &[
    ("add", 2, Receiver::Value, None),
    ("as_mut", 1, Receiver::RefMut, Some(Output::Ref)),
    ("as_ref", 1, Receiver::Ref, Some(Output::Ref)),
    ("bitand", 2, Receiver::Value, None),
    ("bitor", 2, Receiver::Value, None),
    ("bitxor", 2, Receiver::Value, None),
    ("borrow", 1, Receiver::Ref, Some(Output::Ref)),
    ("borrow_mut", 1, Receiver::RefMut, Some(Output::Ref)),
    ("clone", 1, Receiver::Ref, None),
    ("cmp", 2, Receiver::Ref, None),
    ("default", 0, Receiver::No, None),
    ("deref", 1, Receiver::Ref, Some(Output::Ref)),
    ("deref_mut", 1, Receiver::RefMut, Some(Output::Ref)),
    ("div", 2, Receiver::Value, None),
    ("drop", 1, Receiver::RefMut, Some(Output::Unit)),
    ("eq", 2, Receiver::Ref, Some(Output::Bool)),
    ("from_iter", 1, Receiver::No, None),
    ("from_str", 1, Receiver::No, None),
    ("hash", 2, Receiver::Ref, Some(Output::Unit)),
    ("index", 2, Receiver::Ref, Some(Output::Ref)),
    ("index_mut", 2, Receiver::RefMut, Some(Output::Ref)),
    ("into_iter", 1, Receiver::Value, None),
    ("mul", 2, Receiver::Value, None),
    ("neg", 1, Receiver::Value, None),
    ("next", 1, Receiver::RefMut, None),
    ("not", 1, Receiver::Value, None),
    ("rem", 2, Receiver::Value, None),
    ("shl", 2, Receiver::Value, None),
    ("shr", 2, Receiver::Value, None),
    ("sub", 2, Receiver::Value, None),
];

/// Whether clippy's `should_implement_trait` takes `method` for a std trait's method that
/// should be an impl of the trait (it looks at inherent impls only).
fn looks_like_trait_method(method: &Method<'_>) -> bool {
    !method.in_trait
        && TRAIT_METHODS
            .iter()
            .any(|&(name, params, receiver, output)| {
                name == method.name
                    && params == method.params
                    && receiver == method.receiver
                    && match output {
                        None => method.output != Output::Unit,
                        Some(output) => method.output == output,
                    }
            })
}

/// Whether `method` breaks clippy's `wrong_self_convention`: `new` and `from_*` take no
/// `self`, `into_*` takes `self`, `to_*_mut` and `to_mut` take `&mut self`, `as_*` a
/// reference, `is_*` anything but `self`.
fn breaks_self_convention(method: &Method<'_>) -> bool {
    let name = method.name;
    let receiver = method.receiver;
    if name == "new" || name.starts_with("from_") {
        receiver != Receiver::No
    } else if name.starts_with("into_") {
        receiver != Receiver::Value
    } else if name == "to_mut" || (name.starts_with("to_") && name.ends_with("_mut")) {
        receiver != Receiver::RefMut
    } else if name.starts_with("as_") {
        !matches!(receiver, Receiver::Ref | Receiver::RefMut)
    } else if name.starts_with("is_") {
        receiver == Receiver::Value
    } else {
        false
    }
}

/// The clippy lints `method` trips by its name, in a fixed order.
pub(crate) fn tripped(method: &Method<'_>) -> Vec<&'static str> {
    let mut lints = Vec::new();
    if looks_like_trait_method(method) {
        lints.push("should_implement_trait");
    }
    if breaks_self_convention(method) {
        lints.push("wrong_self_convention");
    }
    // `new` that does not return `Self`; none of the methods checked here does.
    if method.name == "new" {
        lints.push("new_ret_no_self");
    }
    lints
}

/// Whether clippy's `enum_variant_names` can report an enum named `name` whose variants
/// are named `variants`, as it does where the enum is not exported (in a binary, or a
/// private module; exported enums it leaves alone by default). It looks at enums of three
/// variants or more (its default threshold) for a variant that starts with the enum's name
/// (then a capital) or ends with it, and for camel-case words that start or end every
/// variant, none of which is a single word. Words are split here at every capital, which
/// is finer than clippy's split: a doubt answers yes, and an allow clippy would not need
/// costs nothing.
pub(crate) fn trips_enum_variant_names(name: &str, variants: &[String]) -> bool {
    if variants.len() < 3 {
        return false;
    }
    let repeats_name = variants.iter().any(|variant| {
        let after_name = variant
            .strip_prefix(name)
            .and_then(|rest| rest.chars().next());
        after_name.is_some_and(|c| !c.is_lowercase()) || variant.ends_with(name)
    });
    if repeats_name {
        return true;
    }
    let words: Vec<Vec<&str>> = variants.iter().map(|v| camel_case_words(v)).collect();
    if words.iter().any(|w| w.len() < 2) {
        return false;
    }
    let first = &words[0];
    words.iter().all(|w| w.first() == first.first())
        || words.iter().all(|w| w.last() == first.last())
}

/// `AbcDefGHi` as `["Abc", "Def", "G", "Hi"]`: a word starts at every capital.
fn camel_case_words(name: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    for (index, c) in name.char_indices().skip(1) {
        if c.is_uppercase() {
            words.push(&name[start..index]);
            start = index;
        }
    }
    words.push(&name[start..]);
    words
}

/// `#[allow(clippy::..., reason = "the proto names this method")]` for the lints `method`
/// trips, or nothing.
pub(crate) fn allow(method: &Method<'_>) -> TokenStream {
    allow_lints(&tripped(method), "the proto names this method")
}

/// `#[allow(clippy::..., reason = ...)]` for `lints`, or nothing when there are none.
pub(crate) fn allow_lints(lints: &[&str], reason: &str) -> TokenStream {
    if lints.is_empty() {
        return quote!();
    }
    let lints = lints.iter().map(|lint| format_ident!("{lint}"));
    quote!(#[allow(#(clippy::#lints,)* reason = #reason)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str) -> Method<'_> {
        Method {
            name,
            receiver: Receiver::Ref,
            params: 2,
            output: Output::Other,
            in_trait: false,
        }
    }

    fn getter(name: &str, output: Output) -> Method<'_> {
        Method {
            name,
            receiver: Receiver::Ref,
            params: 1,
            output,
            in_trait: false,
        }
    }

    #[test]
    fn client_methods_trip_what_clippy_checks_for_their_shape() {
        assert_eq!(tripped(&client("cmp")), ["should_implement_trait"]);
        // `eq` must return bool and `hash` nothing to look like the traits' methods.
        assert!(tripped(&client("eq")).is_empty());
        assert!(tripped(&client("hash")).is_empty());
        assert!(tripped(&client("say_hello")).is_empty());
        assert_eq!(tripped(&client("from_parts")), ["wrong_self_convention"]);
        assert_eq!(tripped(&client("into_raw")), ["wrong_self_convention"]);
        assert!(tripped(&client("to_owned_copy")).is_empty());
        assert_eq!(tripped(&client("to_mut")), ["wrong_self_convention"]);
    }

    #[test]
    fn getters_trip_what_clippy_checks_for_their_shape() {
        assert_eq!(
            tripped(&getter("clone", Output::Other)),
            ["should_implement_trait"]
        );
        assert_eq!(
            tripped(&getter("deref", Output::Ref)),
            ["should_implement_trait"]
        );
        assert!(tripped(&getter("deref", Output::Other)).is_empty());
        assert_eq!(
            tripped(&getter("new", Output::Other)),
            ["wrong_self_convention", "new_ret_no_self"]
        );
    }

    #[test]
    fn trait_methods_never_trip_should_implement_trait() {
        let method = Method {
            in_trait: true,
            ..client("cmp")
        };
        assert!(tripped(&method).is_empty());
        let new = Method {
            in_trait: true,
            ..client("new")
        };
        assert_eq!(tripped(&new), ["wrong_self_convention", "new_ret_no_self"]);
    }

    fn trips(name: &str, variants: &[&str]) -> bool {
        let variants: Vec<String> = variants.iter().map(|v| (*v).to_owned()).collect();
        trips_enum_variant_names(name, &variants)
    }

    #[test]
    fn enum_variant_names_trip_as_clippy_decides() {
        // The enum's name in front (prost-build's retain_enum_prefix) or at the end.
        assert!(trips("State", &["StateUnspecified", "StateOn", "StateOff"]));
        assert!(trips("Kind", &["FirstKind", "SecondKind", "ThirdKind"]));
        // A prefix or suffix every variant shares.
        assert!(trips("Transport", &["HttpOne", "HttpTwo", "HttpThree"]));
        assert!(trips("Payload", &["TextBody", "BinaryBody", "NumberBody"]));
        // Fewer than three variants, words shared by some only, a one-word variant, or
        // the name followed by a small letter: nothing to report.
        assert!(!trips("State", &["StateOn", "StateOff"]));
        assert!(!trips("State", &["Unspecified", "Running", "Stopped"]));
        assert!(!trips("T", &["HttpOne", "HttpTwo", "Http"]));
        assert!(!trips("T", &["HttpOne", "HttpTwo", "GrpcOne"]));
        assert!(!trips("Sta", &["Stack", "Stall", "Other"]));
    }

    #[test]
    fn camel_case_words_start_at_capitals() {
        assert_eq!(camel_case_words("AbcDefGHi"), ["Abc", "Def", "G", "Hi"]);
        assert_eq!(camel_case_words("Int64Value"), ["Int64", "Value"]);
        assert_eq!(camel_case_words("One"), ["One"]);
    }

    #[test]
    fn the_allow_names_each_lint() {
        let allow = allow(&getter("new", Output::Other)).to_string();
        assert!(allow.contains("clippy :: wrong_self_convention"), "{allow}");
        assert!(allow.contains("clippy :: new_ret_no_self"), "{allow}");
        assert!(allow.contains("the proto names this method"), "{allow}");
        assert!(allow_lints(&[], "x").is_empty());
    }
}
