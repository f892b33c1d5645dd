//! A real Prometheus server for end-to-end tests: Debian's `prometheus` binary started as
//! a child process on loopback, scraping one target (a berth server's `/metrics`) at a
//! short interval, with its configuration, log and TSDB in a temp dir of its own.
//!
//! It listens on `127.0.0.1:0` and the test reads the port the system chose from its log
//! (`msg="Listening on" address=127.0.0.1:<port>`), so parallel tests never race for a
//! port. The child is killed when the [`Prometheus`] is dropped, whatever the test's end.
//!
//! What it does not do: install Prometheus (scripts/test does) or skip anything: a test
//! that needs it fails with instructions when the binary is missing
//! ([`require_prometheus`]).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::wait_until;

/// The name of the binary Debian's `prometheus` package installs (as /usr/bin/prometheus).
pub const PROMETHEUS_BIN: &str = "prometheus";

/// How long Prometheus may take to open its TSDB and start listening.
const STARTUP: Duration = Duration::from_secs(30);

/// Asserts the `prometheus` binary runs: the tests that need it fail, never skip,
/// without it.
pub fn require_prometheus() {
    let ok = Command::new(PROMETHEUS_BIN)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the `prometheus` binary is missing (or does not run); this test starts a real \
         Prometheus: install Debian's package (`apt-get install prometheus`, which \
         scripts/test does) and run it again"
    );
}

/// A Prometheus child process scraping one target.
pub struct Prometheus {
    /// The query API's base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    /// Holds prometheus.yml, prometheus.log and the TSDB (`data/`); removed on drop,
    /// after the child was killed.
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://<target>/metrics` (`target` is `host:port`)
    /// every `interval`, and waits until it listens and reports itself ready. Fails when
    /// the binary is missing, when it exits, or when it does not listen within 30 s.
    pub async fn start(target: &str, interval: Duration) -> Result<Prometheus> {
        require_prometheus();
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        let millis = interval.as_millis();
        std::fs::write(
            &config,
            format!(
                "global:
  scrape_interval: {millis}ms
  scrape_timeout: {millis}ms
  evaluation_interval: {millis}ms
scrape_configs:
  - job_name: berth
    metrics_path: /metrics
    static_configs:
      - targets: ['{target}']
"
            ),
        )?;
        let log = dir.path().join("prometheus.log");
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()
            .with_context(|| format!("spawning {PROMETHEUS_BIN}"))?;
        let mut p = Prometheus {
            url: String::new(),
            child,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        let port = p.wait_listening(&log).await?;
        p.url = format!("http://127.0.0.1:{port}");
        let ready = format!("{}/-/ready", p.url);
        wait_until("Prometheus to report itself ready", STARTUP, || async {
            let r = p.http.get(&ready).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await
        .map_err(|e| anyhow!("{e}\n{}", p.log()))?;
        Ok(p)
    }

    /// The port Prometheus bound, from its log line `msg="Listening on" address=...`.
    async fn wait_listening(&mut self, log: &Path) -> Result<u16> {
        let found = wait_until("Prometheus to listen", STARTUP, || {
            let exited = self.child.try_wait().ok().flatten();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            async move {
                if let Some(status) = exited {
                    return Some(Err(anyhow!("prometheus exited early ({status}):\n{text}")));
                }
                listening_port(&text).map(Ok)
            }
        })
        .await;
        match found {
            Ok(exited_or_port) => exited_or_port,
            Err(timeout) => bail!("{timeout}\n{}", self.log()),
        }
    }

    /// Evaluates `promql` now through the HTTP API; returns `data` of a success, or an
    /// error carrying Prometheus' own message.
    pub async fn query(&self, promql: &str) -> Result<Value> {
        let v: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await?
            .json()
            .await?;
        if v["status"] != "success" {
            bail!("Prometheus answered {promql} with {v}");
        }
        Ok(v["data"].clone())
    }

    /// The value of `promql` when it answers an instant vector of exactly one sample (or
    /// a scalar) holding a finite number; `None` otherwise, e.g. before enough scrapes.
    pub async fn value(&self, promql: &str) -> Option<f64> {
        let data = self.query(promql).await.ok()?;
        let value = match data["resultType"].as_str()? {
            "vector" => match data["result"].as_array()?.as_slice() {
                [one] => one["value"][1].as_str()?.to_string(),
                _ => return None,
            },
            "scalar" => data["result"][1].as_str()?.to_string(),
            _ => return None,
        };
        value.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// Prometheus' log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    /// Kills the child and reaps it before the temp dir holding its TSDB goes.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in Prometheus' `msg="Listening on" address=<host>:<port>` log line.
fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .filter(|l| l.contains("msg=\"Listening on\""))
        .find_map(|l| {
            let addr = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("address="))?;
            addr.rsplit(':').next()?.parse::<u16>().ok()
        })
        .filter(|port| *port != 0)
}

#[cfg(test)]
mod tests {
    use super::listening_port;

    #[test]
    fn the_port_comes_from_the_listening_line_only() {
        let log = "ts=2026-11-30T02:48:50.802Z caller=web.go:503 level=info component=web msg=\"Start listening for connections\" address=127.0.0.1:0\n\
                   ts=2026-11-30T02:48:50.807Z caller=tls_config.go:232 level=info component=web msg=\"Listening on\" address=127.0.0.1:41151\n";
        assert_eq!(listening_port(log), Some(41151));
        assert_eq!(listening_port(log.lines().next().unwrap()), None);
        assert_eq!(listening_port(""), None);
    }
}
