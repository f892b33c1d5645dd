//! A server with sample records, and one-shot queries over UDP or TCP.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use berth_dns::{DnsOptions, DnsServer};
use berth_model::discovery::{DiscoveryRecords, DnsName, SrvRecord};
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::op::Message;
use hickory_client::proto::rr::{DNSClass, Name, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::tcp::TcpClientStream;
use hickory_client::proto::udp::UdpClientStream;
use prometheus::Registry;

#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Udp,
    Tcp,
}

pub const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];

pub fn name(ttl: u32, name: &str, a: &[Ipv4Addr]) -> DnsName {
    DnsName {
        name: name.into(),
        ttl,
        node_proxy: false,
        a: a.to_vec(),
        srv: vec![],
    }
}

/// `internal`: orders (awsvpc, two tasks, TTL 5), web (bridge, one SRV target, TTL
/// 10), and the client alias `orders` outside the zone.
pub fn sample_records() -> DiscoveryRecords {
    DiscoveryRecords {
        zones: vec!["internal".into()],
        names: vec![
            name(
                5,
                "orders.internal",
                &[Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)],
            ),
            DnsName {
                srv: vec![SrvRecord {
                    priority: 1,
                    weight: 1,
                    port: 32768,
                    target: "t1.web.internal".into(),
                }],
                ..name(10, "web.internal", &[])
            },
            name(10, "t1.web.internal", &[Ipv4Addr::new(192, 0, 2, 10)]),
            DnsName {
                node_proxy: true,
                ..name(5, "orders", &[])
            },
        ],
    }
}

pub struct TestServer {
    pub server: Arc<DnsServer>,
    pub addr: SocketAddr,
    pub registry: Registry,
}

/// A server on 127.0.0.1 (port 0) with `records` published.
pub async fn serve(options: DnsOptions, records: DiscoveryRecords) -> TestServer {
    let registry = Registry::new();
    let server = DnsServer::new(options, &registry);
    server.publish(records);
    let addr = server
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind on loopback");
    TestServer {
        server,
        addr,
        registry,
    }
}

pub async fn client(addr: SocketAddr, transport: Transport) -> Client {
    let provider = TokioRuntimeProvider::new();
    match transport {
        Transport::Udp => {
            let (client, background) =
                Client::connect(UdpClientStream::builder(addr, provider).build())
                    .await
                    .expect("UDP client");
            tokio::spawn(background);
            client
        }
        Transport::Tcp => {
            let (stream, sender) = TcpClientStream::new(addr, None, None, provider);
            let (client, background) = Client::new(stream, sender, None)
                .await
                .expect("TCP client connects");
            tokio::spawn(background);
            client
        }
    }
}

pub async fn query(
    addr: SocketAddr,
    transport: Transport,
    qname: &str,
    qtype: RecordType,
) -> Message {
    let mut client = client(addr, transport).await;
    let qname = Name::from_ascii(qname).expect("valid query name");
    client
        .query(qname, DNSClass::IN, qtype)
        .await
        .unwrap_or_else(|e| panic!("{transport:?} query for {qtype} failed: {e}"))
        .into_message()
}

/// The value of one sample in the registry's text exposition, 0 when absent.
pub fn metric(registry: &Registry, sample: &str) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("metrics encode");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|value| value.parse().expect("a number"))
        .unwrap_or(0.0)
}
