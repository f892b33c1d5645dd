//! What request handling sees of its listener and its client connection: the listener's
//! routing snapshot and settings ([`ListenerShared`], [`Routes`]), and one client
//! connection's facts and shared state ([`ConnCtx`]). Plain data shared by the listener
//! and the fast, hyper and stream paths; it serves nothing itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_rustls::TlsAcceptor;

use crate::clock::Clock;
use crate::forwarded::{ForwardedValues, XffMode};
use crate::mesh::{MeshConnection, MeshMetrics};
use crate::metrics::ListenerMetrics;
use crate::rules::RuleSet;

/// The most a request's line and headers may take together (ALB: 64 KiB).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What a listener routes by: swapped whole when the configuration changes.
pub(crate) struct Routes {
    pub(crate) rules: RuleSet,
    pub(crate) xff: XffMode,
    /// `routing.http.drop_invalid_header_fields.enabled`: header names other than
    /// letters, digits and hyphens are removed before a request goes to a target.
    pub(crate) drop_invalid_headers: bool,
    pub(crate) idle_timeout: Duration,
    /// A stream listener's idle timeout: set for mesh TCP listeners (NLB listeners keep
    /// their connections however long they are quiet).
    pub(crate) stream_idle_timeout: Option<Duration>,
    /// Open client connections beyond which new ones are refused.
    pub(crate) max_connections: i64,
    /// Open client connections from one client address beyond which its new ones are
    /// refused.
    pub(crate) max_connections_per_client: u32,
    /// How long a client may take to send a request's head (answered 408 beyond).
    pub(crate) header_timeout: Duration,
}

/// Whether a listener speaks HTTP (ALB) or forwards byte streams (NLB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Http,
    Stream,
}

/// A listener's state shared by its accept loop and every connection it serves.
pub(crate) struct ListenerShared {
    pub(crate) routes: ArcSwap<Routes>,
    /// Set for HTTPS and TLS listeners; swapped when certificates change.
    pub(crate) tls: ArcSwapOption<TlsAcceptor>,
    pub(crate) mode: Mode,
    pub(crate) metrics: ListenerMetrics,
    /// The bound port, for X-Forwarded-Port and redirects.
    pub(crate) port: u16,
    pub(crate) clock: Clock,
}

/// One HTTP client connection, as its requests see it.
pub(crate) struct ConnCtx {
    pub(crate) listener: Arc<ListenerShared>,
    pub(crate) peer: SocketAddr,
    /// The X-Forwarded-* values of this connection, formatted once.
    pub(crate) forwarded: ForwardedValues,
    /// Requests on this connection not yet answered: the idle timeout waits for them.
    pub(crate) active: AtomicU64,
    /// Woken when the connection was idle for the idle timeout while requests waited on a
    /// target: those requests end with a 504. One connection-wide deadline instead of a
    /// timer per request.
    pub(crate) expired: tokio::sync::Notify,
    /// The mesh endpoint this connection counts for: the one its first mesh request
    /// went to. Counted out when the connection ends.
    pub(crate) mesh_connection: OnceLock<MeshConnection>,
}

impl ConnCtx {
    pub(crate) fn new(
        shared: &Arc<ListenerShared>,
        peer: SocketAddr,
        scheme: &'static str,
    ) -> Arc<ConnCtx> {
        Arc::new(ConnCtx {
            listener: shared.clone(),
            peer,
            forwarded: ForwardedValues::new(peer, shared.port, scheme),
            active: AtomicU64::new(0),
            expired: tokio::sync::Notify::new(),
            mesh_connection: OnceLock::new(),
        })
    }

    /// `http` or `https`.
    #[inline]
    pub(crate) fn scheme(&self) -> &'static str {
        self.forwarded.scheme
    }

    /// Counts this connection for the mesh endpoint `m` unless it counts for one already.
    #[inline]
    pub(crate) fn count_mesh_connection(&self, m: &MeshMetrics) {
        if self.mesh_connection.get().is_none() {
            let _ = self.mesh_connection.get_or_init(|| m.connection());
        }
    }

    /// Counts a request on this connection until the guard drops.
    #[inline]
    pub(crate) fn request_started(&self) -> ActiveRequest<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(&self.active)
    }
}

/// A request counted on its connection while it is being handled.
pub(crate) struct ActiveRequest<'a>(&'a AtomicU64);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_while_it_is_handled() {
        let active = AtomicU64::new(0);
        let first = {
            active.fetch_add(1, Ordering::Relaxed);
            ActiveRequest(&active)
        };
        assert_eq!(active.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(active.load(Ordering::Relaxed), 0);
    }
}
