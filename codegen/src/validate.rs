//! Checks made before prost-build sees the input, so that malformed descriptors, settings
//! or names become errors naming the element, not panics or code that does not compile.

use std::collections::BTreeMap;

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::Error;

/// The descriptors have what prost-build relies on: names, and fully qualified type names
/// (protoc and protox always write them; a hand-made plugin request may not).
pub(crate) fn descriptors(set: &FileDescriptorSet) -> Result<(), Error> {
    for file in &set.file {
        let Some(file_name) = file.name.as_deref() else {
            return Err(Error::invalid("a file descriptor has no name"));
        };
        names(file_name, file)?;
        let scope = |name: &str| {
            if file.package().is_empty() {
                name.to_owned()
            } else {
                format!("{}.{name}", file.package())
            }
        };
        for message in &file.message_type {
            message_descriptor(file_name, &scope(message.name()), message)?;
        }
        for enumeration in &file.enum_type {
            if enumeration.name.is_none() {
                return Err(Error::invalid(format!("{file_name}: an enum has no name")));
            }
        }
        for service in &file.service {
            let Some(name) = service.name.as_deref() else {
                return Err(Error::invalid(format!(
                    "{file_name}: a service has no name"
                )));
            };
            for method in &service.method {
                let Some(method_name) = method.name.as_deref() else {
                    return Err(Error::invalid(format!(
                        "{file_name}: a method of service {} has no name",
                        scope(name)
                    )));
                };
                for (what, ty) in [
                    ("input", &method.input_type),
                    ("output", &method.output_type),
                ] {
                    if !ty.as_deref().is_some_and(|t| t.starts_with('.')) {
                        return Err(Error::invalid(format!(
                            "{file_name}: method {}.{method_name} has no fully qualified {what} \
                             type (found {ty:?})",
                            scope(name)
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks the name of one kind of element (`"message"`, `"field"`, ...), if it has one.
type NameCheck<'a> = dyn Fn(&str, Option<&str>) -> Result<(), Error> + 'a;

/// Whether `name` is a protobuf identifier: a letter or `_`, then letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The file's syntax is one prost-build generates, and every name in it (package segments,
/// messages, fields, oneofs, enums, values, services, methods) is an identifier, as protoc
/// and protox make sure: prost-build panics on other syntaxes and writes code that does not
/// parse for other names.
fn names(file_name: &str, file: &prost_types::FileDescriptorProto) -> Result<(), Error> {
    match file.syntax.as_deref() {
        None | Some("" | "proto2" | "proto3") => {}
        Some("editions") => return Err(Error::editions(file_name)),
        Some(other) => {
            return Err(Error::invalid(format!(
                "{file_name}: syntax {other:?} is not supported (proto2 and proto3 are)"
            )));
        }
    }
    let check = |what: &str, name: Option<&str>| match name {
        // A missing name is reported where the element is checked, with more context.
        None => Ok(()),
        Some(name) if is_identifier(name) => Ok(()),
        Some(name) => Err(Error::invalid(format!(
            "{file_name}: {what} name {name:?} is not an identifier"
        ))),
    };
    if !file.package().is_empty() {
        for segment in file.package().split('.') {
            check("package", Some(segment))?;
        }
    }
    fn enums(
        check: &NameCheck<'_>,
        list: &[prost_types::EnumDescriptorProto],
    ) -> Result<(), Error> {
        for enumeration in list {
            check("enum", enumeration.name.as_deref())?;
            for value in &enumeration.value {
                check("enum value", value.name.as_deref())?;
            }
        }
        Ok(())
    }
    fn messages(check: &NameCheck<'_>, list: &[DescriptorProto]) -> Result<(), Error> {
        for message in list {
            check("message", message.name.as_deref())?;
            for field in message.field.iter().chain(&message.extension) {
                check("field", field.name.as_deref())?;
            }
            for oneof in &message.oneof_decl {
                check("oneof", oneof.name.as_deref())?;
            }
            enums(check, &message.enum_type)?;
            messages(check, &message.nested_type)?;
        }
        Ok(())
    }
    messages(&check, &file.message_type)?;
    enums(&check, &file.enum_type)?;
    for field in &file.extension {
        check("extension", field.name.as_deref())?;
    }
    for service in &file.service {
        check("service", service.name.as_deref())?;
        for method in &service.method {
            check("method", method.name.as_deref())?;
        }
    }
    Ok(())
}

fn message_descriptor(file: &str, full_name: &str, message: &DescriptorProto) -> Result<(), Error> {
    if message.name.is_none() {
        return Err(Error::invalid(format!("{file}: a message has no name")));
    }
    for field in &message.field {
        if field.name.is_none() {
            return Err(Error::invalid(format!(
                "{file}: a field of message {full_name} has no name"
            )));
        }
        if let Some(ty) = &field.type_name {
            if !ty.starts_with('.') {
                return Err(Error::invalid(format!(
                    "{file}: field {full_name}.{} has type {ty:?}, which is not fully \
                     qualified",
                    field.name()
                )));
            }
        }
    }
    for nested in &message.nested_type {
        message_descriptor(file, &format!("{full_name}.{}", nested.name()), nested)?;
    }
    for enumeration in &message.enum_type {
        if enumeration.name.is_none() {
            return Err(Error::invalid(format!(
                "{file}: an enum in message {full_name} has no name"
            )));
        }
    }
    Ok(())
}

/// Every type a method or field names is a message or enum of the set, of the right kind:
/// prost-build would otherwise write code naming a type that does not exist, which does not
/// compile (protoc and protox check this; a hand-made descriptor set may not).
pub(crate) fn types_resolve(set: &FileDescriptorSet) -> Result<(), Error> {
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    fn collect(kinds: &mut BTreeMap<String, Kind>, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for enumeration in &message.enum_type {
            kinds.insert(format!("{name}.{}", enumeration.name()), Kind::Enum);
        }
        for nested in &message.nested_type {
            collect(kinds, &name, nested);
        }
        kinds.insert(name, Kind::Message);
    }
    for file in &set.file {
        let scope = match file.package() {
            "" => String::new(),
            package => format!(".{package}"),
        };
        for message in &file.message_type {
            collect(&mut kinds, &scope, message);
        }
        for enumeration in &file.enum_type {
            kinds.insert(format!("{scope}.{}", enumeration.name()), Kind::Enum);
        }
    }
    let check = |file: &str, what: &dyn std::fmt::Display, ty: &str, want: Option<Kind>| match (
        kinds.get(ty),
        want,
    ) {
        (None, _) => Err(Error::invalid(format!(
            "{file}: {what} has type {ty}, which no file of the set defines"
        ))),
        (Some(kind), Some(want)) if *kind != want => Err(Error::invalid(format!(
            "{file}: {what} has type {ty}, which is {}, not {}",
            kind.article(),
            want.article()
        ))),
        _ => Ok(()),
    };
    fn fields<'a>(
        scope: &str,
        message: &'a DescriptorProto,
        out: &mut Vec<(String, &'a prost_types::FieldDescriptorProto)>,
    ) {
        let name = format!("{scope}.{}", message.name());
        for field in message.field.iter().chain(&message.extension) {
            out.push((name.clone(), field));
        }
        for nested in &message.nested_type {
            fields(&name, nested, out);
        }
    }
    for file in &set.file {
        let scope = match file.package() {
            "" => String::new(),
            package => format!(".{package}"),
        };
        let mut all = Vec::new();
        for message in &file.message_type {
            fields(&scope, message, &mut all);
        }
        for field in &file.extension {
            all.push((scope.clone(), field));
        }
        for (owner, field) in all {
            use prost_types::field_descriptor_proto::Type;
            let Some(ty) = field.type_name.as_deref() else {
                continue;
            };
            let want = match field.r#type.map(Type::try_from) {
                Some(Ok(Type::Message | Type::Group)) => Some(Kind::Message),
                Some(Ok(Type::Enum)) => Some(Kind::Enum),
                _ => None,
            };
            let what = format_args!("field {owner}.{}", field.name());
            check(file.name(), &what, ty, want)?;
        }
        for service in &file.service {
            for method in &service.method {
                let what = format_args!("method {scope}.{}.{}", service.name(), method.name());
                check(file.name(), &what, method.input_type(), Some(Kind::Message))?;
                check(
                    file.name(),
                    &what,
                    method.output_type(),
                    Some(Kind::Message),
                )?;
            }
        }
    }
    Ok(())
}

/// What a fully qualified type name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Message,
    Enum,
}

impl Kind {
    fn article(self) -> &'static str {
        match self {
            Kind::Message => "a message",
            Kind::Enum => "an enum",
        }
    }
}

/// No two services of one Rust module (in the files to generate) share stub modules, no
/// two messages or enums of one Rust module share a Rust name, and no two methods of a
/// service share a Rust name: protobuf names that differ only in case or underscores
/// (`FooBar`, `Foo_Bar`) become the same Rust name, and so do packages (`x.Dup` and `x.dup`
/// are both the module `x::dup`).
pub(crate) fn rust_names(set: &FileDescriptorSet, files: &[String]) -> Result<(), Error> {
    /// Where a name was first seen: the protobuf name, its package and its file.
    type Seen<'a> = (&'a str, &'a str, &'a str);
    let describe = |(name, package, file): Seen<'_>| {
        if package.is_empty() {
            format!("{name} ({file})")
        } else {
            format!("{package}.{name} ({file})")
        }
    };
    let mut services: BTreeMap<(Vec<String>, String), Seen<'_>> = BTreeMap::new();
    let mut types: BTreeMap<(Vec<String>, String), Seen<'_>> = BTreeMap::new();
    let mut generated: Vec<&prost_types::FileDescriptorProto> = set
        .file
        .iter()
        .filter(|f| files.iter().any(|n| n == f.name()))
        .collect();
    // The first of two clashing names is the one whose file sorts first, whatever the
    // order of the input.
    generated.sort_by_key(|f| f.name());
    for file in generated {
        let module = crate::names::module_of(file.package());
        let path = if module.is_empty() {
            "the module of files without a package".to_owned()
        } else {
            format!("the Rust module {}", module.join("::"))
        };
        let type_names = file
            .message_type
            .iter()
            .map(|m| m.name())
            .chain(file.enum_type.iter().map(|e| e.name()));
        for name in type_names {
            let key = (module.clone(), name.to_upper_camel_case());
            let this = (name, file.package(), file.name());
            if let Some(other) = types.insert(key, this) {
                if other.1 != this.1 || other.0 != this.0 {
                    return Err(Error::invalid(format!(
                        "{}: {} and {} would both be the Rust type {} in {path}; rename one",
                        file.name(),
                        describe(other),
                        describe(this),
                        name.to_upper_camel_case(),
                    )));
                }
            }
        }
        for service in &file.service {
            let key = (module.clone(), service.name().to_snake_case());
            let this = (service.name(), file.package(), file.name());
            if let Some(other) = services.insert(key, this) {
                return Err(Error::invalid(format!(
                    "{}: services {} and {} would get the same Rust names in {path}; rename \
                     one",
                    file.name(),
                    describe(other),
                    describe(this),
                )));
            }
            let mut methods: BTreeMap<String, &str> = BTreeMap::new();
            for method in &service.method {
                if let Some(other) = methods.insert(method.name().to_snake_case(), method.name()) {
                    return Err(Error::invalid(format!(
                        "{}: methods {other} and {} of service {} would get the same Rust \
                         name; rename one",
                        file.name(),
                        method.name(),
                        service.name()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// No two values of an enum (in the files to generate) get one Rust variant name, as
/// prost-build names them: upper camel case, less the enum's name as a prefix when
/// `strip_prefix`, aliases (values with an earlier value's number) skipped.
pub(crate) fn enum_variants(
    set: &FileDescriptorSet,
    files: &[String],
    strip_prefix: bool,
) -> Result<(), Error> {
    fn check(
        file: &str,
        scope: &str,
        enumeration: &prost_types::EnumDescriptorProto,
        strip_prefix: bool,
    ) -> Result<(), Error> {
        let enum_name = enumeration.name().to_upper_camel_case();
        let mut numbers = std::collections::BTreeSet::new();
        let mut names: BTreeMap<String, &str> = BTreeMap::new();
        for value in &enumeration.value {
            if !numbers.insert(value.number()) {
                continue;
            }
            let mut variant = value.name().to_upper_camel_case();
            if strip_prefix {
                if let Some(rest) = variant.strip_prefix(&enum_name) {
                    if rest.starts_with(char::is_uppercase) {
                        variant = rest.to_owned();
                    }
                }
            }
            if let Some(other) = names.insert(variant.clone(), value.name()) {
                return Err(Error::invalid(format!(
                    "{file}: values {other} and {} of enum {scope}{} would both become the \
                     Rust variant {variant}; rename one",
                    value.name(),
                    enumeration.name()
                )));
            }
        }
        Ok(())
    }
    fn walk(
        file: &str,
        scope: &str,
        message: &DescriptorProto,
        strip_prefix: bool,
    ) -> Result<(), Error> {
        let scope = format!("{scope}{}.", message.name());
        for enumeration in &message.enum_type {
            check(file, &scope, enumeration, strip_prefix)?;
        }
        for nested in &message.nested_type {
            walk(file, &scope, nested, strip_prefix)?;
        }
        Ok(())
    }
    for file in set
        .file
        .iter()
        .filter(|f| files.iter().any(|n| n == f.name()))
    {
        let scope = if file.package().is_empty() {
            String::new()
        } else {
            format!("{}.", file.package())
        };
        for enumeration in &file.enum_type {
            check(file.name(), &scope, enumeration, strip_prefix)?;
        }
        for message in &file.message_type {
            walk(file.name(), &scope, message, strip_prefix)?;
        }
    }
    Ok(())
}

/// An attribute setting is one or more outer attributes (`#[derive(Eq)]`), which
/// prost-build would otherwise fail on with a panic.
pub(crate) fn attribute(option: &str, path: &str, attribute: &str) -> Result<(), Error> {
    use syn::parse::Parser;
    syn::Attribute::parse_outer
        .parse_str(attribute)
        .map(drop)
        .map_err(|e| {
            Error::option(format!(
                "{option} for {path:?}: {attribute:?} is not an attribute such as \
                 `#[derive(Eq)]` ({e})"
            ))
        })
}

#[cfg(test)]
mod tests;
