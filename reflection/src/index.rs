//! What the reflection service knows: the registered files, kept encoded, and the tables
//! from symbols, extensions and services to the files defining them. Built once; every
//! answer is a lookup and a walk over imports.

use std::collections::{BTreeMap, HashMap, HashSet, hash_map::Entry};

use bytes::Bytes;
use prost::Message;
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};
use rsgrpc::Status;

use crate::Error;

/// A question a reflection request asks.
pub(crate) enum Question<'a> {
    File(&'a str),
    Symbol(&'a str),
    Extension(&'a str, i32),
    ExtensionNumbers(&'a str),
    Services,
    Nothing,
}

/// The answer to a [`Question`].
pub(crate) enum Answer {
    /// Encoded files: the one asked for first, then everything it imports.
    Files(Vec<Bytes>),
    ExtensionNumbers(String, Vec<i32>),
    Services(Vec<String>),
    Error(Status),
}

struct File {
    encoded: Bytes,
    dependencies: Vec<String>,
}

pub(crate) struct Index {
    files: HashMap<String, File>,
    /// Fully qualified names (without the leading dot) of everything a file defines, to
    /// the file's name.
    symbols: HashMap<String, String>,
    /// Message types, by full name, to the field numbers of their extensions and the file
    /// of each.
    extensions: HashMap<String, BTreeMap<i32, String>>,
    messages: HashSet<String>,
    services: Vec<String>,
}

/// `name`, shortened for an error message.
fn quoted(name: &str) -> String {
    const SHOWN: usize = 100;
    match name.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}...", &name[..end]),
        None => format!("{name:?}"),
    }
}

fn without_source_info(file: &FileDescriptorProto) -> FileDescriptorProto {
    FileDescriptorProto {
        source_code_info: None,
        ..file.clone()
    }
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

impl Index {
    pub(crate) fn new(sets: Vec<FileDescriptorSet>) -> Result<Index, Error> {
        // One descriptor per name: the same file in several sets is fine (a well-known
        // type, say), as long as it is the same file. The first one with source info wins,
        // so comments reach clients that show them.
        let mut by_name: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
        let mut order = Vec::new();
        for file in sets.into_iter().flat_map(|set| set.file) {
            let name = file.name().to_owned();
            match by_name.get_mut(&name) {
                None => {
                    order.push(name.clone());
                    by_name.insert(name, file);
                }
                Some(existing) => {
                    if without_source_info(existing) != without_source_info(&file) {
                        return Err(Error::new(format!(
                            "file {} is registered twice, with different contents",
                            quoted(&name)
                        )));
                    }
                    if existing.source_code_info.is_none() {
                        *existing = file;
                    }
                }
            }
        }
        let mut index = Index {
            files: HashMap::new(),
            symbols: HashMap::new(),
            extensions: HashMap::new(),
            messages: HashSet::new(),
            services: Vec::new(),
        };
        for name in order {
            let file = &by_name[&name];
            for dependency in &file.dependency {
                if !by_name.contains_key(dependency) {
                    return Err(Error::new(format!(
                        "{} imports {}, which is in none of the registered descriptor sets",
                        quoted(&name),
                        quoted(dependency)
                    )));
                }
            }
            index.add_symbols(file)?;
            index.files.insert(
                name,
                File {
                    encoded: Bytes::from(file.encode_to_vec()),
                    dependencies: file.dependency.clone(),
                },
            );
        }
        Ok(index)
    }

    fn define(&mut self, symbol: String, file: &str) -> Result<(), Error> {
        match self.symbols.entry(symbol) {
            Entry::Vacant(entry) => {
                entry.insert(file.to_owned());
                Ok(())
            }
            Entry::Occupied(entry) if entry.get() == file => Ok(()),
            Entry::Occupied(entry) => Err(Error::new(format!(
                "{} is defined by both {} and {}",
                quoted(entry.key()),
                quoted(entry.get()),
                quoted(file)
            ))),
        }
    }

    fn add_extension(&mut self, field: &FieldDescriptorProto, file: &str) -> Result<(), Error> {
        let extendee = field.extendee().trim_start_matches('.').to_owned();
        let numbers = self.extensions.entry(extendee.clone()).or_default();
        match numbers.get(&field.number()) {
            Some(other) if other != file => Err(Error::new(format!(
                "extension number {} of {} is defined by both {} and {}",
                field.number(),
                quoted(&extendee),
                quoted(other),
                quoted(file)
            ))),
            _ => {
                numbers.insert(field.number(), file.to_owned());
                Ok(())
            }
        }
    }

    fn add_symbols(&mut self, file: &FileDescriptorProto) -> Result<(), Error> {
        let name = file.name();
        let package = file.package();
        for service in &file.service {
            let full = join(package, service.name());
            for method in &service.method {
                self.define(join(&full, method.name()), name)?;
            }
            self.define(full.clone(), name)?;
            self.services.push(full);
        }
        for message in &file.message_type {
            self.add_message(message, package, name)?;
        }
        for enumeration in &file.enum_type {
            self.add_enum(enumeration, package, name)?;
        }
        for extension in &file.extension {
            self.define(join(package, extension.name()), name)?;
            self.add_extension(extension, name)?;
        }
        Ok(())
    }

    fn add_message(
        &mut self,
        message: &DescriptorProto,
        scope: &str,
        file: &str,
    ) -> Result<(), Error> {
        let full = join(scope, message.name());
        for field in &message.field {
            self.define(join(&full, field.name()), file)?;
        }
        for oneof in &message.oneof_decl {
            self.define(join(&full, oneof.name()), file)?;
        }
        for extension in &message.extension {
            self.define(join(&full, extension.name()), file)?;
            self.add_extension(extension, file)?;
        }
        for nested in &message.nested_type {
            self.add_message(nested, &full, file)?;
        }
        for enumeration in &message.enum_type {
            self.add_enum(enumeration, &full, file)?;
        }
        self.messages.insert(full.clone());
        self.define(full, file)
    }

    fn add_enum(
        &mut self,
        enumeration: &prost_types::EnumDescriptorProto,
        scope: &str,
        file: &str,
    ) -> Result<(), Error> {
        let full = join(scope, enumeration.name());
        for value in &enumeration.value {
            // Values are siblings of their enum in protobuf's scoping (`pkg.VALUE`); the
            // name under the enum (`pkg.Enum.VALUE`) is accepted too.
            self.define(join(scope, value.name()), file)?;
            self.define(join(&full, value.name()), file)?;
        }
        self.define(full, file)
    }

    /// The full names of the services, in the order they were registered.
    pub(crate) fn services(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(String::as_str)
    }

    /// `name` and every file it imports, directly or not, each once, `name` first.
    fn with_dependencies(&self, name: &str) -> Vec<Bytes> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut pending = vec![name];
        let mut out = Vec::new();
        while let Some(next) = pending.pop() {
            if !seen.insert(next) {
                continue;
            }
            // Every import is in the index: `new` checked it.
            if let Some(file) = self.files.get(next) {
                out.push(file.encoded.clone());
                pending.extend(file.dependencies.iter().rev().map(String::as_str));
            }
        }
        out
    }

    pub(crate) fn answer(&self, question: Question<'_>) -> Answer {
        match question {
            Question::File(name) => match self.files.contains_key(name) {
                true => Answer::Files(self.with_dependencies(name)),
                false => Answer::Error(Status::not_found(format!(
                    "file {} not found",
                    quoted(name)
                ))),
            },
            Question::Symbol(symbol) => match self.symbols.get(symbol.trim_start_matches('.')) {
                Some(file) => Answer::Files(self.with_dependencies(file)),
                None => Answer::Error(Status::not_found(format!(
                    "symbol {} not found",
                    quoted(symbol)
                ))),
            },
            Question::Extension(message, number) => {
                let message = message.trim_start_matches('.');
                match self.extensions.get(message).and_then(|n| n.get(&number)) {
                    Some(file) => Answer::Files(self.with_dependencies(file)),
                    None => Answer::Error(Status::not_found(format!(
                        "extension {number} of {} not found",
                        quoted(message)
                    ))),
                }
            }
            Question::ExtensionNumbers(message) => {
                let message = message.trim_start_matches('.');
                if !self.messages.contains(message) {
                    return Answer::Error(Status::not_found(format!(
                        "message type {} not found",
                        quoted(message)
                    )));
                }
                let numbers = self
                    .extensions
                    .get(message)
                    .map(|n| n.keys().copied().collect())
                    .unwrap_or_default();
                Answer::ExtensionNumbers(message.to_owned(), numbers)
            }
            Question::Services => Answer::Services(self.services.clone()),
            Question::Nothing => Answer::Error(Status::invalid_argument(
                "the request asks nothing: set one of its message_request fields",
            )),
        }
    }
}
