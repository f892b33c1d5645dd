//! Which store `berth server` keeps its state in (`--store`), and who runs the
//! reconcilers.
//!
//! `redb` (the default) is one file under `--data-dir`: the server is alone and always
//! runs the reconcilers. `etcd` is an etcd cluster (`--etcd-endpoints`, keys under
//! `--etcd-prefix`) that several servers share: each serves the API and runs its own
//! agent and proxy, and they elect one leader (`berth_store_etcd::election`) that runs
//! the reconcilers. A server that stops leading stops its reconcilers at once: the
//! loop is told to stop and, if a pass is still under way a moment later, the pass is
//! cancelled. `berth_control_plane_leader` (1 or 0) on `/metrics` says whether this
//! server runs them.
//!
//! A follower still feeds its own proxy and DNS server from the store (every second and
//! on its proxy's health changes; `ControlPlane::serve_node_once`), so every server's
//! listeners serve; only the leader writes target health back.
//!
//! What it does not do: notice that another server died (its container instance stays
//! connected), or move tasks between servers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_control::ControlPlane;
use berth_store::{DynStore, RedbStore};
use berth_store_etcd::{Election, ElectionConfig, EtcdConfig, EtcdStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a reconcile pass under way may take to finish once this server stopped
/// leading before it is cancelled.
const STEP_DOWN_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Where the state lives: `redb`, one file under --data-dir for this server alone, or
    /// `etcd`, an etcd cluster several servers share (one of them, elected, runs the
    /// reconcilers).
    #[arg(long = "store", env = "BERTH_STORE", default_value = "redb", value_parser = ["redb", "etcd"])]
    pub kind: String,
    /// etcd client URLs, comma-separated (with --store etcd), e.g.
    /// http://127.0.0.1:2379.
    #[arg(
        long,
        env = "BERTH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URL,..."
    )]
    pub etcd_endpoints: Vec<String>,
    /// The etcd key prefix of this berth cluster (with --store etcd): servers with the
    /// same prefix share state and elect one leader.
    #[arg(long, env = "BERTH_ETCD_PREFIX", default_value = "/berth")]
    pub etcd_prefix: String,
}

/// The store a server opened.
pub enum OpenStore {
    Redb(RedbStore),
    Etcd(EtcdStore, EtcdConfig),
}

impl StoreArgs {
    /// Checks the flags together; the error names the flag at fault.
    fn etcd_config(&self) -> Result<Option<EtcdConfig>> {
        match self.kind.as_str() {
            "etcd" => {
                let config = EtcdConfig::new(self.etcd_endpoints.clone(), &self.etcd_prefix);
                if let Err(e) = config.validate() {
                    bail!("{e}");
                }
                Ok(Some(config))
            }
            _ if !self.etcd_endpoints.is_empty() => {
                bail!(
                    "--etcd-endpoints: only with --store etcd (the store is {})",
                    self.kind
                )
            }
            _ => Ok(None),
        }
    }

    /// Checks the flags before anything starts.
    pub fn validate(&self) -> Result<()> {
        self.etcd_config().map(|_| ())
    }

    /// Opens the store; with etcd, waits (saying so in the log) until etcd answers.
    pub async fn open(&self, data_dir: &Path) -> Result<OpenStore> {
        match self.etcd_config()? {
            None => {
                let path = data_dir.join("berth.redb");
                // A server killed while it was starting a process leaves the file locked
                // for as long as that child takes to exec (the lock goes with the
                // descriptor the child holds until then): wait a little for it.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                let store = loop {
                    match RedbStore::open(&path) {
                        Err(e)
                            if e.to_string().contains("already open")
                                && std::time::Instant::now() < deadline =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                        other => {
                            break other.with_context(|| {
                                format!("opening the store in {}", data_dir.display())
                            })?
                        }
                    }
                };
                Ok(OpenStore::Redb(store))
            }
            Some(config) => {
                let store = EtcdStore::connect_when_ready(&config)
                    .await
                    .context("connecting to etcd")?;
                tracing::info!(endpoints = ?config.endpoints, prefix = %config.prefix, "state lives in etcd");
                Ok(OpenStore::Etcd(store, config))
            }
        }
    }
}

impl OpenStore {
    pub fn dyn_store(&self) -> DynStore {
        match self {
            OpenStore::Redb(s) => Arc::new(s.clone()),
            OpenStore::Etcd(s, _) => Arc::new(s.clone()),
        }
    }

    /// Runs the reconcilers until `stop` turns true: always with redb; with etcd while
    /// this server leads, campaigning as `candidate` (who it is, for whoever reads the
    /// election's keys). Sets `berth_control_plane_leader` in `registry`.
    pub fn run_reconcilers(
        &self,
        control: Arc<ControlPlane>,
        candidate: String,
        registry: &prometheus::Registry,
        stop: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>> {
        let gauge = prometheus::IntGauge::new(
            "berth_control_plane_leader",
            "1 while this server runs the reconcilers (leads), else 0",
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(match self {
            OpenStore::Redb(_) => {
                gauge.set(1);
                tokio::spawn(control.run_reconcilers(stop))
            }
            OpenStore::Etcd(store, config) => {
                let election = Election::start(
                    store.client(),
                    ElectionConfig {
                        prefix: config.election_prefix(),
                        candidate,
                        ttl: berth_store_etcd::election::DEFAULT_TTL,
                    },
                );
                tokio::spawn(async move {
                    reconcile_while_leading(control, election.leading(), stop, gauge).await;
                    election.resign().await;
                })
            }
        })
    }
}

/// What a follower does until it leads: keeps its own proxy and DNS server fed from the
/// store, every second and on every health change of its proxy.
async fn serve_node(control: &ControlPlane) {
    let mut health = control.data_plane.subscribe();
    loop {
        control.serve_node_once().await;
        tokio::select! {
            _ = health.changed() => {}
            _ = tokio::time::sleep(berth_control::RESYNC_INTERVAL) => {}
        }
    }
}

/// Runs the reconcilers during each of this server's terms as leader, until `stop`;
/// serves the node in between.
async fn reconcile_while_leading(
    control: Arc<ControlPlane>,
    mut leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    gauge: prometheus::IntGauge,
) {
    loop {
        tokio::select! {
            led = leading.wait_for(|l| *l) => if led.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
            _ = serve_node(&control) => {}
        }
        gauge.set(1);
        let (term_tx, term_rx) = watch::channel(false);
        let mut reconcilers = tokio::spawn(control.clone().run_reconcilers(term_rx));
        let stopping = tokio::select! {
            _ = leading.wait_for(|l| !*l) => false,
            _ = stop.wait_for(|s| *s) => true,
            _ = &mut reconcilers => false,
        };
        gauge.set(0);
        let _ = term_tx.send(true);
        if tokio::time::timeout(STEP_DOWN_GRACE, &mut reconcilers)
            .await
            .is_err()
        {
            reconcilers.abort();
        }
        if stopping {
            return;
        }
    }
}
