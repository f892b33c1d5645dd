//! Leader election among the servers sharing one etcd.
//!
//! Each candidate holds an etcd lease it keeps alive and puts one key under the
//! election prefix, `<prefix><lease id>`, attached to the lease. The candidate whose key
//! has the lowest create revision leads; the others watch the prefix for deletions and
//! look again. A key disappears when its candidate resigns (the lease is revoked) or
//! stops keeping its lease alive (killed, cut off): etcd expires the lease after its
//! TTL, deletes the key, and the next candidate leads.
//!
//! A leader stops leading the moment it cannot be sure its lease still holds: when etcd
//! says the lease is gone, or when no keep-alive was answered before the lease's TTL,
//! counted from when the last answered keep-alive was sent (which is no later than when
//! etcd renewed it) less a tenth of the TTL (timers fire late by up to a millisecond and
//! the step-down itself takes a moment), so the leader has stepped down before etcd
//! expires the lease. It then campaigns again with a new lease.
//!
//! What it does not do: fence the writes of a leader that stepped down (a reconcile
//! pass cut short still made the writes it finished), or keep two elections apart
//! other than by their prefixes.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    WatchFilterType, WatchOptions,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one candidate campaigns with.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The election's key prefix (`EtcdConfig::election_prefix`).
    pub prefix: String,
    /// What the candidate's key holds: who it is (the leader's value is
    /// [`current_leader`]'s answer).
    pub candidate: String,
    /// The lease's time to live: how long after a leader dies another takes over, at
    /// most (whole seconds, at least 2: etcd rounds shorter ones up).
    pub ttl: Duration,
}

/// The lease TTL berth servers campaign with.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

/// One candidate's campaign, running until [`Election::resign`] or drop.
pub struct Election {
    leading: watch::Receiver<bool>,
    resign: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Election {
    /// Starts campaigning (in a task of its own) and keeps campaigning after every lost
    /// term.
    pub fn start(client: Client, config: ElectionConfig) -> Election {
        let (leading_tx, leading) = watch::channel(false);
        let (resign_tx, resign_rx) = oneshot::channel();
        let task = tokio::spawn(campaign_forever(client, config, leading_tx, resign_rx));
        Election {
            leading,
            resign: Some(resign_tx),
            task: Some(task),
        }
    }

    /// True while this candidate leads; changes the moment it stops.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Stops campaigning and gives leadership up at once (the lease is revoked, so the
    /// next candidate need not wait for it to expire).
    pub async fn resign(mut self) {
        if let Some(resign) = self.resign.take() {
            let _ = resign.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Election {
    /// Stops campaigning without revoking the lease: it expires after its TTL, as when
    /// the process dies.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The value of the leading candidate's key, if any candidate campaigns.
pub async fn current_leader(
    client: &mut Client,
    prefix: &str,
) -> Result<Option<String>, etcd_client::Error> {
    let resp = client.get(prefix, Some(first_candidate())).await?;
    Ok(resp
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

fn first_candidate() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1)
}

/// How a term ended.
enum TermEnd {
    Lost(String),
    Resigned,
}

async fn campaign_forever(
    mut client: Client,
    config: ElectionConfig,
    leading: watch::Sender<bool>,
    mut resign: oneshot::Receiver<()>,
) {
    loop {
        let end = term(&mut client, &config, &leading, &mut resign).await;
        leading.send_replace(false);
        match end {
            Ok(TermEnd::Resigned) => return,
            Ok(TermEnd::Lost(why)) => {
                tracing::warn!(reason = %why, "lost the leader election's lease; campaigning again")
            }
            Err(e) => tracing::warn!(error = %e, "leader election: etcd failed; campaigning again"),
        }
        tokio::select! {
            _ = &mut resign => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// One term: a lease, a campaign, and leadership until the lease is lost or the
/// candidate resigns. The lease is revoked at the end whichever way it ends.
async fn term(
    client: &mut Client,
    config: &ElectionConfig,
    leading: &watch::Sender<bool>,
    resign: &mut oneshot::Receiver<()>,
) -> Result<TermEnd, etcd_client::Error> {
    let ttl_secs = config.ttl.as_secs().max(1) as i64;
    let asked = Instant::now();
    let grant = tokio::time::timeout(config.ttl, client.lease_grant(ttl_secs, None))
        .await
        .map_err(|_| etcd_client::Error::LeaseKeepAliveError("lease grant timed out".into()))??;
    let lease = grant.id();
    let expires = asked + held_for(Duration::from_secs(grant.ttl().max(0) as u64));
    let keep = keep_alive(client.clone(), lease, expires);
    tokio::pin!(keep);
    let key = format!("{}{lease:016x}", config.prefix);

    let before_leading = tokio::select! {
        lost = &mut keep => Some(Ok(TermEnd::Lost(lost))),
        _ = &mut *resign => Some(Ok(TermEnd::Resigned)),
        won = campaign(client.clone(), config, &key, lease) => won.err().map(Err),
    };
    let end = match before_leading {
        Some(end) => end,
        None => {
            leading.send_replace(true);
            tracing::info!(candidate = %config.candidate, "leading: this server runs the reconcilers");
            let end = tokio::select! {
                lost = &mut keep => TermEnd::Lost(lost),
                lost = key_deleted(client.clone(), &key) => TermEnd::Lost(lost),
                _ = &mut *resign => TermEnd::Resigned,
            };
            leading.send_replace(false);
            tracing::info!(candidate = %config.candidate, "no longer leading: the reconcilers stop");
            Ok(end)
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), client.lease_revoke(lease)).await;
    end
}

/// How long after sending a keep-alive that etcd answered with `ttl` this candidate
/// counts the lease as held: the TTL less a tenth, the margin by which the leader steps
/// down before etcd could expire the lease.
fn held_for(ttl: Duration) -> Duration {
    ttl - ttl / 10
}

/// Keeps `lease` alive until it is lost; returns why. `expires` is the earliest the
/// lease may expire as far as this candidate knows.
async fn keep_alive(mut client: Client, lease: i64, mut expires: Instant) -> String {
    let mut stream = None;
    loop {
        let now = Instant::now();
        if now >= expires {
            return "no keep-alive was answered within the lease's TTL".into();
        }
        if stream.is_none() {
            match tokio::time::timeout_at(expires, client.lease_keep_alive(lease)).await {
                Ok(Ok(s)) => stream = Some(s),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "lease keep-alive stream failed");
                    tokio::time::sleep_until(expires.min(now + Duration::from_millis(200))).await;
                    continue;
                }
                Err(_) => continue,
            }
        }
        let Some((keeper, responses)) = stream.as_mut() else {
            continue;
        };
        let sent = Instant::now();
        if keeper.keep_alive().await.is_err() {
            stream = None;
            continue;
        }
        match tokio::time::timeout_at(expires, responses.message()).await {
            Ok(Ok(Some(resp))) if resp.ttl() <= 0 => {
                return "etcd says the lease is gone".into();
            }
            Ok(Ok(Some(resp))) => {
                let ttl = Duration::from_secs(resp.ttl() as u64);
                expires = sent + held_for(ttl);
                tokio::time::sleep_until(sent + ttl / 3).await;
            }
            Ok(Ok(None)) | Ok(Err(_)) => stream = None,
            Err(_) => {}
        }
    }
}

/// Puts this candidate's key (once per lease) and returns when it is the oldest under
/// the prefix.
async fn campaign(
    mut client: Client,
    config: &ElectionConfig,
    key: &str,
    lease: i64,
) -> Result<(), etcd_client::Error> {
    let create = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            config.candidate.as_str(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    client.txn(create).await?;
    loop {
        let resp = client
            .get(config.prefix.as_str(), Some(first_candidate()))
            .await?;
        match resp.kvs().first() {
            Some(first) if first.key() == key.as_bytes() => return Ok(()),
            Some(_) => {}
            None => {
                return Err(etcd_client::Error::ElectError(
                    "this candidate's key is gone (its lease expired)".into(),
                ))
            }
        }
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        // Wait for a candidate to go, then look again.
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_filters([WatchFilterType::NoPut]);
        let mut deletions = client.watch(config.prefix.as_str(), Some(options)).await?;
        loop {
            match deletions.message().await? {
                Some(resp) if resp.canceled() || !resp.events().is_empty() => break,
                Some(_) => {}
                None => break,
            }
        }
    }
}

/// Returns when the leader's key is deleted (its lease revoked or expired, or the key
/// removed by hand), which etcd reports before the next keep-alive would; never returns
/// while etcd cannot be watched (the keep-alive then decides).
async fn key_deleted(mut client: Client, key: &str) -> String {
    let options = WatchOptions::new().with_filters([WatchFilterType::NoPut]);
    if let Ok(mut deletions) = client.watch(key, Some(options)).await {
        if let Ok(resp) = client
            .get(key, Some(GetOptions::new().with_count_only()))
            .await
        {
            if resp.count() == 0 {
                return "this candidate's key is gone".into();
            }
            while let Ok(Some(resp)) = deletions.message().await {
                if !resp.events().is_empty() {
                    return "this candidate's key was deleted".into();
                }
            }
        }
    }
    std::future::pending().await
}
