//! How berth reaches etcd: the endpoints, the key prefix of one berth cluster, the
//! timeouts, and a connect that waits (and says it waits) until etcd answers.
//!
//! What it does not do: TLS or etcd authentication.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// The largest response berth accepts from etcd (a list of every key of a cluster).
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Where and how berth's state lives in etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// etcd client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// The key prefix of this berth cluster (`--etcd-prefix`). Store keys live under
    /// `<prefix>/` (berth's own keys start with `/`, so `/clusters/default` is
    /// `/berth//clusters/default` in etcd) and the leader election's under
    /// `<prefix>.election/`, so clusters on one etcd never see each other's keys as long
    /// as no prefix is another's followed by `/` or `.election/`.
    pub prefix: String,
    /// How long one read or write may take before it fails.
    pub request_timeout: Duration,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            prefix: prefix.into(),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Checks the configuration; the error names the flag at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err(
                "--etcd-endpoints: give at least one etcd URL, e.g. http://127.0.0.1:2379".into(),
            );
        }
        for endpoint in &self.endpoints {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                || endpoint.len() <= "https://".len()
            {
                return Err(format!(
                    "--etcd-endpoints: {endpoint:?} is not an etcd URL; use http://HOST:PORT"
                ));
            }
            if endpoint.starts_with("https://") {
                return Err(format!(
                    "--etcd-endpoints: {endpoint:?}: berth speaks plain http to etcd (no TLS)"
                ));
            }
        }
        let trimmed = self.prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(format!(
                "--etcd-prefix: {:?} leaves no prefix; give one such as /berth",
                self.prefix
            ));
        }
        Ok(())
    }

    /// The prefix every store key gets in etcd: the configured prefix with one `/`.
    pub fn store_prefix(&self) -> String {
        format!("{}/", self.prefix.trim_end_matches('/'))
    }

    /// The prefix of the leader election's keys.
    pub fn election_prefix(&self) -> String {
        format!("{}.election/", self.prefix.trim_end_matches('/'))
    }

    /// A client for these endpoints. Connecting is lazy: this fails only on a malformed
    /// endpoint; whether etcd answers shows at the first request.
    pub async fn client(&self) -> Result<Client, etcd_client::Error> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        Client::connect(&self.endpoints, Some(options)).await
    }
}
