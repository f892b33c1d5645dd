//! Names outside berth's zones relayed to upstream servers (here: another DnsServer).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use berth_dns::{DiscoveryRecords, DnsOptions, Fallback};
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::A;
use hickory_client::proto::rr::{RData, RecordType};
use tokio::net::UdpSocket;

use crate::support::{metric, name, query, sample_records, serve, BOTH};

fn upstream_records() -> DiscoveryRecords {
    DiscoveryRecords {
        zones: vec!["example".into()],
        names: vec![name(30, "www.example", &[Ipv4Addr::new(198, 51, 100, 7)])],
    }
}

fn forwarding_to(upstreams: Vec<SocketAddr>) -> DnsOptions {
    DnsOptions {
        fallback: Fallback::Forward(upstreams),
        forward_timeout: Duration::from_millis(300),
        ..DnsOptions::default()
    }
}

#[tokio::test]
async fn foreign_names_are_relayed_to_the_first_upstream_that_answers() {
    let upstream = serve(DnsOptions::default(), upstream_records()).await;
    // Bound and never read: it answers nothing, so the next upstream is asked.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let s = serve(
        forwarding_to(vec![silent.local_addr().unwrap(), upstream.addr]),
        sample_records(),
    )
    .await;
    for transport in BOTH {
        let m = query(s.addr, transport, "www.example.", RecordType::A).await;
        assert_eq!(m.response_code(), ResponseCode::NoError, "{transport:?}");
        assert_eq!(m.answers().len(), 1, "{transport:?}");
        assert_eq!(m.answers()[0].data(), &RData::A(A::new(198, 51, 100, 7)));
        assert_eq!(m.answers()[0].ttl(), 30, "the upstream's TTL");
        assert!(m.authoritative(), "the upstream's authoritative flag");

        let missing = query(s.addr, transport, "nope.example.", RecordType::A).await;
        assert_eq!(
            missing.response_code(),
            ResponseCode::NXDomain,
            "{transport:?}: the upstream's NXDOMAIN"
        );
        assert_eq!(missing.name_servers()[0].record_type(), RecordType::SOA);
    }
    // berth's own names are still answered locally.
    let own = query(
        s.addr,
        crate::support::Transport::Udp,
        "orders.internal.",
        RecordType::A,
    )
    .await;
    assert_eq!(own.answers().len(), 2);
    assert_eq!(
        metric(
            &s.registry,
            r#"berth_dns_queries_total{result="forwarded",type="A"}"#
        ),
        4.0
    );
    assert_eq!(
        metric(
            &upstream.registry,
            r#"berth_dns_queries_total{result="answered",type="A"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn servfail_when_no_upstream_answers() {
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let s = serve(
        forwarding_to(vec![silent.local_addr().unwrap()]),
        sample_records(),
    )
    .await;
    let m = query(
        s.addr,
        crate::support::Transport::Udp,
        "www.example.",
        RecordType::A,
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert_eq!(
        metric(
            &s.registry,
            r#"berth_dns_queries_total{result="servfail",type="A"}"#
        ),
        1.0
    );
}
