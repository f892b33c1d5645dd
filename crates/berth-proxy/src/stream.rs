//! NLB-style stream listeners (TCP, and TLS terminated here): each client connection is
//! forwarded as a byte stream to one target of the listener's target group, optionally
//! preceded by a proxy protocol v2 header carrying the client's address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::group::{GroupRuntime, Stickiness};
use crate::http::{ListenerShared, CONNECT_TIMEOUT};
use crate::rules::CompiledAction;

const MAX_ATTEMPTS: usize = 3;

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
    let settings = group.settings.load_full();
    let preferred = match settings.stickiness {
        Some(Stickiness::SourceIp) => group.target_by_hash(hash_ip(peer.ip())),
        _ => None,
    };
    let mut exclude = Vec::new();
    group.deposit_retry_budget();
    for attempt in 0..MAX_ATTEMPTS {
        let Some(in_flight) = group.pick(&exclude, preferred) else {
            return;
        };
        if attempt > 0 {
            if !group.take_retry() {
                return;
            }
            group.metrics.retries.inc();
        }
        let target = in_flight.target().clone();
        let mut upstream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr)).await {
                Ok(Ok(s)) => s,
                _ => {
                    target.connect_failed();
                    exclude.push(target.addr);
                    continue;
                }
            };
        target.connect_succeeded();
        target.metrics.requests.inc();
        let _ = upstream.set_nodelay(true);
        if settings.proxy_protocol_v2
            && upstream
                .write_all(&proxy_v2_header(peer, local))
                .await
                .is_err()
        {
            return;
        }
        if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            shared.metrics.processed_bytes.inc_by(up + down);
        }
        drop(in_flight);
        return;
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
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
