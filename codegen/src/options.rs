//! `key=value` options, shared by the protoc plugin (`--rsgrpc_opt`) and the macro.

use crate::{Builder, Error};

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

/// Applies one `key=value` option.
pub(crate) fn apply(builder: Builder, option: &str) -> Result<Builder, Error> {
    let option = option.trim();
    let (key, value) = option.split_once('=').unwrap_or((option, ""));
    Ok(match key {
        "client" => builder.build_client(flag(key, value)?),
        "server" => builder.build_server(flag(key, value)?),
        "blocking" => builder.blocking(flag(key, value)?),
        "async" => builder.asynchronous(flag(key, value)?),
        "type_attribute" => {
            let (path, attribute) = pair(key, value)?;
            builder.type_attribute(path, attribute)
        }
        "field_attribute" => {
            let (path, attribute) = pair(key, value)?;
            builder.field_attribute(path, attribute)
        }
        "extern_path" => {
            let (proto, rust) = pair(key, value)?;
            builder.extern_path(proto, rust)
        }
        "bytes" => builder.bytes(value),
        "btree_map" => builder.btree_map(value),
        other => {
            return Err(Error::option(format!(
                "unknown option {other:?}; known options: client, server, blocking, async, \
                 type_attribute, field_attribute, extern_path, bytes, btree_map"
            )));
        }
    })
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
        assert!(
            apply(Builder::new(), "client=maybe")
                .unwrap_err()
                .is_option()
        );
        assert!(
            apply(Builder::new(), "colour=blue")
                .unwrap_err()
                .is_option()
        );
        assert!(
            apply(Builder::new(), "type_attribute=noequals")
                .unwrap_err()
                .is_option()
        );
    }
}
