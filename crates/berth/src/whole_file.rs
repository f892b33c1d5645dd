//! Files other processes poll (`api.addr`, `dns.addr`, the data plane's pid file)
//! written whole: beside their path, then renamed over it, so a reader sees the old
//! content or the new, never an empty or half-written file.

use std::path::{Path, PathBuf};

/// Writes `text` to `path` whole (see the module).
pub fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let beside = beside(path);
    std::fs::write(&beside, text)?;
    std::fs::rename(&beside, path)
}

/// Where `path` is written first: named for this process, so two processes writing the
/// same path do not write one file.
fn beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.partial", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.addr");
        write_whole(&path, "http://127.0.0.1:1").unwrap();
        write_whole(&path, "http://127.0.0.1:2").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "http://127.0.0.1:2"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
