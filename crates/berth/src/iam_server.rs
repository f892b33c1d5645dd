//! `berth server`'s API security: authentication on by default, `--insecure-loopback`
//! to turn it off on a loopback address only, TLS required on any other address; the
//! sealing key of access key secrets; the admin's first credentials.
//!
//! Files in the data directory, each readable by its owner only:
//! - `iam-sealing.key` (or `--iam-sealing-key FILE`): the 32-byte AES-256-GCM key the
//!   access keys' secrets and the secret store's values are sealed with in the store. Servers sharing one store
//!   (etcd) need the same key.
//! - `admin-credentials`: the `admin` user's first access key, written when a start
//!   finds no `admin` user in the store (AWS shared-credentials format).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use axum::Router;
use berth_control::console_session::ConsoleSessions;
use berth_control::iam_auth::{guard, IamGuard};
use berth_control::iam_store::Iam;
use berth_control::Db;
use berth_iam::keys::SEALING_KEY_BYTES;
use ring::rand::SecureRandom;

use crate::client::BadConfig;
use crate::iam_credentials::{write_file, Credentials, ADMIN_CREDENTIALS_FILE};

/// The sealing key's file in the data directory.
pub const SEALING_KEY_FILE: &str = "iam-sealing.key";

#[derive(Debug, Clone, clap::Args)]
pub struct ApiSecurityArgs {
    /// Serve the API without authentication: every request is let through unsigned.
    /// Allowed only when --api-addr is a loopback address, where only this machine's
    /// users reach it.
    #[arg(long)]
    pub insecure_loopback: bool,
    /// The API's certificate chain (PEM), to serve it over TLS; with --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the API over TLS with a certificate of berth's API authority
    /// (<data-dir>/api-tls/ca.pem, printed for clients to trust).
    #[arg(long)]
    pub tls_self_signed: bool,
    #[command(flatten)]
    pub self_signed: Box<SelfSignedArgs>,
    /// The key access key secrets and secret values are sealed with in the store (made,
    /// 0600, when missing). Servers sharing one store must use the same key. Default:
    /// <data-dir>/iam-sealing.key.
    #[arg(long, value_name = "FILE")]
    pub iam_sealing_key: Option<PathBuf>,
}

/// Where `--tls-self-signed` issues from and for which names besides the usual ones
/// (boxed in [`ApiSecurityArgs`], which the server's arguments hold).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SelfSignedArgs {
    /// The directory of the API authority --tls-self-signed issues from (made on first
    /// use; `ca.pem` is what clients trust). Servers behind one name, or sharing one
    /// store, can share one directory so that one ca.pem verifies them all. Default:
    /// <data-dir>/api-tls.
    #[arg(long, value_name = "DIR", requires = "tls_self_signed")]
    pub tls_authority: Option<PathBuf>,
    /// A host name or IP address the --tls-self-signed certificate is also valid for,
    /// besides localhost, 127.0.0.1, ::1, the machine's host name and the --api-addr IP
    /// (repeat it for several).
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls_self_signed")]
    pub tls_names: Vec<String>,
}

impl ApiSecurityArgs {
    /// Where the sealing key of access keys' secrets and of the secret store is.
    pub fn sealing_key_path(&self, data_dir: &Path) -> PathBuf {
        self.iam_sealing_key
            .clone()
            .unwrap_or_else(|| data_dir.join(SEALING_KEY_FILE))
    }

    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() || self.tls_self_signed
    }

    /// Refuses what would expose the API: no authentication off loopback, no plain HTTP
    /// off loopback.
    pub fn check(&self, api_addr: SocketAddr) -> Result<(), BadConfig> {
        let loopback = api_addr.ip().is_loopback();
        if self.insecure_loopback && !loopback {
            return Err(BadConfig(format!(
                "--insecure-loopback: allowed only with a loopback --api-addr (127.0.0.1, ::1), got {api_addr}"
            )));
        }
        if !loopback && !self.tls() {
            return Err(BadConfig(format!(
                "--api-addr {api_addr} is not a loopback address: the API needs TLS there (--tls-cert and --tls-key, or --tls-self-signed)"
            )));
        }
        for name in &self.self_signed.tls_names {
            crate::tls_names::certificate_name(name).map_err(|e| BadConfig(e.to_string()))?;
        }
        Ok(())
    }
}

/// The sealing key at `path`, made (0600) on first use. Servers starting together on
/// one shared file: one makes it, the others read it.
pub fn sealing_key(path: &Path) -> Result<[u8; SEALING_KEY_BYTES]> {
    match read_sealing_key(path)? {
        Some(key) => Ok(key),
        None => match make_sealing_key(path) {
            Ok(key) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_sealing_key(path)?
                .ok_or_else(|| anyhow!("{}: vanished while being made", path.display())),
            Err(e) => Err(anyhow!("creating {}: {e}", path.display())),
        },
    }
}

fn read_sealing_key(path: &Path) -> Result<Option<[u8; SEALING_KEY_BYTES]>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let key: [u8; SEALING_KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
        anyhow!(
            "{}: holds {} bytes, a sealing key is {SEALING_KEY_BYTES}",
            path.display(),
            bytes.len()
        )
    })?;
    Ok(Some(key))
}

fn make_sealing_key(path: &Path) -> std::io::Result<[u8; SEALING_KEY_BYTES]> {
    let mut key = [0u8; SEALING_KEY_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    create_whole(path, &key, 0o600)?;
    Ok(key)
}

/// Creates `path` (with permissions `mode`) holding `bytes`, appearing whole or not at
/// all: written to a file of its own beside it, then linked to `path`, which fails with
/// `AlreadyExists` when another process made `path` first. Readers never see a partly
/// written file.
pub fn create_whole(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // A random name: processes of different machines (containers) sharing the
    // directory may have the same process id.
    let mut tag = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut tag)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    let partial = path.with_file_name(format!(".{name}.{}.partial", u64::from_le_bytes(tag)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&partial)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    linked
}

/// The IAM store over `db`, its secrets sealed with the key of `--iam-sealing-key` (or
/// `<data-dir>/iam-sealing.key`, made on first use).
pub fn open_iam(db: &Db, data_dir: &Path, args: &ApiSecurityArgs) -> Result<Iam> {
    Ok(Iam::new(
        db.clone(),
        sealing_key(&args.sealing_key_path(data_dir))?,
    ))
}

/// `router` with the `/v1/iam` routes and the console's sign-in
/// (`/console/session`), guarded unless `--insecure-loopback`. Makes the
/// admin on a store without one and writes its credentials file, printing its path.
pub async fn secure(
    router: Router,
    iam: Iam,
    data_dir: &Path,
    args: &ApiSecurityArgs,
) -> Result<Router> {
    let sessions = ConsoleSessions::new(args.tls());
    let router = router
        .merge(berth_control::iam_api::routes(iam.clone()))
        .merge(berth_control::console_session::routes(
            iam.clone(),
            sessions.clone(),
        ));
    let admin = iam
        .ensure_admin()
        .await
        .map_err(|e| anyhow!("making the admin user: {}: {}", e.code, e.message))?;
    if let Some(key) = admin {
        let path = data_dir.join(ADMIN_CREDENTIALS_FILE);
        write_file(
            &path,
            &Credentials {
                access_key_id: key.access_key_id,
                secret_access_key: key.secret_access_key,
                session_token: None,
            },
        )?;
        println!("berth admin credentials written to {}", path.display());
    }
    if args.insecure_loopback {
        tracing::warn!("--insecure-loopback: the API answers unsigned requests from this machine");
        return Ok(router);
    }
    Ok(guard(
        router,
        IamGuard::new(iam).with_console_sessions(sessions),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(insecure: bool, self_signed: bool) -> ApiSecurityArgs {
        ApiSecurityArgs {
            insecure_loopback: insecure,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: self_signed,
            self_signed: Box::default(),
            iam_sealing_key: None,
        }
    }

    #[test]
    fn the_api_is_exposed_only_with_tls_and_open_only_on_loopback() {
        let lo: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert!(args(false, false).check(lo).is_ok());
        assert!(args(true, false).check(lo).is_ok());
        assert!(args(true, false).check("[::1]:1".parse().unwrap()).is_ok());
        let e = args(true, true).check(any).unwrap_err();
        assert!(e.0.starts_with("--insecure-loopback: allowed only"), "{e}");
        let e = args(false, false).check(any).unwrap_err();
        assert!(e.0.contains("needs TLS there"), "{e}");
        assert!(args(false, true).check(any).is_ok());
        let mut named = args(false, true);
        named.self_signed.tls_names = vec!["server-1".into(), "10.0.0.1".into()];
        assert!(named.check(any).is_ok());
        named.self_signed.tls_names.push("a b".into());
        let e = named.check(any).unwrap_err();
        assert!(
            e.0.starts_with("--tls-name \"a b\": not a host name"),
            "{e}"
        );
    }

    #[test]
    fn the_sealing_key_is_made_once_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SEALING_KEY_FILE);
        let a = sealing_key(&path).unwrap();
        assert_eq!(sealing_key(&path).unwrap(), a);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        assert!(sealing_key(&path).is_err());
    }

    #[test]
    fn servers_starting_together_on_one_key_file_all_get_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SEALING_KEY_FILE);
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| sealing_key(&path))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = keys[0].as_ref().unwrap();
        for k in &keys {
            assert_eq!(k.as_ref().unwrap(), first);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the key file is left: {left:?}");
    }
}
