//! The `ecs-metadata` binary's help, version and usage, in whichever build this is: `serve`
//! is listed only when the binary has the emulator; otherwise asking for it says how to
//! install one that has.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecs-metadata"))
        .args(args)
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI")
        .output()
        .unwrap()
}

#[test]
fn help_and_version_exit_zero() {
    for args in [&["help"][..], &["-h"], &["--help"], &["task", "--help"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("usage: ecs-metadata"), "{args:?}: {text}");
        assert!(text.contains("--deadline"), "{text}");
    }
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("ecs-metadata {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_is_listed_only_where_the_binary_can_serve() {
    let usage = String::from_utf8(run(&["--help"]).stdout).unwrap();
    let out = run(&["serve", "--port", "not-a-port"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    if cfg!(feature = "emulator") {
        assert!(usage.contains("ecs-metadata serve ["), "{usage}");
        assert!(stderr.contains("bad port"), "{stderr}");
    } else {
        assert!(!usage.contains("ecs-metadata serve"), "{usage}");
        assert!(
            stderr.contains("cargo install tracing-aws-ecs --features emulator"),
            "{stderr}"
        );
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["--deadline", "soon"][..],
        &["--deadline"],
        &["task", "--emf"],
        &["summary", "--port", "1"],
        &["nonsense"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    }
}
