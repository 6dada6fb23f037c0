//! The binary refuses a bad setting before it binds, naming the variable.

use std::process::{Command, Output};

fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_customer-portal"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    // A directory with no .env file in it.
    command.current_dir(std::env::temp_dir());
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().expect("binary runs")
}

#[test]
fn serve_refuses_to_start_without_database_url() {
    let output = run(&["serve"], &[("JWT_SECRET", "0123456789abcdef0123456789abcdef")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}

#[test]
fn serve_refuses_a_short_jwt_secret_naming_it() {
    let output = run(&["serve"], &[("DATABASE_URL", "postgres://localhost/x"), ("JWT_SECRET", "short")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    assert!(!stderr.contains("short\""), "the secret is not echoed: {stderr}");
}

#[test]
fn serve_refuses_more_lookup_or_webhook_connections_than_the_pool_has() {
    for setting in ["DATABASE_LOOKUP_CONNECTIONS", "DATABASE_WEBHOOK_CONNECTIONS"] {
        let output = run(
            &["serve"],
            &[
                ("DATABASE_URL", "postgres://localhost/x"),
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("DATABASE_MAX_CONNECTIONS", "4"),
                (setting, "5"),
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{setting}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("{setting}: must be at most DATABASE_MAX_CONNECTIONS (4)")),
            "{stderr}"
        );
    }
}

#[test]
fn help_lists_serve_and_migrate() {
    let output = run(&["--help"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("serve") && stdout.contains("migrate"), "{stdout}");
}
