//! The AWS CLI and boto3 the AWS front door's tests drive berth with: a Python venv
//! under the repository's `target/aws-venv` (made by `scripts/test`), or the one named by
//! `BERTH_AWS_VENV`. A test fails with instructions when it is missing; it never skips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

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

/// The access key (id, secret) commands sign with, per endpoint ([`sign_with`]).
static KEYS: Mutex<Option<HashMap<String, (String, String)>>> = Mutex::new(None);

/// Commands for `endpoint` sign with this access key from now on (a server with
/// authentication on); without it they sign with AWS's example key, which only a server
/// with `--insecure-loopback` lets through.
pub fn sign_with(endpoint: &str, access_key_id: &str, secret_access_key: &str) {
    KEYS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            endpoint.to_string(),
            (access_key_id.to_string(), secret_access_key.to_string()),
        );
}

/// The admin's access key of a server's data directory (its `admin-credentials` file).
pub fn admin_key(data_dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(data_dir.join("admin-credentials"))
        .expect("the admin credentials file");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .unwrap_or_else(|| panic!("{name} in the admin credentials file"))
    };
    (field("aws_access_key_id"), field("aws_secret_access_key"))
}

/// A command of the venv (`aws`, `python`) set up to talk to `endpoint` only: the
/// endpoint's access key ([`sign_with`]) or AWS's example key, region us-east-1, no
/// config or credentials files, no pager.
pub fn command(program: &str, endpoint: &str) -> Command {
    let (id, secret) = KEYS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|k| k.get(endpoint).cloned())
        .unwrap_or_else(|| {
            (
                "AKIDEXAMPLE".into(),
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            )
        });
    let mut c = Command::new(venv().join("bin").join(program));
    c.env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
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
