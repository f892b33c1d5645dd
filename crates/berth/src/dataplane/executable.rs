//! The fingerprint of the running berth executable: the SHA-256 of the file the process
//! was started from (`/proc/self/exe`, which keeps naming that file even once a new
//! binary is installed over its path). A data plane reports its own; a server whose
//! fingerprint differs upgrades it.
//!
//! What it does not do: compare versions (two builds of one version differ), or notice
//! a binary replaced after the process started (that is the point: the running code).

use std::io::Read;
use std::sync::OnceLock;

/// The running executable's fingerprint (`sha256:<hex>`), read once; `None` when the
/// file cannot be read.
pub fn fingerprint() -> Option<String> {
    static FINGERPRINT: OnceLock<Option<String>> = OnceLock::new();
    FINGERPRINT
        .get_or_init(|| match of_file(std::path::Path::new("/proc/self/exe")) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "reading the berth executable for its fingerprint");
                None
            }
        })
        .clone()
}

/// The fingerprint of the file at `path`.
pub fn of_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
    }
    let hex: String = digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_bytes_appended_has_another_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"\x7fELF same bytes").unwrap();
        let copy = dir.path().join("copy");
        std::fs::copy(&a, &copy).unwrap();
        assert_eq!(of_file(&a).unwrap(), of_file(&copy).unwrap());
        std::fs::write(&copy, b"\x7fELF same bytes\n").unwrap();
        assert_ne!(of_file(&a).unwrap(), of_file(&copy).unwrap());
        assert!(of_file(&a).unwrap().starts_with("sha256:"));
        assert_eq!(
            fingerprint(),
            fingerprint(),
            "read once, the same each time"
        );
        assert!(fingerprint().is_some());
    }
}
