//! NLB-style stream listeners (TCP, and TLS terminated here): each client connection is
//! forwarded as a byte stream to one target of the listener's target group, optionally
//! preceded by a proxy protocol v2 header carrying the client's address.
//!
//! Targets are tried through the shared request engine ([`crate::attempt`]): a target
//! that refuses the connection is ejected and the next one tried. Once bytes flow there
//! is no retry. It does not accept connections ([`crate::listener`] does).
//!
//! Mesh TCP listeners forward the same way; theirs also close a connection that was
//! quiet for the listener's idle timeout, and count it for their mesh endpoint.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::attempt::{Attempts, Failure, Verdict};
use crate::clock::Clock;
use crate::context::ListenerShared;
use crate::group::GroupRuntime;
use crate::hyper_path::IdleIo;
use crate::pool::CONNECT_TIMEOUT;
use crate::rules::CompiledAction;
use crate::splice::splice;
use crate::sticky::Affinity;

/// The proxy protocol v2 header for a TCP connection from `src` to `dst`.
pub(crate) fn proxy_v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    let (src_ip, dst_ip) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => (
            IpAddr::V6(match s {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            }),
            IpAddr::V6(match d {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            }),
        ),
    };
    match (src_ip, dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.push(0x11);
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.push(0x21);
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
        }
        _ => unreachable!("both addresses are of one family"),
    }
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}

fn group_for(shared: &ListenerShared) -> Option<Arc<GroupRuntime>> {
    match &shared.routes.load().rules.default {
        CompiledAction::Forward(f) => f
            .groups
            .iter()
            .find(|g| g.weight > 0)
            .map(|g| g.group.clone()),
        _ => None,
    }
}

/// Forwards one client connection. `local` is the listener address the client reached.
pub(crate) async fn forward<C>(
    mut client: C,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<ListenerShared>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Some(group) = group_for(&shared) else {
        return;
    };
    let _mesh_connection = group.mesh.as_ref().map(|m| m.metrics.connection());
    let settings = group.settings.load_full();
    let affinity = Affinity::of_connection(settings.stickiness.as_ref(), &group, peer.ip());
    let mut attempts = Attempts::start(&group, affinity.preferred, false);
    loop {
        let Ok(in_flight) = attempts.next() else {
            return;
        };
        let target = in_flight.target();
        let mut upstream = match target.pool.connect_raw(CONNECT_TIMEOUT, peer.ip()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                match attempts.failed(target, false, Failure::Connect) {
                    Verdict::Retry => continue,
                    Verdict::Answer(_) => return,
                }
            }
        };
        attempts.connected(target);
        if settings.proxy_protocol_v2
            && upstream
                .write_all(&proxy_v2_header(peer, local))
                .await
                .is_err()
        {
            return;
        }
        let copied = match shared.routes.load().stream_idle_timeout {
            None => splice(&mut client, &mut upstream).await,
            Some(idle) => copy_until_idle(&mut client, &mut upstream, idle, &shared.clock).await,
        };
        if let Ok((up, down)) = copied {
            shared.metrics.processed_bytes.inc_by(up + down);
            if let Some(m) = &group.mesh {
                m.metrics.processed_bytes.inc_by(up + down);
            }
        }
        drop(in_flight);
        return;
    }
}

/// Copies both ways ([`splice`]) until either side ends or no byte moved
/// in either direction for `idle`; returns the bytes read from `a` and from `b`.
async fn copy_until_idle<A, B>(
    a: &mut A,
    b: &mut B,
    idle: Duration,
    clock: &Clock,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(clock.now_ms()));
    let mut a = Counted::new(IdleIo::new(a, last.clone(), clock.clone()));
    let mut b = Counted::new(IdleIo::new(b, last.clone(), clock.clone()));
    let idle_ms = idle.as_millis() as u64;
    let mut deadline = Instant::now() + idle;
    {
        let copy = splice(&mut a, &mut b);
        tokio::pin!(copy);
        loop {
            tokio::select! {
                r = &mut copy => return r,
                _ = tokio::time::sleep_until(deadline) => {
                    let quiet = clock.now_ms().saturating_sub(last.load(Ordering::Relaxed));
                    if quiet >= idle_ms {
                        break;
                    }
                    deadline = Instant::now() + Duration::from_millis(idle_ms - quiet);
                }
            }
        }
    }
    Ok((a.read, b.read))
}

/// A stream that counts the bytes read from it.
struct Counted<T> {
    inner: T,
    read: u64,
}

impl<T> Counted<T> {
    fn new(inner: T) -> Counted<T> {
        Counted { inner, read: 0 }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut me.inner).poll_read(cx, buf);
        me.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_v2_header_layout() {
        let h = proxy_v2_header(
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[10, 0, 0, 1]);
        assert_eq!(&h[20..24], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 5000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 80);
        assert_eq!(h.len(), 28);
        let h6 = proxy_v2_header("[::1]:1".parse().unwrap(), "[::2]:2".parse().unwrap());
        assert_eq!(h6[13], 0x21);
        assert_eq!(h6.len(), 16 + 36);
    }
}
