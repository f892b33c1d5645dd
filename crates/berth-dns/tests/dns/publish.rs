//! Publishing a new snapshot, the metrics, and shutdown.

use std::net::{Ipv4Addr, SocketAddr};

use berth_dns::{DiscoveryRecords, DnsError, DnsOptions};
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::A;
use hickory_client::proto::rr::{RData, RecordType};

use crate::support::{metric, name, query, sample_records, serve, Transport};

fn soa_serial(message: &hickory_client::proto::op::Message) -> u32 {
    match message.name_servers()[0].data() {
        RData::SOA(soa) => soa.serial(),
        other => panic!("expected the zone's SOA, got {other:?}"),
    }
}

#[tokio::test]
async fn a_publish_replaces_the_records_for_the_next_query_and_bumps_the_serial() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    let before = query(s.addr, Transport::Udp, "payments.internal.", RecordType::A).await;
    assert_eq!(before.response_code(), ResponseCode::NXDomain);
    assert_eq!(metric(&s.registry, "berth_dns_records"), 4.0);

    s.server.publish(DiscoveryRecords {
        zones: vec!["internal".into()],
        names: vec![name(5, "payments.internal", &[Ipv4Addr::new(10, 0, 1, 9)])],
    });
    let added = query(s.addr, Transport::Udp, "payments.internal.", RecordType::A).await;
    assert_eq!(added.answers()[0].data(), &RData::A(A::new(10, 0, 1, 9)));
    let removed = query(s.addr, Transport::Tcp, "orders.internal.", RecordType::A).await;
    assert_eq!(
        removed.response_code(),
        ResponseCode::NXDomain,
        "the old names are gone"
    );
    assert!(
        soa_serial(&removed) > soa_serial(&before),
        "the SOA serial grows with each publish"
    );
    assert_eq!(metric(&s.registry, "berth_dns_records"), 1.0);

    s.server.publish(DiscoveryRecords::default());
    let no_zone = query(s.addr, Transport::Udp, "payments.internal.", RecordType::A).await;
    assert_eq!(
        no_zone.response_code(),
        ResponseCode::Refused,
        "without zones, the name is foreign"
    );
}

#[tokio::test]
async fn queries_are_counted_by_type_and_result() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    query(s.addr, Transport::Udp, "orders.internal.", RecordType::A).await;
    query(s.addr, Transport::Tcp, "orders.internal.", RecordType::A).await;
    query(s.addr, Transport::Udp, "web.internal.", RecordType::SRV).await;
    query(s.addr, Transport::Udp, "orders.internal.", RecordType::AAAA).await;
    query(s.addr, Transport::Udp, "gone.internal.", RecordType::A).await;
    query(s.addr, Transport::Udp, "example.com.", RecordType::A).await;
    let count = |labels: &str| metric(&s.registry, &format!("berth_dns_queries_total{{{labels}}}"));
    assert_eq!(count(r#"result="answered",type="A""#), 2.0);
    assert_eq!(count(r#"result="answered",type="SRV""#), 1.0);
    assert_eq!(count(r#"result="answered",type="AAAA""#), 1.0);
    assert_eq!(count(r#"result="nxdomain",type="A""#), 1.0);
    assert_eq!(count(r#"result="refused",type="A""#), 1.0);
    assert_eq!(count(r#"result="forwarded",type="A""#), 0.0);
}

#[tokio::test]
async fn shutdown_closes_every_bound_address_and_refuses_later_binds() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    let second = s
        .server
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    query(s.addr, Transport::Tcp, "orders.internal.", RecordType::A).await;
    s.server.shutdown().await;
    for addr in [s.addr, second] {
        let refused = tokio::net::TcpStream::connect(addr).await;
        assert!(
            refused.is_err(),
            "{addr} still accepts connections after shutdown"
        );
    }
    let err = s
        .server
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::ShutDown), "{err}");
}

#[tokio::test]
async fn binding_an_address_in_use_names_the_address_and_protocol() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    let err = s.server.bind(s.addr).await.unwrap_err();
    match err {
        DnsError::Bind { addr, protocol, .. } => {
            assert_eq!(addr, s.addr);
            assert_eq!(protocol, "udp");
        }
        other => panic!("expected a bind error, got {other}"),
    }
}

#[tokio::test]
async fn dropping_the_server_stops_serving() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    query(s.addr, Transport::Tcp, "orders.internal.", RecordType::A).await;
    drop(s.server);
    // The serving task notices on its own schedule: poll with a deadline.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::net::TcpStream::connect(s.addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still accepts connections 5 s after the server was dropped",
            s.addr
        );
        tokio::task::yield_now().await;
    }
}
