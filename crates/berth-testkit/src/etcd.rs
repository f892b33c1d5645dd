//! A real etcd for tests: Debian's `etcd` binary started as a child process on loopback,
//! with free ports and a data dir of its own, killed (SIGKILL) when dropped.
//!
//! The ports are reserved before etcd starts ([`EtcdPorts`]), so a test can point a
//! berth server at an etcd that is not up yet and start it later on the same address,
//! and [`Etcd::kill`] and [`Etcd::restart`] keep the address and the data.
//!
//! What it does not do: install etcd (scripts/test does) or skip anything: a test that
//! needs it fails with instructions when the binary is missing ([`require_etcd`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::wait_until;

/// The binary Debian's `etcd-server` package installs (as /usr/bin/etcd).
pub const ETCD_BIN: &str = "etcd";

/// How long etcd may take to start answering.
const STARTUP: Duration = Duration::from_secs(30);

/// Asserts the `etcd` binary runs: the tests that need it fail, never skip, without it.
pub fn require_etcd() {
    let ok = Command::new(ETCD_BIN)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the `etcd` binary is missing (or does not run); this test starts a real etcd: \
         install Debian's package (`apt-get install etcd-server`, which scripts/test \
         does) and run it again"
    );
}

/// The loopback ports one etcd serves clients and peers on.
#[derive(Debug, Clone, Copy)]
pub struct EtcdPorts {
    pub client: u16,
    pub peer: u16,
}

impl EtcdPorts {
    /// Two ports free right now on 127.0.0.1.
    pub fn free() -> Result<EtcdPorts> {
        let client = std::net::TcpListener::bind("127.0.0.1:0")?;
        let peer = std::net::TcpListener::bind("127.0.0.1:0")?;
        Ok(EtcdPorts {
            client: client.local_addr()?.port(),
            peer: peer.local_addr()?.port(),
        })
    }

    /// The client URL, `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
}

/// An etcd child process.
pub struct Etcd {
    pub ports: EtcdPorts,
    child: Option<Child>,
    /// Holds etcd's data (`data/`) and its log (`etcd.log`).
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd on free ports and waits until it answers.
    pub async fn start() -> Result<Etcd> {
        Etcd::start_on(EtcdPorts::free()?).await
    }

    /// Starts etcd on `ports` and waits until it answers.
    pub async fn start_on(ports: EtcdPorts) -> Result<Etcd> {
        require_etcd();
        let mut etcd = Etcd {
            ports,
            child: None,
            dir: tempfile::tempdir()?,
        };
        etcd.spawn().await?;
        Ok(etcd)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        self.ports.endpoint()
    }

    /// etcd's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Kills etcd with SIGKILL and reaps it; its data stays for [`Etcd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(&mut self) -> Result<()> {
        let client = self.ports.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.ports.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))?;
        let child = Command::new(ETCD_BIN)
            .arg("--name")
            .arg("berth-test")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("berth-test={peer}")])
            // berth applies a stack as one transaction; etcd's default allows 128 ops.
            .args(["--max-txn-ops", "10000"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning etcd")?;
        self.child = Some(child);
        let health = format!("{client}/health");
        let http = reqwest::Client::new();
        let ready = wait_until("etcd to answer /health", STARTUP, || {
            let (http, health) = (http.clone(), health.clone());
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            async move {
                if let Some(status) = exited {
                    return Some(Err(anyhow::anyhow!("etcd exited early: {status}")));
                }
                let body = http.get(&health).send().await.ok()?.text().await.ok()?;
                body.contains("\"true\"").then_some(Ok(()))
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) | Err(e) => Err(e.context(format!("etcd log:\n{}", self.log()))),
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
