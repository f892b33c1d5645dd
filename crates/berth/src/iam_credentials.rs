//! The CLI's credentials: where they come from and the file they are kept in.
//!
//! In order: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`
//! when set); else `--credentials FILE` (or `BERTH_CREDENTIALS`); else, inside a task
//! whose definition names a `taskRoleArn`, the container credential endpoint
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, or `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on
//! 169.254.170.2, with the token of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`, as the AWS SDKs' chain reads it;
//! [`crate::container_credentials`]); else the data directory's admin credentials file
//! (`$BERTH_DATA_DIR`, default `.berth`, then [`ADMIN_CREDENTIALS_FILE`]) when it exists;
//! else none, and requests go unsigned (which only a server started with
//! `--insecure-loopback` answers).
//!
//! The file is the AWS CLI's shared credentials format, so `AWS_SHARED_CREDENTIALS_FILE`
//! can name it too:
//!
//! ```text
//! [default]
//! aws_access_key_id = AKIA...
//! aws_secret_access_key = ...
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The admin's credentials, in the data directory, written by a first start.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin-credentials";

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A role session's token, sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <secret hidden>)", self.access_key_id)
    }
}

/// Reads a credentials file's `[default]` profile (or its only keys outside a section).
pub fn read_file(path: &Path) -> Result<Credentials> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

fn parse(text: &str) -> Result<Credentials> {
    let (mut id, mut secret) = (None, None);
    let mut section = String::from("default");
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if section != "default" {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: None,
        }),
        _ => bail!("no aws_access_key_id and aws_secret_access_key in its [default] profile"),
    }
}

/// The file's text for `creds`.
pub fn render(creds: &Credentials) -> String {
    format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        creds.access_key_id, creds.secret_access_key
    )
}

/// Writes `creds` to a new file only its owner may read (0600); an existing file is
/// replaced.
pub fn write_file(path: &Path, creds: &Credentials) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(render(creds).as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The credentials the CLI signs with: see the module's documentation for the order.
pub fn resolve(file: Option<&Path>) -> Result<Option<Credentials>> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
        }));
    }
    if let Some(path) = file {
        return read_file(path).map(Some);
    }
    if let Some(session) = crate::container_credentials::from_environment()? {
        return Ok(Some(Credentials {
            access_key_id: session.access_key_id,
            secret_access_key: session.secret_access_key,
            session_token: Some(session.session_token),
        }));
    }
    let data_dir = env("BERTH_DATA_DIR").unwrap_or_else(|| ".berth".into());
    let admin = PathBuf::from(data_dir).join(ADMIN_CREDENTIALS_FILE);
    if admin.exists() {
        return read_file(&admin).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_read_and_written_back() {
        let c = parse("# berth\n[other]\naws_access_key_id = X\n[default]\naws_access_key_id = AKIAA\naws_secret_access_key = s/e+c\n").unwrap();
        assert_eq!(c.access_key_id, "AKIAA");
        assert_eq!(c.secret_access_key, "s/e+c");
        assert_eq!(parse(&render(&c)).unwrap(), c);
        assert!(parse("[default]\naws_access_key_id = A\n").is_err());
        assert!(!format!("{c:?}").contains("s/e+c"));
    }

    #[test]
    fn the_file_is_written_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        let c = Credentials {
            access_key_id: "AKIAA".into(),
            secret_access_key: "s".into(),
            session_token: None,
        };
        write_file(&path, &c).unwrap();
        write_file(&path, &c).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_file(&path).unwrap(), c);
    }
}
