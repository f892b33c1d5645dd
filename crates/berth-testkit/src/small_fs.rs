//! A small filesystem for tests of a full disk: a tmpfs of a given size mounted on a fresh
//! directory (mounting needs root; without it the test fails loudly, it never skips),
//! unmounted when dropped, and a way to fill it.
//!
//! What it does not do: decide what a full disk must do to berth (the tests do).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a fresh directory, unmounted (lazily, so a process
/// still holding a file in it does not keep it mounted) when dropped.
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `4m`, `512k`). Panics,
    /// naming the cause, when the mount fails (e.g. not root).
    pub fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("a directory to mount on");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with one file (returned: removing it frees the space),
    /// leaving nothing free.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("creating the filler");
        let chunk = vec![7u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
    }
}
