//! The data plane's DNS: its address rules, the records route and its metrics.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use berth_model::discovery::DnsName;
use hyper::Method;

use super::*;
use crate::dataplane::metric_families::from_prometheus;
use crate::dataplane::protocol;

/// Options serving DNS on loopback (port chosen by the system), refusing other names.
pub(crate) fn loopback_options(listen: &[&str]) -> DataPlaneOptions {
    DataPlaneOptions {
        listen_ip: "127.0.0.1".parse().unwrap(),
        mesh_ips: vec!["127.0.0.1".parse().unwrap()],
        mesh_inbound_addr: "127.0.0.1:0".parse().unwrap(),
        data_plane_threads: 0,
        dns: DataPlaneDnsOptions {
            listen: listen.iter().map(|l| l.to_string()).collect(),
            fallback: "refuse".into(),
            gateway: None,
        },
    }
}

/// `orders.internal` answering `ip`, and the client alias `orders`.
pub(crate) fn records(ip: Ipv4Addr) -> DiscoveryRecords {
    DiscoveryRecords {
        zones: vec!["internal".into()],
        names: vec![
            DnsName {
                name: "orders.internal".into(),
                ttl: 5,
                node_proxy: false,
                a: vec![ip],
                srv: Vec::new(),
            },
            DnsName {
                name: "orders".into(),
                ttl: 5,
                node_proxy: true,
                a: Vec::new(),
                srv: Vec::new(),
            },
        ],
    }
}

/// Serves `routes(dns)` on `<dir>/dataplane.sock` until the returned sender turns true.
pub(crate) fn serve_routes(dir: &Path, dns: Arc<NodeDns>) -> tokio::sync::watch::Sender<bool> {
    let socket = tokio::net::UnixListener::bind(dir.join("dataplane.sock")).unwrap();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        axum::serve(socket, routes(dns))
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    stop
}

/// The A records `server` answers for `name` (one UDP query, as a stub resolver asks).
pub(crate) async fn query_a(server: SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query, server).await.unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("a DNS answer within 5 s")
        .unwrap();
    let answer = &buf[..n];
    assert_eq!(&answer[..2], &[0x12, 0x34], "the answer's id");
    let count = u16::from_be_bytes([answer[6], answer[7]]);
    // Past the header and the question (echoed as sent).
    let mut at = query.len();
    let mut out = Vec::new();
    for _ in 0..count {
        // The owner name: labels, ending with a zero or a compression pointer.
        loop {
            let len = answer[at];
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + len as usize;
            if len == 0 {
                break;
            }
        }
        let kind = u16::from_be_bytes([answer[at], answer[at + 1]]);
        let rdlen = u16::from_be_bytes([answer[at + 8], answer[at + 9]]) as usize;
        at += 10;
        if kind == 1 && rdlen == 4 {
            out.push(Ipv4Addr::new(
                answer[at],
                answer[at + 1],
                answer[at + 2],
                answer[at + 3],
            ));
        }
        at += rdlen;
    }
    out
}

#[tokio::test]
async fn published_records_answer_and_a_body_that_does_not_parse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let (dns, bound) = serve(&loopback_options(&["127.0.0.1:0"]), &registry, Vec::new())
        .await
        .unwrap();
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert_ne!(bound[0].port(), 0, "the port is resolved");
    let _stop = serve_routes(dir.path(), dns.clone());
    let socket = dir.path().join("dataplane.sock");
    let ip = Ipv4Addr::new(10, 0, 0, 7);

    let body = serde_json::to_vec(&records(ip)).unwrap();
    let (status, _) = protocol::call(
        &socket,
        Method::PUT,
        RECORDS_ROUTE,
        Some(body),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(query_a(bound[0], "orders.internal").await, vec![ip]);
    // The client alias answers with the mesh address the query arrived on.
    assert_eq!(query_a(bound[0], "orders").await, vec![Ipv4Addr::LOCALHOST]);

    let (status, answer) = protocol::call(
        &socket,
        Method::PUT,
        RECORDS_ROUTE,
        Some(b"{\"zones\": 7}".to_vec()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: ErrorBody = serde_json::from_slice(&answer).unwrap();
    assert!(
        error.error.contains("the discovery records do not parse"),
        "{}",
        error.error
    );
    assert_eq!(
        query_a(bound[0], "orders.internal").await,
        vec![ip],
        "the previous records keep answering"
    );

    // The DNS families travel with the proxy's over `/v1/metrics`.
    let families = from_prometheus(&registry.gather());
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"berth_dns_records"), "{names:?}");
    assert!(names.contains(&"berth_dns_queries_total"), "{names:?}");
    dns.server.shutdown().await;
}

#[tokio::test]
async fn the_addresses_follow_the_rules_and_messages_of_the_server() {
    let registry = prometheus::Registry::new();
    let e = serve(&loopback_options(&["0.0.0.0:53"]), &registry, Vec::new())
        .await
        .err()
        .expect("an unspecified address is refused");
    assert!(
        format!("{e:#}").contains("--dns-listen 0.0.0.0:53: give a specific address"),
        "{e:#}"
    );
    let e = serve(&loopback_options(&["localhost"]), &registry, Vec::new())
        .await
        .err()
        .expect("a name is refused");
    assert!(
        format!("{e:#}").contains("--dns-listen \"localhost\": expected IP:PORT or none"),
        "{e:#}"
    );
    let (_, bound) = serve(&loopback_options(&["none"]), &registry, Vec::new())
        .await
        .unwrap();
    assert!(bound.is_empty(), "{bound:?}");
    // An address given explicitly must bind: one taken already stops the data plane.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = serve(&loopback_options(&[addr.as_str()]), &registry, Vec::new())
        .await
        .err()
        .expect("a taken address is an error");
    assert!(
        format!("{e:#}").contains(&format!("--dns-listen {addr}")),
        "{e:#}"
    );
}

#[test]
fn a_data_plane_of_protocol_1_is_missing_the_dns() {
    let identity = |protocol| Identity {
        protocol,
        pid: 1,
        version: "0.1.0".into(),
        options: loopback_options(&[]),
        mesh_inbound: "127.0.0.1:1".parse().unwrap(),
        dns_addrs: Vec::new(),
        executable: None,
    };
    let why = missing_from(&identity(1)).expect("protocol 1 serves no DNS");
    assert_eq!(why, "no discovery DNS (protocol 1, DNS from protocol 2)");
    assert_eq!(missing_from(&identity(DNS_PROTOCOL)), None);
    assert_eq!(missing_from(&identity(DNS_PROTOCOL + 1)), None);
}
