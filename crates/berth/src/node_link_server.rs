//! `berth server --node-listen ADDR`: the control plane's side of the node link, where
//! `berth agent`s of other machines join and connect, and the join token an operator
//! hands them.
//!
//! The join secret is created on the first start with the flag; the token (with the
//! fingerprint of the authority agents pin) is printed then and written to
//! `<data-dir>/join-token` (mode 0600). Only the secret's digest is in the store, so a
//! lost token file cannot be shown again: start with `--rotate-join-token` for a new one.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use berth_control::node_join::NodeJoin;
use berth_control::ControlPlane;
use berth_node_link::{ControlIdentity, ControlLink, JoinToken};
use tokio::sync::watch;

/// The file holding the join token.
pub const JOIN_TOKEN_FILE: &str = "join-token";

fn write_token(data_dir: &Path, token: &JoinToken) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(JOIN_TOKEN_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{token}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Starts serving the node link on `addr`; returns the control plane's identity on it
/// (for its calls to the nodes' APIs).
pub async fn start(
    control: &ControlPlane,
    addr: SocketAddr,
    data_dir: &Path,
    rotate_token: bool,
    stop: watch::Receiver<bool>,
) -> Result<ControlIdentity> {
    let join = NodeJoin::new(control.db.clone());
    let secret = if rotate_token {
        Some(join.rotate_secret().await?)
    } else {
        join.ensure_secret().await?
    };
    let authority = join.authority_pem().await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the node link to {addr} (--node-listen)"))?;
    let bound = listener.local_addr()?;
    let identity = berth_node_link::serve(
        ControlLink {
            join,
            agents: control.agent_service(),
            disconnect_after: berth_node_link::control_side::DISCONNECT_AFTER,
        },
        listener,
        stop,
    )
    .await
    .context("starting the node link")?;
    std::fs::write(data_dir.join("node-link.addr"), format!("https://{bound}"))?;
    match secret {
        Some(secret) => {
            let token = JoinToken::new(&authority, &secret).map_err(anyhow::Error::msg)?;
            write_token(data_dir, &token)?;
            println!("berth node link listening on https://{bound}");
            println!(
                "agents join with: berth agent --server https://{bound} --token $(cat {})",
                data_dir.join(JOIN_TOKEN_FILE).display()
            );
        }
        None => {
            println!("berth node link listening on https://{bound}");
            tracing::info!(
                file = %data_dir.join(JOIN_TOKEN_FILE).display(),
                "the join token was shown when it was created; --rotate-join-token makes a new one"
            );
        }
    }
    Ok(identity)
}
