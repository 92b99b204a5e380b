//! Unit tests of the descriptor checks.

use super::*;
use prost_types::{FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};

fn service(name: &str, methods: &[&str]) -> ServiceDescriptorProto {
    ServiceDescriptorProto {
        name: Some(name.to_owned()),
        method: methods
            .iter()
            .map(|m| MethodDescriptorProto {
                name: Some((*m).to_owned()),
                input_type: Some(".p.M".to_owned()),
                output_type: Some(".p.M".to_owned()),
                ..MethodDescriptorProto::default()
            })
            .collect(),
        ..ServiceDescriptorProto::default()
    }
}

fn set(services: Vec<ServiceDescriptorProto>) -> FileDescriptorSet {
    FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("p.proto".to_owned()),
            package: Some("p".to_owned()),
            service: services,
            ..FileDescriptorProto::default()
        }],
    }
}

#[test]
fn services_with_one_rust_name_are_refused() {
    let set = set(vec![service("FooBar", &[]), service("Foo_Bar", &[])]);
    let err = rust_names(&set, &["p.proto".to_owned()]).unwrap_err();
    assert!(err.is_invalid());
    assert!(err.to_string().contains("FooBar"), "{err}");
    assert!(err.to_string().contains("Foo_Bar"), "{err}");
}

#[test]
fn packages_that_become_one_module_share_its_names() {
    let mut set = set(vec![service("Svc", &[])]);
    let mut other = set.file[0].clone();
    other.name = Some("q.proto".to_owned());
    other.package = Some("P".to_owned());
    set.file.push(other);
    let files = ["p.proto".to_owned(), "q.proto".to_owned()];
    let err = rust_names(&set, &files).unwrap_err();
    assert!(err.is_invalid());
    assert!(
        err.to_string()
            .contains("services p.Svc (p.proto) and P.Svc (q.proto)"),
        "{err}"
    );
    assert!(err.to_string().contains("the Rust module p"), "{err}");
    // Generated apart, they do not meet.
    rust_names(&set, &files[..1]).unwrap();
}

#[test]
fn types_that_become_one_rust_name_are_refused() {
    let mut set = set(vec![]);
    set.file[0].message_type.push(DescriptorProto {
        name: Some("Foo".to_owned()),
        ..DescriptorProto::default()
    });
    set.file[0]
        .enum_type
        .push(prost_types::EnumDescriptorProto {
            name: Some("FOO".to_owned()),
            ..prost_types::EnumDescriptorProto::default()
        });
    let err = rust_names(&set, &["p.proto".to_owned()]).unwrap_err();
    assert!(
        err.to_string()
            .contains("p.Foo (p.proto) and p.FOO (p.proto)"),
        "{err}"
    );
}

#[test]
fn methods_with_one_rust_name_are_refused() {
    let set = set(vec![service("S", &["GetX", "get_x"])]);
    let err = rust_names(&set, &["p.proto".to_owned()]).unwrap_err();
    assert!(err.to_string().contains("GetX and get_x"), "{err}");
}

#[test]
fn methods_without_types_are_refused() {
    let mut bad = service("S", &["Call"]);
    bad.method[0].input_type = None;
    let err = descriptors(&set(vec![bad])).unwrap_err();
    assert!(err.to_string().contains("p.S.Call"), "{err}");
    let mut relative = service("S", &["Call"]);
    relative.method[0].output_type = Some("M".to_owned());
    assert!(descriptors(&set(vec![relative])).is_err());
}

#[test]
fn types_must_be_defined_and_of_the_right_kind() {
    use prost_types::field_descriptor_proto::Type;
    use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto};
    let mut set = set(vec![service("S", &["Call"])]);
    let err = types_resolve(&set).unwrap_err();
    assert!(err.is_invalid());
    assert!(
        err.to_string().contains("method .p.S.Call has type .p.M"),
        "{err}"
    );
    let file = &mut set.file[0];
    file.message_type.push(DescriptorProto {
        name: Some("M".to_owned()),
        field: vec![FieldDescriptorProto {
            name: Some("e".to_owned()),
            r#type: Some(Type::Enum as i32),
            type_name: Some(".p.M".to_owned()),
            ..FieldDescriptorProto::default()
        }],
        ..DescriptorProto::default()
    });
    let err = types_resolve(&set).unwrap_err();
    assert!(
        err.to_string().contains("which is a message, not an enum"),
        "{err}"
    );
    let file = &mut set.file[0];
    file.enum_type.push(EnumDescriptorProto {
        name: Some("E".to_owned()),
        ..EnumDescriptorProto::default()
    });
    file.message_type[0].field[0].type_name = Some(".p.E".to_owned());
    types_resolve(&set).unwrap();
}

#[test]
fn names_and_syntax_are_checked() {
    let mut bad = set(vec![service("S", &["Call"])]);
    bad.file[0].syntax = Some("editions".to_owned());
    let err = descriptors(&bad).unwrap_err();
    assert_eq!(err.to_string(), Error::editions("p.proto").to_string());
    bad.file[0].syntax = Some("proto4".to_owned());
    let err = descriptors(&bad).unwrap_err();
    assert!(err.to_string().contains("syntax \"proto4\""), "{err}");
    for (name, what) in [("", "method"), ("a b", "method"), ("1x", "method")] {
        let bad = set(vec![service("S", &[name])]);
        let err = descriptors(&bad).unwrap_err();
        assert!(err.is_invalid());
        assert!(
            err.to_string().contains(&format!("{what} name {name:?}")),
            "{err}"
        );
    }
    let mut bad = set(vec![]);
    bad.file[0].package = Some("a..b".to_owned());
    assert!(
        descriptors(&bad)
            .unwrap_err()
            .to_string()
            .contains("package name \"\"")
    );
    let good = set(vec![service("_S2", &["Call_3"])]);
    descriptors(&good).unwrap();
}

#[test]
fn attributes_must_parse() {
    assert!(attribute("type_attribute", ".", "#[derive(Eq, Hash)] #[serde(x)]").is_ok());
    let err = attribute("type_attribute", ".a", "#[derive(").unwrap_err();
    assert!(err.is_option());
    assert!(
        err.to_string().contains("type_attribute for \".a\""),
        "{err}"
    );
    assert!(attribute("client_attribute", ".", "derive(Eq)").is_err());
}
