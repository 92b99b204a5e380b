//! `key=value` options, shared by the protoc plugin (`--rsgrpc_opt`) and the macro.

use crate::{Builder, Error};

/// What the value of an option is.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionValue {
    /// `true` or `false` (or nothing, for `true`).
    Flag,
    /// `PATH=VALUE`: a protobuf path and an attribute, a Rust path or a domain.
    Pair,
    /// A protobuf path or a file name.
    Value,
}

/// Every option and what its value is, in the order the error message lists them: the
/// one list the plugin's parameter and the macro's arguments are checked against.
pub(crate) const OPTIONS: &[(&str, OptionValue)] = &[
    ("client", OptionValue::Flag),
    ("server", OptionValue::Flag),
    ("blocking", OptionValue::Flag),
    ("async", OptionValue::Flag),
    ("type_attribute", OptionValue::Pair),
    ("message_attribute", OptionValue::Pair),
    ("enum_attribute", OptionValue::Pair),
    ("field_attribute", OptionValue::Pair),
    ("client_attribute", OptionValue::Pair),
    ("server_attribute", OptionValue::Pair),
    ("trait_attribute", OptionValue::Pair),
    ("client_mod_attribute", OptionValue::Pair),
    ("server_mod_attribute", OptionValue::Pair),
    ("extern_path", OptionValue::Pair),
    ("type_name_domain", OptionValue::Pair),
    ("bytes", OptionValue::Value),
    ("btree_map", OptionValue::Value),
    ("boxed", OptionValue::Value),
    ("skip_debug", OptionValue::Value),
    ("disable_comments", OptionValue::Value),
    ("compile_well_known_types", OptionValue::Flag),
    ("retain_enum_prefix", OptionValue::Flag),
    ("enable_type_names", OptionValue::Flag),
    ("default_stubs", OptionValue::Flag),
    ("emit_package", OptionValue::Flag),
    ("file_descriptor_set", OptionValue::Flag),
    ("include_file", OptionValue::Value),
];

/// The keys of [`OPTIONS`], comma separated.
fn known() -> String {
    OPTIONS
        .iter()
        .map(|(key, _)| *key)
        .collect::<Vec<_>>()
        .join(", ")
}

fn flag(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::option(format!(
            "option {key} takes true or false, not {other:?}"
        ))),
    }
}

fn pair<'a>(key: &str, value: &'a str) -> Result<(&'a str, &'a str), Error> {
    value
        .split_once('=')
        .ok_or_else(|| Error::option(format!("option {key} takes PATH=VALUE, not {value:?}")))
}

fn nonempty<'a>(key: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(Error::option(format!("option {key} needs a value")))
    } else {
        Ok(value)
    }
}

/// Applies one `key=value` option.
pub(crate) fn apply(builder: Builder, option: &str) -> Result<Builder, Error> {
    let option = option.trim();
    let (key, value) = option.split_once('=').unwrap_or((option, ""));
    let Some(&(_, kind)) = OPTIONS.iter().find(|(known, _)| *known == key) else {
        // `B)]` from `type_attribute=.=#[derive(A, B)]` split at its comma.
        let hint = if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            ""
        } else {
            " (is it the rest of a value with a comma? write the comma as `\\,`)"
        };
        return Err(Error::option(format!(
            "unknown option {key:?}{hint}; known options: {}",
            known()
        )));
    };
    if kind == OptionValue::Value {
        nonempty(key, value)?;
    }
    Ok(match key {
        "client" => builder.build_client(flag(key, value)?),
        "server" => builder.build_server(flag(key, value)?),
        "blocking" => builder.blocking(flag(key, value)?),
        "async" => builder.asynchronous(flag(key, value)?),
        "compile_well_known_types" => builder.compile_well_known_types(flag(key, value)?),
        "retain_enum_prefix" => builder.retain_enum_prefix(flag(key, value)?),
        "enable_type_names" => builder.enable_type_names(flag(key, value)?),
        "default_stubs" => builder.generate_default_stubs(flag(key, value)?),
        "emit_package" => builder.emit_package(flag(key, value)?),
        "file_descriptor_set" => builder.file_descriptor_set(flag(key, value)?),
        "type_attribute"
        | "message_attribute"
        | "enum_attribute"
        | "field_attribute"
        | "client_attribute"
        | "server_attribute"
        | "trait_attribute"
        | "client_mod_attribute"
        | "server_mod_attribute" => {
            let (path, attribute) = pair(key, value)?;
            match key {
                "type_attribute" => builder.type_attribute(path, attribute),
                "message_attribute" => builder.message_attribute(path, attribute),
                "enum_attribute" => builder.enum_attribute(path, attribute),
                "field_attribute" => builder.field_attribute(path, attribute),
                "client_attribute" => builder.client_attribute(path, attribute),
                "server_attribute" => builder.server_attribute(path, attribute),
                "trait_attribute" => builder.trait_attribute(path, attribute),
                "client_mod_attribute" => builder.client_mod_attribute(path, attribute),
                _ => builder.server_mod_attribute(path, attribute),
            }
        }
        "extern_path" => {
            let (proto, rust) = pair(key, value)?;
            builder.extern_path(proto, rust)
        }
        "type_name_domain" => {
            let (path, domain) = pair(key, value)?;
            builder.type_name_domain(path, domain)
        }
        "bytes" => builder.bytes(value),
        "btree_map" => builder.btree_map(value),
        "boxed" => builder.boxed(value),
        "skip_debug" => builder.skip_debug(value),
        "disable_comments" => builder.disable_comments(value),
        "include_file" => builder.include_file(value),
        other => unreachable!("option {other} is in OPTIONS but not applied"),
    })
}

/// Splits a protoc plugin parameter at its commas: `\,` is a comma inside a value, `\\` a
/// backslash (needed only right before a separating comma); other backslashes are kept.
pub(crate) fn split(parameter: &str) -> Vec<String> {
    let mut options = vec![String::new()];
    let mut chars = parameter.chars().peekable();
    while let Some(c) = chars.next() {
        let current = options.last_mut().expect("never empty");
        match (c, chars.peek()) {
            ('\\', Some(&next @ (',' | '\\'))) => {
                current.push(next);
                chars.next();
            }
            (',', _) => options.push(String::new()),
            _ => current.push(c),
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let b = apply(Builder::new(), "client=false").unwrap();
        assert!(!b.parts.client);
        let b = apply(b, "async=false").unwrap();
        assert!(!b.parts.asynchronous);
        let b = apply(b, "type_attribute=.=#[derive(Eq)]").unwrap();
        assert_eq!(
            b.type_attributes,
            vec![(".".to_owned(), "#[derive(Eq)]".to_owned())]
        );
        let b = apply(b, "default_stubs").unwrap();
        assert!(b.default_stubs);
        let b = apply(b, "include_file=all.rs").unwrap();
        assert_eq!(b.include_file.as_deref(), Some("all.rs"));
        let b = apply(b, "server_attribute=.a.S=#[must_use]").unwrap();
        assert_eq!(b.server_attributes.len(), 1);
        assert!(
            apply(Builder::new(), "client=maybe")
                .unwrap_err()
                .is_option()
        );
        let unknown = apply(Builder::new(), "colour=blue").unwrap_err();
        assert!(
            unknown
                .to_string()
                .ends_with(&format!("known options: {}", known())),
            "{unknown}"
        );
        assert!(unknown.is_option());
        assert!(unknown.to_string().contains("include_file"), "{unknown}");
        assert!(
            apply(Builder::new(), "type_attribute=noequals")
                .unwrap_err()
                .is_option()
        );
        assert!(apply(Builder::new(), "include_file=").is_err());
    }

    #[test]
    fn every_option_applies_and_is_documented() {
        let docs = include_str!("builder.rs");
        let table = &docs[docs.find("/// | key | value | same as |").unwrap()..];
        let table = &table[..table.find("pub fn option(").unwrap()];
        for (key, kind) in OPTIONS {
            let value = match kind {
                OptionValue::Flag => "true",
                OptionValue::Pair => ".a=#[derive(Eq)]",
                OptionValue::Value => ".a",
            };
            if let Err(e) = apply(Builder::new(), &format!("{key}={value}")) {
                panic!("{key}: {e}");
            }
            assert!(
                table.contains(&format!("`{key}`")),
                "{key} is not in the docs"
            );
        }
    }

    #[test]
    fn escaped_commas_stay_in_their_value() {
        assert_eq!(
            split(r"type_attribute=.=#[derive(A\, B)],blocking=false"),
            vec!["type_attribute=.=#[derive(A, B)]", "blocking=false"]
        );
        // A backslash before a separating comma is doubled; others stay as they are.
        assert_eq!(split(r"a=x\\,b=\n\d,c"), vec![r"a=x\", r"b=\n\d", "c"]);
        assert_eq!(split(""), vec![""]);
        assert_eq!(split(r"trailing\"), vec![r"trailing\"]);
    }

    #[test]
    fn a_parameter_applies_each_option() {
        let b = Builder::new()
            .parameter(r"type_attribute=.=#[derive(Eq\, Hash)],,server=false")
            .unwrap();
        assert_eq!(b.type_attributes[0].1, "#[derive(Eq, Hash)]");
        assert!(!b.parts.server);
        let err = Builder::new()
            .parameter("type_attribute=.=#[derive(A, B)]")
            .unwrap_err();
        assert!(err.to_string().contains("unknown option \"B)]\""), "{err}");
    }
}
