//! `berth image build-demo`: builds the demo app's image locally (no registry needed).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where a statically linked `berth-whoami` is looked for, beside the running berth's
/// target directory: `target/x86_64-unknown-linux-gnu/{release,debug}/berth-whoami`.
fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?;
    ["release", "debug"]
        .iter()
        .map(|p| {
            target
                .join("x86_64-unknown-linux-gnu")
                .join(p)
                .join("berth-whoami")
        })
        .find(|p| p.exists())
}

/// Builds `tag` as `FROM scratch` plus the static binary.
pub async fn build_demo(binary: Option<&Path>, tag: &str) -> Result<()> {
    let binary = match binary {
        Some(b) => b.to_path_buf(),
        None => match default_binary() {
            Some(b) => b,
            None => bail!(
                "no statically linked berth-whoami found; build it with\n  \
                 RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release -p berth-whoami --target x86_64-unknown-linux-gnu\n\
                 or pass --binary PATH"
            ),
        },
    };
    let docker = bollard::Docker::connect_with_local_defaults()
        .context("connecting to the Docker engine")?;
    docker
        .ping()
        .await
        .context("the Docker engine does not answer")?;
    berth_runtime::docker::build_image_from_binary(&docker, tag, &binary)
        .await
        .with_context(|| format!("building {tag} from {}", binary.display()))?;
    println!("built {tag} from {}", binary.display());
    Ok(())
}
