//! The AWS CLI and boto3 the AWS front door's tests drive berth with: a Python venv
//! under the repository's `target/aws-venv` (made by `scripts/test`), or the one named by
//! `BERTH_AWS_VENV`. A test fails with instructions when it is missing; it never skips.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// The venv directory.
pub fn venv() -> PathBuf {
    let dir = std::env::var_os("BERTH_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| berth_testkit::repo_root().join("target/aws-venv"));
    assert!(
        dir.join("bin/aws").exists() && dir.join("bin/python").exists(),
        "no AWS CLI and boto3 venv at {}: run `scripts/test --install-only` (or python3 -m venv {0} && {0}/bin/pip install awscli boto3)",
        dir.display()
    );
    dir
}

/// A command of the venv (`aws`, `python`) set up to talk to `endpoint` only: fixed
/// example credentials, region us-east-1, no config or credentials files, no pager.
pub fn command(program: &str, endpoint: &str) -> Command {
    let mut c = Command::new(venv().join("bin").join(program));
    c.env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BERTH_ENDPOINT", endpoint)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

/// Runs `aws <args> --endpoint-url <endpoint> --output json`.
pub fn aws_output(endpoint: &str, args: &[&str]) -> Output {
    command("aws", endpoint)
        .args(args)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .output()
        .expect("running the AWS CLI")
}

/// Runs the AWS CLI, which must succeed; returns its JSON answer (`null` when it
/// printed nothing, as waiters do).
pub fn aws(endpoint: &str, args: &[&str]) -> Value {
    let out = aws_output(endpoint, args);
    assert!(
        out.status.success(),
        "aws {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "aws {}: not JSON ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs the AWS CLI, which must fail; returns what it printed on stderr (the error
/// code and message as botocore parsed them).
pub fn aws_fails(endpoint: &str, args: &[&str]) -> String {
    let out = aws_output(endpoint, args);
    assert!(
        !out.status.success(),
        "aws {} should have failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
