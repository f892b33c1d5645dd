//! The handover's wire (descriptors over a socketpair) and its failure cases, in one
//! process: the descriptors are real copies, as another process would get them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use berth_proxy::{Proxy, ProxyOptions};

use super::*;
use crate::dataplane::upgrade::give;

const LISTENER: &str = "arn:listener/web";

fn state(sockets: Vec<HandedSocket>) -> HandoverState {
    HandoverState {
        from_pid: 7,
        sockets,
        config: None,
        statuses: Vec::new(),
        discovery_records: None,
    }
}

fn listener_entry(addr: SocketAddr) -> HandedSocket {
    HandedSocket {
        what: SocketKind::Listener,
        key: Some(LISTENER.into()),
        address: Some(addr),
    }
}

#[test]
fn a_listener_passed_over_a_socketpair_accepts_connections_queued_before_and_after() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Queued before the handover: nobody has accepted it yet.
    let mut before = TcpStream::connect(addr).unwrap();
    before.write_all(b"before").unwrap();
    before.shutdown(std::net::Shutdown::Write).unwrap();

    let (mut old, mut new) = UnixStream::pair().unwrap();
    let sent = state(vec![listener_entry(addr)]);
    let sending = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            send_state(&mut old, &sent, &[listener.as_fd()]).unwrap();
            // The sender's own descriptor closes: the socket lives on in the receiver.
            drop(listener);
            wait_ready(&mut old, Duration::from_secs(10))
        })
    };
    let (got, mut fds) = receive_state(&mut new).unwrap();
    assert_eq!(got, sent);
    assert_eq!(fds.len(), 1);
    send_ready(&mut new, 42).unwrap();
    assert_eq!(sending.join().unwrap().unwrap(), 42);

    let inherited = std::net::TcpListener::from(fds.pop().unwrap());
    assert_eq!(inherited.local_addr().unwrap(), addr);
    // Accepted in order: the queued connection first, then one made after the handover.
    let after_client = std::thread::spawn(move || {
        let mut after = TcpStream::connect(addr).expect("not refused after the handover");
        after.write_all(b"after").unwrap();
    });
    for expected in ["before", "after"] {
        let (mut conn, _) = inherited.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        assert_eq!(got, expected);
    }
    after_client.join().unwrap();
}

#[test]
fn a_state_without_all_its_descriptors_is_an_error() {
    let (mut old, mut new) = UnixStream::pair().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Two sockets announced, one sent, then the sender goes away.
    let sent = state(vec![listener_entry(addr), listener_entry(addr)]);
    assert!(
        send_state(&mut old, &sent, &[listener.as_fd()]).is_err(),
        "the sender checks its own count"
    );
    let body = serde_json::to_vec(&sent).unwrap();
    old.write_all(&(body.len() as u64).to_be_bytes()).unwrap();
    old.write_all(&body).unwrap();
    drop(old);
    let e = receive_state(&mut new).unwrap_err();
    assert!(
        format!("{e:#}").contains("ended before the descriptor"),
        "{e:#}"
    );
}

#[test]
fn a_new_side_that_closes_without_ready_fails_the_wait() {
    let (mut old, new) = UnixStream::pair().unwrap();
    drop(new);
    let e = wait_ready(&mut old, Duration::from_secs(5)).unwrap_err();
    assert!(format!("{e:#}").contains("before it was ready"), "{e:#}");
    let (mut old, _new) = UnixStream::pair().unwrap();
    let e = wait_ready(&mut old, Duration::from_millis(50)).unwrap_err();
    assert!(format!("{e:#}").contains("not ready within"), "{e:#}");
}

fn proxy() -> Arc<Proxy> {
    Proxy::new(ProxyOptions {
        bind_ip: "127.0.0.1".parse().unwrap(),
        mesh_ips: Vec::new(),
        registry: prometheus::Registry::new(),
        data_plane_threads: 0,
    })
    .unwrap()
}

fn fixed_config() -> ProxyConfig {
    serde_json::from_value(serde_json::json!({
        "loadBalancers": [{
            "loadBalancerName": "web",
            "listeners": [{
                "port": 0, "protocol": "HTTP", "listenerArn": LISTENER,
                "defaultActions": [{"type": "fixed-response", "fixedResponseConfig":
                    {"statusCode": "200", "contentType": "text/plain", "messageBody": "served"}}],
            }]
        }],
        "targetGroups": [],
    }))
    .unwrap()
}

async fn served(addr: SocketAddr) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(mut c) = TcpStream::connect(addr) else {
            return false;
        };
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200") && out.ends_with("served")
    })
    .await
    .unwrap()
}

/// The running side gives to a "new process" that receives everything and then dies
/// (closes the handover without `ready`): the give fails, and the running proxy still
/// serves its listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_dying_mid_handover_leaves_the_old_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    let old = proxy();
    let addr = old.apply(fixed_config()).await.unwrap()[LISTENER];
    let lock = std::fs::File::create(dir.path().join("lock")).unwrap();
    let lock = lock.as_fd().try_clone_to_owned().unwrap();
    let path = dir.path().join("handover.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let dying = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let (state, fds) = receive_state(&mut stream).unwrap();
        // Everything arrived, then the process is gone: its descriptors close with it.
        drop(fds);
        state
    });
    let request = HandoverRequest {
        socket: path,
        pid: 0,
    };
    let e = give(&old, None, Some(fixed_config()), &lock, &request)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("before it was ready"), "{e:#}");
    let state = dying.join().unwrap();
    assert_eq!(state.config, Some(fixed_config()));
    let kinds: Vec<SocketKind> = state.sockets.iter().map(|s| s.what).collect();
    assert_eq!(kinds, vec![SocketKind::Listener, SocketKind::Lock]);
    assert_eq!(state.sockets[0].address, Some(addr));
    assert!(served(addr).await, "the old proxy serves on");
    old.shutdown().await;
}

/// The whole exchange between two proxies: the new one serves the same port with the
/// handed configuration, and keeps serving once the old one shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_handover_moves_the_listener_to_the_new_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let old = proxy();
    let addr = old.apply(fixed_config()).await.unwrap()[LISTENER];
    let lock = std::fs::File::create(dir.path().join("lock")).unwrap();
    let lock = lock.as_fd().try_clone_to_owned().unwrap();
    let path = dir.path().join("handover.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let new = proxy();
    let receiving = {
        let new = new.clone();
        tokio::spawn(async move {
            let (mut stream, _) = tokio::task::spawn_blocking(move || listener.accept())
                .await
                .unwrap()
                .unwrap();
            let (state, fds, stream) = tokio::task::spawn_blocking(move || {
                let (s, f) = receive_state(&mut stream).unwrap();
                (s, f, stream)
            })
            .await
            .unwrap();
            let mut sockets = HashMap::new();
            for (s, fd) in state.sockets.iter().zip(fds) {
                if s.what == SocketKind::Listener {
                    sockets.insert(s.key.clone().unwrap(), std::net::TcpListener::from(fd));
                }
            }
            new.adopt_listeners(sockets).await;
            let bound = new.apply(state.config.clone().unwrap()).await.unwrap();
            let mut stream = stream;
            send_ready(&mut stream, 4242).unwrap();
            bound[LISTENER]
        })
    };
    let request = HandoverRequest {
        socket: path,
        pid: 4242,
    };
    let new_pid = give(&old, None, Some(fixed_config()), &lock, &request)
        .await
        .unwrap();
    assert_eq!(new_pid, 4242);
    assert_eq!(receiving.await.unwrap(), addr, "the same port");
    old.shutdown().await;
    for _ in 0..5 {
        assert!(served(addr).await, "the new proxy serves the port");
    }
    new.shutdown().await;
}

/// The discovery DNS's sockets and records travel with the listeners: the new side
/// answers the same names on the same address, before and after the old one stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_sockets_and_records_move_to_the_new_process() {
    use crate::dataplane::dns::tests::{loopback_options, query_a, records};
    use crate::dataplane::dns::{serve as serve_dns, NodeDns};
    use std::net::Ipv4Addr;

    let dir = tempfile::tempdir().unwrap();
    let old = proxy();
    let (old_dns, bound) = serve_dns(
        &loopback_options(&["127.0.0.1:0"]),
        &prometheus::Registry::new(),
        Vec::new(),
    )
    .await
    .unwrap();
    let dns_addr = bound[0];
    let ip = Ipv4Addr::new(10, 0, 0, 9);
    old_dns.publish(records(ip));
    let lock = std::fs::File::create(dir.path().join("lock")).unwrap();
    let lock = lock.as_fd().try_clone_to_owned().unwrap();
    let path = dir.path().join("handover.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let receiving = tokio::spawn(async move {
        let (mut stream, _) = tokio::task::spawn_blocking(move || listener.accept())
            .await
            .unwrap()
            .unwrap();
        let (state, fds, mut stream) = tokio::task::spawn_blocking(move || {
            let (s, f) = receive_state(&mut stream).unwrap();
            (s, f, stream)
        })
        .await
        .unwrap();
        let mut udp = None;
        let mut tcp = None;
        for (s, fd) in state.sockets.iter().zip(fds) {
            match s.what {
                SocketKind::DnsUdp => udp = Some(std::net::UdpSocket::from(fd)),
                SocketKind::DnsTcp => tcp = Some(std::net::TcpListener::from(fd)),
                _ => {}
            }
        }
        let handed = vec![berth_dns::DnsSockets {
            udp: udp.expect("the DNS UDP socket"),
            tcp: tcp.expect("the DNS TCP listener"),
        }];
        let listen = dns_addr.to_string();
        let (new_dns, bound) = serve_dns(
            &loopback_options(&[listen.as_str()]),
            &prometheus::Registry::new(),
            handed,
        )
        .await
        .unwrap();
        new_dns.publish(state.discovery_records.expect("the records travel"));
        send_ready(&mut stream, 4343).unwrap();
        (new_dns, bound)
    });
    let request = HandoverRequest {
        socket: path,
        pid: 4343,
    };
    let new_pid = give(&old, Some(&old_dns), None, &lock, &request)
        .await
        .unwrap();
    assert_eq!(new_pid, 4343);
    let (new_dns, new_bound): (Arc<NodeDns>, _) = receiving.await.unwrap();
    assert_eq!(new_bound, vec![dns_addr], "served on the handed sockets");
    old_dns.server.shutdown().await;
    old.shutdown().await;
    for _ in 0..5 {
        assert_eq!(query_a(dns_addr, "orders.internal").await, vec![ip]);
    }
    new_dns.server.shutdown().await;
}
