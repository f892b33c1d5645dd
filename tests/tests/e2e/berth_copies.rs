//! What the data plane's restart and upgrade tests share: copies of the built `berth`
//! (plain, or with bytes appended so its fingerprint differs), and a check that a
//! listener answers.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use berth_testkit::bin;

/// A copy of the built `berth` in `dir`, with `berth-whoami` beside it (the process
/// runtime finds the demo app next to the executable).
pub fn copied_binary(dir: &Path) -> Result<PathBuf> {
    let copy = dir.join("berth");
    std::fs::copy(bin("berth"), &copy).context("copying berth")?;
    std::os::unix::fs::symlink(bin("berth-whoami"), dir.join("berth-whoami"))?;
    Ok(copy)
}

/// [`copied_binary`] with bytes appended: it runs the same, and its fingerprint
/// (SHA-256 of the executable) differs.
pub fn altered_binary(dir: &Path) -> Result<PathBuf> {
    let copy = copied_binary(dir)?;
    let mut f = std::fs::OpenOptions::new().append(true).open(&copy)?;
    std::io::Write::write_all(&mut f, b"\nanother build\n")?;
    Ok(copy)
}

/// `n` requests through `addr`, each of which must succeed: the listener serves.
pub async fn all_answer(addr: &str, n: usize) -> Result<()> {
    let client = reqwest::Client::new();
    for i in 0..n {
        let r = client.get(format!("http://{addr}/")).send().await?;
        ensure!(r.status().is_success(), "request {i}: {}", r.status());
    }
    Ok(())
}
