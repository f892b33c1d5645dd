//! Client aliases answer with the node proxy's address the query arrived on.

use std::net::{Ipv4Addr, SocketAddr};

use berth_dns::{DnsOptions, DnsServer};
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::A;
use hickory_client::proto::rr::{RData, RecordType};

use crate::support::{query, sample_records, serve, Transport, BOTH};

const SECOND_LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[tokio::test]
async fn each_bound_address_answers_a_client_alias_with_its_own_ip() {
    let options = DnsOptions {
        node_proxy_ips: vec![Ipv4Addr::LOCALHOST, SECOND_LOOPBACK],
        ..DnsOptions::default()
    };
    let server = DnsServer::new(options, &prometheus::Registry::new());
    server.publish(sample_records());
    let first = server
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let second = server
        .bind(SocketAddr::from((SECOND_LOOPBACK, 0)))
        .await
        .expect("127.0.0.2 binds on Linux (all of 127.0.0.0/8 is loopback)");
    assert_eq!(server.local_addrs(), vec![first, second]);
    for transport in BOTH {
        for (addr, ip) in [(first, Ipv4Addr::LOCALHOST), (second, SECOND_LOOPBACK)] {
            let m = query(addr, transport, "orders.", RecordType::A).await;
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert_eq!(m.answers().len(), 1, "{transport:?} via {addr}");
            assert_eq!(
                m.answers()[0].data(),
                &RData::A(A(ip)),
                "{transport:?} via {addr}"
            );
            assert_eq!(m.answers()[0].ttl(), 5);
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_query_arriving_elsewhere_gets_the_first_proxy_address_and_none_configured_gets_nothing()
{
    let elsewhere = Ipv4Addr::new(10, 1, 1, 1);
    let options = DnsOptions {
        node_proxy_ips: vec![elsewhere, SECOND_LOOPBACK],
        ..DnsOptions::default()
    };
    let s = serve(options, sample_records()).await;
    let m = query(s.addr, Transport::Udp, "orders.", RecordType::A).await;
    assert_eq!(m.answers()[0].data(), &RData::A(A(elsewhere)));

    let s = serve(DnsOptions::default(), sample_records()).await;
    let m = query(s.addr, Transport::Udp, "orders.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty(), "{:?}", m.answers());
}
