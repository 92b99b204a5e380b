//! The interop binaries take only the flags they know: `--help` prints the usage and
//! exits, an unknown flag is an error with the usage, and nothing starts a server by
//! mistake.

use std::process::Command;
use std::time::Duration;

use interop::{Flags, FlagsError};

fn run(binary: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the binary");
    // Bounded: a binary that starts serving instead of exiting fails the test.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{binary} {args:?} did not exit: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_prints_the_usage_and_unknown_flags_are_errors() {
    for binary in [
        env!("CARGO_BIN_EXE_interop-server"),
        env!("CARGO_BIN_EXE_interop-client"),
    ] {
        let help = run(binary, &["--help"]);
        assert!(help.status.success(), "{binary} --help: {:?}", help.status);
        assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: interop-"));

        let bad = run(binary, &["--no_such_flag", "1"]);
        assert_eq!(bad.status.code(), Some(2), "{binary}");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.contains("unknown flag --no_such_flag"), "{stderr}");
        assert!(stderr.contains("usage: interop-"), "{stderr}");
    }
}

#[test]
fn flags_parse_in_both_forms() {
    let args: Vec<String> = ["--port", "1", "--flavour=blocking"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let flags = Flags::parse(&args, &["--port", "--flavour"]).unwrap();
    assert_eq!(flags.get("--port").as_deref(), Some("1"));
    assert_eq!(flags.get("--flavour").as_deref(), Some("blocking"));
    assert_eq!(flags.get("--socket"), None);
    let missing = Flags::parse(&["--port".to_string()], &["--port"]).unwrap_err();
    assert_eq!(missing, FlagsError::Bad("--port needs a value".into()));
    let stray = Flags::parse(&["stray".to_string()], &["--port"]).unwrap_err();
    assert!(matches!(stray, FlagsError::Bad(why) if why.contains("stray")));
}
