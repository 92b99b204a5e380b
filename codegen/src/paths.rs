//! Protobuf paths selecting services and methods, as prost-build's paths select messages.
//!
//! A path is `.` (everything), a fully qualified name with a leading dot (`.helloworld`,
//! `.helloworld.Greeter`, `.helloworld.Greeter.SayHello`), which selects that element and
//! everything inside it, or a name without the leading dot (`Greeter`, `Greeter.SayHello`),
//! which selects every element whose fully qualified name ends with it.

/// A list of `(path, value)` settings, such as the attributes for clients.
pub(crate) type PathList = Vec<(String, String)>;

fn components(name: &str) -> Vec<&str> {
    name.split('.').filter(|c| !c.is_empty()).collect()
}

/// Whether `path` selects the element named `name` (`.package.Service` or
/// `.package.Service.Method`) or something that contains it.
pub(crate) fn selects(path: &str, name: &str) -> bool {
    let target = components(name);
    let wanted = components(path);
    if path.starts_with('.') {
        target.starts_with(&wanted)
    } else {
        !wanted.is_empty() && target.ends_with(&wanted)
    }
}

/// Whether `path` names exactly the element `name`, fully qualified or by a suffix: unlike
/// [`selects`], `.` and `.package` select no method.
pub(crate) fn names(path: &str, name: &str) -> bool {
    let target = components(name);
    let wanted = components(path);
    if path.starts_with('.') {
        target == wanted
    } else {
        !wanted.is_empty() && target.ends_with(&wanted)
    }
}

/// The values of the settings whose paths select `name`.
pub(crate) fn selected<'a>(list: &'a PathList, name: &str) -> impl Iterator<Item = &'a str> {
    list.iter()
        .filter(move |(path, _)| selects(path, name))
        .map(|(_, value)| value.as_str())
}

/// The values of the settings whose paths name `name` exactly.
pub(crate) fn named<'a>(list: &'a PathList, name: &str) -> impl Iterator<Item = &'a str> {
    list.iter()
        .filter(move |(path, _)| names(path, name))
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fully_qualified_paths_select_what_they_contain() {
        let method = ".helloworld.Greeter.SayHello";
        assert!(selects(".", method));
        assert!(selects(".helloworld", method));
        assert!(selects(".helloworld.Greeter", method));
        assert!(selects(method, method));
        assert!(!selects(".hello", method));
        assert!(!selects(".helloworld.Greeter.SayHelloAgain", method));
        assert!(!selects(".other", method));
    }

    #[test]
    fn relative_paths_select_by_suffix() {
        assert!(selects("Greeter", ".helloworld.Greeter"));
        assert!(selects("Greeter.SayHello", ".helloworld.Greeter.SayHello"));
        assert!(!selects("eeter", ".helloworld.Greeter"));
        assert!(!selects("", ".helloworld.Greeter"));
    }

    #[test]
    fn names_needs_the_whole_element() {
        let method = ".helloworld.Greeter.SayHello";
        assert!(names(method, method));
        assert!(names("SayHello", method));
        assert!(names("Greeter.SayHello", method));
        assert!(!names(".", method));
        assert!(!names(".helloworld.Greeter", method));
    }
}
