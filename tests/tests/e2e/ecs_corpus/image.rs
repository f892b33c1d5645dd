//! The corpus's stand-in image, built locally (nothing is pulled): `FROM scratch` plus
//! Debian's statically linked busybox (`/bin/busybox` and its applets: `sh`, `sleep`,
//! `httpd`, `nc`, `ping`, ...) and a small entry point that stands in for the images the
//! definitions name (httpd, wordpress, mysql, nginx, envoy, amazonlinux, alpine, busybox,
//! the OpenTelemetry collector). Only a definition's `image` is rewritten to it; its entry
//! point, command, environment and everything else run as written.
//!
//! The entry point does what those images' own entry points do with a command: a
//! command whose first word is a program runs as given (`sleep 3600`); no command, or
//! one of flags (`--config=...`), starts the image's server: it prints
//! `stand-in: <container> <args>` and serves `/usr/local/apache2/htdocs` over HTTP on
//! `$PORT` (berth's first container port) or 80. `httpd-foreground` (the httpd image's
//! command) starts the same server.

use std::path::Path;
use std::process::Command;

/// The image every corpus definition's `image` is rewritten to.
pub const STAND_IN_IMAGE: &str = "berth-corpus-stand-in:test";

/// Where Debian's `busybox-static` installs the binary.
const BUSYBOX: &str = "/bin/busybox";

const ENTRY_POINT: &str = r#"#!/bin/sh
case "$1" in
  ""|-*)
    echo "stand-in: $BERTH_CONTAINER_NAME $*"
    exec httpd -f -p "${PORT:-80}" -h /usr/local/apache2/htdocs
    ;;
  *) exec "$@" ;;
esac
"#;

const HTTPD_FOREGROUND: &str = "#!/bin/sh\nexec /usr/local/bin/stand-in\n";

const DOCKERFILE: &str = r#"FROM scratch
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY stand-in httpd-foreground /usr/local/bin/
RUN ["/bin/sh", "-c", "mkdir -p /usr/local/apache2/htdocs /tmp && chmod 1777 /tmp && chmod 755 /usr/local/bin/stand-in /usr/local/bin/httpd-foreground"]
ENTRYPOINT ["/usr/local/bin/stand-in"]
"#;

/// Builds [`STAND_IN_IMAGE`] once per test process; panics with what is missing.
pub fn build_stand_in_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        berth_testkit::require_docker();
        assert!(
            Path::new(BUSYBOX).is_file(),
            "{BUSYBOX} is missing: install Debian's busybox-static (scripts/test does)"
        );
        let dir = tempfile::tempdir().expect("a build context directory");
        let ctx = dir.path();
        std::fs::copy(BUSYBOX, ctx.join("busybox")).expect("copy busybox");
        std::fs::write(ctx.join("stand-in"), ENTRY_POINT).unwrap();
        std::fs::write(ctx.join("httpd-foreground"), HTTPD_FOREGROUND).unwrap();
        std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
        let out = Command::new("docker")
            .args(["build", "-q", "-t", STAND_IN_IMAGE])
            .arg(ctx)
            .output()
            .expect("the docker CLI runs");
        assert!(
            out.status.success(),
            "building {STAND_IN_IMAGE} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}
