//! The generation pipeline: descriptors are checked, prost-build generates the messages and
//! hands each service to [`service::Generator`], and every package's code is tidied into
//! one file; the include file declares their modules.

use std::collections::BTreeMap;

use prost_build::Module;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::paths::PathList;
use crate::{Builder, Error, descriptors, names, service, tidy, validate};

/// One generated file: a package's code, or the include file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name, such as `helloworld.rs` or `grpc.testing.rs` (`_.rs` for files without a
    /// package), or the name given to [`Builder::include_file`].
    pub name: String,
    /// The Rust module path the package's code belongs in (`["grpc", "testing"]`, empty for
    /// files without a package); `None` for the include file.
    pub module: Option<Vec<String>>,
    /// Its content, formatted.
    pub content: String,
}

impl Builder {
    fn prost_config(&self, generator: service::Generator) -> prost_build::Config {
        let mut config = prost_build::Config::new();
        config.service_generator(Box::new(generator));
        for (path, attribute) in &self.type_attributes {
            config.type_attribute(path, attribute);
        }
        for (path, attribute) in &self.message_attributes {
            config.message_attribute(path, attribute);
        }
        for (path, attribute) in &self.enum_attributes {
            config.enum_attribute(path, attribute);
        }
        for (path, attribute) in &self.field_attributes {
            config.field_attribute(path, attribute);
        }
        for (proto, rust) in &self.extern_paths {
            config.extern_path(proto, rust);
        }
        for path in &self.boxed {
            config.boxed(path);
        }
        config.bytes(&self.bytes);
        config.btree_map(&self.btree_map);
        config.skip_debug(&self.skip_debug);
        config.disable_comments(&self.disable_comments);
        if self.compile_well_known_types {
            config.compile_well_known_types();
        }
        if self.retain_enum_prefix {
            config.retain_enum_prefix();
        }
        if self.type_names {
            config.enable_type_names();
        }
        for (path, domain) in &self.type_name_domains {
            config.type_name_domain([path], domain);
        }
        config
    }

    fn stub_options(&self) -> service::StubOptions {
        service::StubOptions {
            parts: self.parts,
            emit_package: self.emit_package,
            default_stubs: self.default_stubs,
            client_attributes: self.client_attributes.clone(),
            server_attributes: self.server_attributes.clone(),
            trait_attributes: self.trait_attributes.clone(),
            client_mod_attributes: self.client_mod_attributes.clone(),
            server_mod_attributes: self.server_mod_attributes.clone(),
            disable_comments: self.disable_comments.clone(),
            extern_rust_paths: self.extern_paths.iter().map(|(_, r)| r.clone()).collect(),
        }
    }

    /// Every attribute setting, named as in [`option`](Self::option).
    fn attribute_settings(&self) -> Vec<(&'static str, &PathList)> {
        vec![
            ("type_attribute", &self.type_attributes),
            ("message_attribute", &self.message_attributes),
            ("enum_attribute", &self.enum_attributes),
            ("field_attribute", &self.field_attributes),
            ("client_attribute", &self.client_attributes),
            ("server_attribute", &self.server_attributes),
            ("trait_attribute", &self.trait_attributes),
            ("client_mod_attribute", &self.client_mod_attributes),
            ("server_mod_attribute", &self.server_mod_attributes),
        ]
    }

    /// Generates code for `files_to_generate` (names as in the descriptor set, such as
    /// `helloworld.proto`), which `set` describes together with everything they import.
    /// Returns one file per package, sorted by name, then the
    /// [`include_file`](Self::include_file) if one was asked for.
    ///
    /// Only the packages of `files_to_generate` are generated, as a protoc plugin does:
    /// types they use from other files are referred to where those files' packages would be
    /// generated (`super::common::Shapes`), or through an
    /// [`extern_path`](Self::extern_path).
    ///
    /// # Errors
    ///
    /// When a file to generate is not in the set, a descriptor is malformed, an attribute
    /// does not parse, two services or methods would get one Rust name, or the include file
    /// would overwrite a package's file.
    pub fn generate(
        &self,
        set: &FileDescriptorSet,
        files_to_generate: &[String],
    ) -> Result<Vec<GeneratedFile>, Error> {
        let mut wanted = Vec::new();
        for name in files_to_generate {
            let file = set
                .file
                .iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| Error::missing_descriptor(name))?;
            wanted.push(Module::from_protobuf_package_name(file.package()));
        }
        validate::descriptors(set)?;
        validate::types_resolve(set)?;
        validate::rust_names(set, files_to_generate)?;
        validate::enum_variants(set, files_to_generate, !self.retain_enum_prefix)?;
        for (option, list) in self.attribute_settings() {
            for (path, attribute) in list {
                validate::attribute(option, path, attribute)?;
            }
        }
        // prost-build resolves types across every file it is given (imports included), so
        // it gets the whole set; only the packages asked for are kept. It writes a module's
        // files in the order it is given them: sorted by name, the code is the same
        // whatever order the files came in (protoc and protox list them as they meet
        // them).
        let mut sorted: Vec<&FileDescriptorProto> = set.file.iter().collect();
        sorted.sort_by_key(|f| f.name());
        let requests = sorted
            .into_iter()
            .map(|f| (Module::from_protobuf_package_name(f.package()), f.clone()))
            .collect();
        let generator = service::Generator {
            options: self.stub_options(),
            taken: names::TakenNames::new(set),
        };
        let mut config = self.prost_config(generator);
        // prost-build panics on some inputs (enum values whose Rust names collide, for
        // one); that must become an error, not a panic in the user's build.
        let modules =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.generate(requests)))
                .map_err(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("no message");
                    Error::generate(format!("prost-build failed: {message}"))
                })?
                .map_err(|e| Error::generate(e.to_string()))?;
        let mut files: BTreeMap<String, (Module, String)> = BTreeMap::new();
        for (module, content) in modules {
            if !wanted.contains(&module) {
                continue;
            }
            let name = module.to_file_name_or("_");
            // Packages differing only in case share a module; the first by name speaks
            // for them.
            let package = set
                .file
                .iter()
                .filter(|f| Module::from_protobuf_package_name(f.package()) == module)
                .map(|f| f.package())
                .min()
                .unwrap_or_default()
                .to_owned();
            let mut content = content
                .strip_prefix("// This file is @generated by prost-build.\n")
                .unwrap_or(&content)
                .to_owned();
            if self.file_descriptor_set {
                content.push_str(&descriptors::package_constant(set, |p| {
                    Module::from_protobuf_package_name(p) == module
                }));
            }
            let content = tidy::finish(&content, module.parts().last(), &package)?;
            if let Some((other, _)) = files.get(&name) {
                return Err(Error::invalid(format!(
                    "packages {:?} and {package:?} would both be written to {name}",
                    other.parts().collect::<Vec<_>>().join(".")
                )));
            }
            files.insert(name, (module, content));
        }
        let include = match &self.include_file {
            Some(include) => {
                if files.contains_key(include) {
                    return Err(Error::option(format!(
                        "the include file {include} would overwrite the file of the package \
                         of the same name; choose another include_file name"
                    )));
                }
                Some(GeneratedFile {
                    name: include.clone(),
                    module: None,
                    content: include_file(
                        files
                            .iter()
                            .map(|(name, (module, _))| (module, name.as_str())),
                    ),
                })
            }
            None => None,
        };
        let mut out: Vec<GeneratedFile> = files
            .into_iter()
            .map(|(name, (module, content))| GeneratedFile {
                name,
                module: Some(module.parts().map(str::to_owned).collect()),
                content,
            })
            .collect();
        out.extend(include);
        Ok(out)
    }
}

/// The module tree declaring every generated package, each including its file.
fn include_file<'a>(files: impl Iterator<Item = (&'a Module, &'a str)>) -> String {
    #[derive(Default)]
    struct Node {
        file: Option<String>,
        children: BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for (module, name) in files {
        let mut node = &mut root;
        for part in module.parts() {
            node = node.children.entry(part.to_owned()).or_default();
        }
        node.file = Some(name.to_owned());
    }
    fn render(node: &Node, depth: usize, out: &mut String) {
        let indent = "    ".repeat(depth);
        if let Some(file) = &node.file {
            out.push_str(&format!("{indent}include!({file:?});\n"));
        }
        for (name, child) in &node.children {
            // Module names come from prost-build, already snake case with keywords escaped.
            out.push_str(&format!("{indent}pub mod {name} {{\n"));
            render(child, depth + 1, out);
            out.push_str(&format!("{indent}}}\n"));
        }
    }
    let mut out = String::from("// This file is @generated by rsgrpc-codegen. Do not edit.\n");
    render(&root, 0, &mut out);
    out
}
