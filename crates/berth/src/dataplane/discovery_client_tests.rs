//! The server's discovery client against the records route on a socket of a temporary
//! directory.

use std::net::Ipv4Addr;
use std::time::Duration;

use berth_control::Discovery;

use super::*;
use crate::dataplane::dns::serve;
use crate::dataplane::dns::tests::{loopback_options, query_a, records, serve_routes};

/// Waits (bounded) until `server` answers `name` with `want`: the client sends in the
/// background.
async fn wait_for_answer(server: std::net::SocketAddr, name: &str, want: Vec<Ipv4Addr>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = query_a(server, name).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {got:?}, not {want:?}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn published_records_reach_the_data_plane() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let (dns, bound) = serve(&loopback_options(&["127.0.0.1:0"]), &registry, Vec::new())
        .await
        .unwrap();
    let _stop = serve_routes(dir.path(), dns.clone());
    let client = RemoteDiscovery::start(&dir.path().join("dataplane.sock"));
    let first = Ipv4Addr::new(10, 0, 0, 1);
    client.publish(records(first));
    wait_for_answer(bound[0], "orders.internal", vec![first]).await;
    let second = Ipv4Addr::new(10, 0, 0, 2);
    client.publish(records(second));
    wait_for_answer(bound[0], "orders.internal", vec![second]).await;
    dns.server.shutdown().await;
}

#[tokio::test]
async fn the_latest_records_reach_a_data_plane_that_answers_late() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let (dns, bound) = serve(&loopback_options(&["127.0.0.1:0"]), &registry, Vec::new())
        .await
        .unwrap();
    // Nothing answers on the socket yet: both sets wait, the newer replacing the older.
    let client = RemoteDiscovery::start(&dir.path().join("dataplane.sock"));
    client.publish(records(Ipv4Addr::new(10, 0, 0, 1)));
    client.publish(records(Ipv4Addr::new(10, 0, 0, 2)));
    assert!(
        query_a(bound[0], "orders.internal").await.is_empty(),
        "no records before the data plane answers"
    );
    let _stop = serve_routes(dir.path(), dns.clone());
    wait_for_answer(
        bound[0],
        "orders.internal",
        vec![Ipv4Addr::new(10, 0, 0, 2)],
    )
    .await;
    dns.server.shutdown().await;
}
