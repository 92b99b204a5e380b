//! The `FILE_DESCRIPTOR_SET` constant of [`Builder::file_descriptor_set`]: a package's
//! files and everything they import, encoded, as a byte string literal.
//!
//! Source info is left out: protoc hands a plugin the source info of the files it is asked
//! to generate only, so keeping it would make the plugin's constant differ from the build
//! script's; and reflection clients do not need it. Empty options (`rpc M(A) returns (B)
//! {}` gives protoc's method an empty `options`, protox's none) are left out for the same
//! reason. Custom options (extensions of the `*Options` messages) are not kept: the
//! descriptors go through prost-types, which drops unknown fields.
//!
//! [`Builder::file_descriptor_set`]: crate::Builder::file_descriptor_set

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};

/// The constant's item, to be appended to the package's code (before formatting).
pub(crate) fn package_constant(
    set: &FileDescriptorSet,
    in_package: impl Fn(&str) -> bool,
) -> String {
    let bytes = closure(set, in_package).encode_to_vec();
    format!(
        "/// The encoded `google.protobuf.FileDescriptorSet` of this package's `.proto` files\n\
         /// and of every file they import, without source info: what a reflection service\n\
         /// serves.\n\
         pub const FILE_DESCRIPTOR_SET: &[u8] = {};\n",
        byte_string(&bytes)
    )
}

/// The files of `set` in the package, and every file they import, directly or not, each
/// after the files it imports and otherwise in the order of their names: one order for
/// one set of files, whatever order they were given in.
fn closure(set: &FileDescriptorSet, in_package: impl Fn(&str) -> bool) -> FileDescriptorSet {
    let by_name: HashMap<&str, &FileDescriptorProto> =
        set.file.iter().map(|f| (f.name(), f)).collect();
    let mut roots: Vec<&str> = set
        .file
        .iter()
        .filter(|f| in_package(f.package()))
        .map(|f| f.name())
        .collect();
    roots.sort_unstable();
    // Depth first, imports before their importer, each import list in its sorted order.
    fn visit<'a>(
        name: &'a str,
        by_name: &HashMap<&'a str, &'a FileDescriptorProto>,
        done: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a FileDescriptorProto>,
    ) {
        if !done.insert(name) {
            return;
        }
        let Some(file) = by_name.get(name) else {
            return;
        };
        let mut imports: Vec<&str> = file.dependency.iter().map(String::as_str).collect();
        imports.sort_unstable();
        for import in imports {
            visit(import, by_name, done, order);
        }
        order.push(file);
    }
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    for root in roots {
        visit(root, &by_name, &mut done, &mut order);
    }
    FileDescriptorSet {
        file: order
            .into_iter()
            .map(|f| {
                let mut file = FileDescriptorProto {
                    source_code_info: None,
                    ..f.clone()
                };
                drop_empty_options(&mut file);
                file
            })
            .collect(),
    }
}

/// Sets every `options` that holds nothing to `None`.
fn drop_empty_options(file: &mut FileDescriptorProto) {
    fn clear<T: Default + PartialEq>(options: &mut Option<T>) {
        if options.as_ref().is_some_and(|o| *o == T::default()) {
            *options = None;
        }
    }
    fn message(m: &mut DescriptorProto) {
        clear(&mut m.options);
        m.field.iter_mut().for_each(|f| clear(&mut f.options));
        m.extension.iter_mut().for_each(|f| clear(&mut f.options));
        m.oneof_decl.iter_mut().for_each(|o| clear(&mut o.options));
        m.extension_range
            .iter_mut()
            .for_each(|r| clear(&mut r.options));
        m.enum_type.iter_mut().for_each(enumeration);
        m.nested_type.iter_mut().for_each(message);
    }
    fn enumeration(e: &mut EnumDescriptorProto) {
        clear(&mut e.options);
        e.value.iter_mut().for_each(|v| clear(&mut v.options));
    }
    clear(&mut file.options);
    file.message_type.iter_mut().for_each(message);
    file.enum_type.iter_mut().for_each(enumeration);
    file.extension
        .iter_mut()
        .for_each(|f| clear(&mut f.options));
    for service in &mut file.service {
        clear(&mut service.options);
        service
            .method
            .iter_mut()
            .for_each(|m| clear(&mut m.options));
    }
}

/// Bytes as a byte string literal of lines about 100 characters long, continued with `\`
/// (which skips the newline and the next line's indentation). Bytes that are whitespace,
/// `/` (so that no line looks like a comment to the formatting pass) or not printable
/// ASCII are escaped.
fn byte_string(bytes: &[u8]) -> String {
    const WIDTH: usize = 100;
    let mut out = String::from("b\"\\\n    ");
    let mut line = 0;
    for &byte in bytes {
        let piece = match byte {
            b'\\' => "\\\\".to_owned(),
            b'"' => "\\\"".to_owned(),
            b'\n' => "\\n".to_owned(),
            b'\r' => "\\r".to_owned(),
            b'\t' => "\\t".to_owned(),
            0 => "\\0".to_owned(),
            b'/' => "\\x2f".to_owned(),
            0x21..=0x7e => (byte as char).to_string(),
            _ => format!("\\x{byte:02x}"),
        };
        if line + piece.len() > WIDTH {
            out.push_str("\\\n    ");
            line = 0;
        }
        line += piece.len();
        out.push_str(&piece);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a literal made by [`byte_string`] back, as rustc would.
    fn unescape(literal: &str) -> Vec<u8> {
        let body = literal
            .strip_prefix("b\"")
            .unwrap()
            .strip_suffix('"')
            .unwrap();
        let mut out = Vec::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c as u8);
                continue;
            }
            match chars.next().unwrap() {
                '\n' => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                'n' => out.push(b'\n'),
                'r' => out.push(b'\r'),
                't' => out.push(b'\t'),
                '0' => out.push(0),
                'x' => {
                    let hex: String = [chars.next().unwrap(), chars.next().unwrap()]
                        .iter()
                        .collect();
                    out.push(u8::from_str_radix(&hex, 16).unwrap());
                }
                other => out.push(other as u8),
            }
        }
        out
    }

    #[test]
    fn every_byte_survives_the_literal() {
        let bytes: Vec<u8> = (0..=255u8).chain(b" // \\\" x".iter().copied()).collect();
        let literal = byte_string(&bytes);
        assert_eq!(unescape(&literal), bytes);
        for line in literal.lines() {
            assert!(line.len() <= 110, "{line}");
            assert!(!line.trim_start().starts_with("//"), "{line}");
            assert!(line.is_ascii());
        }
        // It is a literal Rust reads back the same.
        let parsed: syn::LitByteStr = syn::parse_str(&literal).unwrap();
        assert_eq!(parsed.value(), bytes);
    }

    #[test]
    fn the_closure_takes_imports_of_imports_and_nothing_else() {
        let file = |name: &str, package: &str, deps: &[&str]| FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            dependency: deps.iter().map(|d| d.to_string()).collect(),
            source_code_info: Some(Default::default()),
            ..Default::default()
        };
        let set = FileDescriptorSet {
            file: vec![
                file("c.proto", "c", &[]),
                file("b.proto", "b", &["c.proto"]),
                file("unrelated.proto", "u", &[]),
                file("a1.proto", "a", &["b.proto"]),
                file("a2.proto", "a", &[]),
            ],
        };
        let closure = closure(&set, |p| p == "a");
        let names: Vec<&str> = closure.file.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["c.proto", "b.proto", "a1.proto", "a2.proto"]);
        assert!(closure.file.iter().all(|f| f.source_code_info.is_none()));
    }

    #[test]
    fn the_closure_is_in_one_order_whatever_the_input_order() {
        let file = |name: &str, deps: &[&str]| FileDescriptorProto {
            name: Some(name.into()),
            package: Some("a".into()),
            dependency: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        };
        let files = vec![
            file("z.proto", &[]),
            file("y.proto", &["z.proto"]),
            file("b.proto", &["y.proto", "x.proto"]),
            file("x.proto", &[]),
            file("a.proto", &[]),
        ];
        let mut reversed = files.clone();
        reversed.reverse();
        let names = |files: Vec<FileDescriptorProto>| -> Vec<String> {
            closure(&FileDescriptorSet { file: files }, |_| true)
                .file
                .iter()
                .map(|f| f.name().to_owned())
                .collect()
        };
        let expected = ["a.proto", "x.proto", "z.proto", "y.proto", "b.proto"];
        assert_eq!(names(files), expected);
        assert_eq!(names(reversed), expected);
    }
}
