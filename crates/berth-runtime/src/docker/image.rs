//! Building images without a registry: a `FROM scratch` image around one static binary.

use std::path::Path;

use bollard::query_parameters::BuildImageOptions;
use bollard::Docker;
use futures::StreamExt;

use crate::{Result, RuntimeError};

/// The Dockerfile of an image holding only `binary_name` as its entry point, in
/// `/usr/local/bin` so that it is also found by name on the container's default PATH
/// (a task definition's `entryPoint: ["<binary_name>"]` then works on both runtimes).
pub fn scratch_dockerfile(binary_name: &str) -> String {
    format!(
        "FROM scratch\nCOPY {binary_name} /usr/local/bin/{binary_name}\nENTRYPOINT [\"/usr/local/bin/{binary_name}\"]\n"
    )
}

/// Builds image `tag` as `FROM scratch` plus the binary at `binary_path` (which must be
/// statically linked, e.g. built with `RUSTFLAGS="-C target-feature=+crt-static" cargo
/// build --target x86_64-unknown-linux-gnu`), its entry point `/usr/local/bin/<file name>`. Nothing is
/// pulled: the build context is a tar archive sent through the engine's build API.
///
/// `berth image build-demo` uses it for the demo app: the image `berth-whoami:latest`
/// with entry point `/usr/local/bin/berth-whoami`.
pub async fn build_image_from_binary(docker: &Docker, tag: &str, binary_path: &Path) -> Result<()> {
    let name = binary_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RuntimeError::Other(format!("{} has no file name", binary_path.display())))?
        .to_string();
    let binary = tokio::fs::read(binary_path)
        .await
        .map_err(|e| RuntimeError::Other(format!("cannot read {}: {e}", binary_path.display())))?;
    let context = build_context(&name, &binary)
        .map_err(|e| RuntimeError::Other(format!("cannot build the tar context: {e}")))?;
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut output = String::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| RuntimeError::Other(format!("building {tag}: {e}")))?;
        if let Some(err) = info.error.or(info.error_detail.and_then(|d| d.message)) {
            return Err(RuntimeError::Other(format!(
                "building {tag}: {err}\n{output}"
            )));
        }
        if let Some(s) = info.stream {
            output.push_str(&s);
        }
    }
    docker.inspect_image(tag).await.map_err(|e| {
        RuntimeError::Other(format!("built {tag}, but it cannot be inspected: {e}"))
    })?;
    Ok(())
}

fn build_context(name: &str, binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let dockerfile = scratch_dockerfile(name);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, name, binary)?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_holds_the_dockerfile_and_an_executable() {
        let bytes = build_context("app", b"\x7fELF").unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            seen.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().mode().unwrap(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("Dockerfile".to_string(), 0o644),
                ("app".to_string(), 0o755)
            ]
        );
        assert!(scratch_dockerfile("app").contains("ENTRYPOINT [\"/usr/local/bin/app\"]"));
    }
}
