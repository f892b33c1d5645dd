//! A, SRV, empty answers, NXDOMAIN and REFUSED, over UDP and TCP.

use std::net::Ipv4Addr;

use berth_dns::DnsOptions;
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::{A, SRV};
use hickory_client::proto::rr::{Name, RData, RecordType};

use crate::support::{query, sample_records, serve, BOTH};

fn a_of(message: &hickory_client::proto::op::Message) -> Vec<(Ipv4Addr, u32)> {
    message
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(A(ip)) => Some((*ip, r.ttl())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_and_srv_answers_carry_ttls_and_the_authoritative_flag_over_udp_and_tcp() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    for transport in BOTH {
        let a = query(s.addr, transport, "orders.internal.", RecordType::A).await;
        assert_eq!(a.response_code(), ResponseCode::NoError, "{transport:?}");
        assert!(a.authoritative(), "{transport:?}: authoritative flag");
        assert_eq!(
            a_of(&a),
            vec![
                (Ipv4Addr::new(10, 0, 0, 5), 5),
                (Ipv4Addr::new(10, 0, 0, 6), 5)
            ],
            "{transport:?}"
        );

        let srv = query(s.addr, transport, "web.internal.", RecordType::SRV).await;
        assert_eq!(srv.response_code(), ResponseCode::NoError, "{transport:?}");
        assert!(srv.authoritative());
        assert_eq!(srv.answers().len(), 1, "{transport:?}");
        assert_eq!(srv.answers()[0].ttl(), 10);
        assert_eq!(
            srv.answers()[0].data(),
            &RData::SRV(SRV::new(
                1,
                1,
                32768,
                Name::from_ascii("t1.web.internal.").unwrap()
            )),
            "{transport:?}"
        );
        let additional: Vec<_> = srv
            .additionals()
            .iter()
            .map(|r| (r.name().to_string(), r.data().clone()))
            .collect();
        assert_eq!(
            additional,
            vec![(
                "t1.web.internal.".to_string(),
                RData::A(A::new(192, 0, 2, 10))
            )],
            "{transport:?}: the SRV target's address comes along"
        );

        let target = query(s.addr, transport, "t1.web.internal.", RecordType::A).await;
        assert_eq!(
            a_of(&target),
            vec![(Ipv4Addr::new(192, 0, 2, 10), 10)],
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn names_match_case_insensitively_with_or_without_the_trailing_dot() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    for transport in BOTH {
        for qname in ["ORDERS.Internal.", "Orders.INTERNAL", "orders.internal"] {
            let a = query(s.addr, transport, qname, RecordType::A).await;
            assert_eq!(
                a.response_code(),
                ResponseCode::NoError,
                "{transport:?} {qname}"
            );
            assert_eq!(a_of(&a).len(), 2, "{transport:?} {qname}");
        }
    }
}

#[tokio::test]
async fn a_listed_name_asked_for_another_type_gets_an_empty_noerror_with_the_zone_soa() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    for (qname, qtype) in [
        ("orders.internal.", RecordType::AAAA),
        ("orders.internal.", RecordType::TXT),
        ("web.internal.", RecordType::A),
    ] {
        let m = query(s.addr, crate::support::Transport::Udp, qname, qtype).await;
        assert_eq!(m.response_code(), ResponseCode::NoError, "{qname} {qtype}");
        assert!(m.answers().is_empty(), "{qname} {qtype}: {:?}", m.answers());
        assert!(m.authoritative());
        assert_eq!(
            m.name_servers().len(),
            1,
            "{qname} {qtype}: SOA for negative caching"
        );
        assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
    }
    // The client alias lies outside every zone: empty, without SOA, and never forwarded.
    let m = query(
        s.addr,
        crate::support::Transport::Udp,
        "orders.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty() && m.name_servers().is_empty());
}

#[tokio::test]
async fn an_unlisted_name_in_a_zone_is_nxdomain_with_the_zone_soa() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    for transport in BOTH {
        for qname in ["payments.internal.", "x.orders.internal."] {
            let m = query(s.addr, transport, qname, RecordType::A).await;
            assert_eq!(
                m.response_code(),
                ResponseCode::NXDomain,
                "{transport:?} {qname}"
            );
            assert!(m.authoritative());
            assert!(m.answers().is_empty());
            let soa = &m.name_servers()[0];
            assert_eq!(soa.name(), &Name::from_ascii("internal.").unwrap());
            let RData::SOA(data) = soa.data() else {
                panic!("authority holds the zone's SOA, got {soa:?}")
            };
            assert_eq!(data.mname(), &Name::from_ascii("ns.internal.").unwrap());
            assert_eq!(
                data.minimum(),
                berth_dns::options::DEFAULT_NEGATIVE_TTL_SECONDS
            );
            assert_eq!(soa.ttl(), berth_dns::options::DEFAULT_NEGATIVE_TTL_SECONDS);
        }
    }
    // The zone apex exists: its SOA is an answer.
    let apex = query(
        s.addr,
        crate::support::Transport::Udp,
        "internal.",
        RecordType::SOA,
    )
    .await;
    assert_eq!(apex.response_code(), ResponseCode::NoError);
    assert_eq!(apex.answers().len(), 1);
}

#[tokio::test]
async fn names_outside_every_zone_are_refused_by_default() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    for transport in BOTH {
        let m = query(s.addr, transport, "example.com.", RecordType::A).await;
        assert_eq!(m.response_code(), ResponseCode::Refused, "{transport:?}");
        assert!(m.answers().is_empty());
    }
}

#[tokio::test]
async fn an_answer_too_big_for_udp_is_truncated_and_whole_over_tcp() {
    let ips: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(10, 0, 2, i)).collect();
    let records = berth_dns::DiscoveryRecords {
        zones: vec!["internal".into()],
        names: vec![crate::support::name(5, "big.internal", &ips)],
    };
    let s = serve(DnsOptions::default(), records).await;
    let mut udp = crate::support::client(s.addr, crate::support::Transport::Udp).await;
    udp.disable_edns();
    let qname = Name::from_ascii("big.internal.").unwrap();
    use hickory_client::client::ClientHandle;
    let small = udp
        .query(
            qname.clone(),
            hickory_client::proto::rr::DNSClass::IN,
            RecordType::A,
        )
        .await
        .unwrap();
    assert!(small.truncated(), "100 A records do not fit in 512 bytes");
    assert!(small.answers().len() < 100);
    let whole = query(
        s.addr,
        crate::support::Transport::Tcp,
        "big.internal.",
        RecordType::A,
    )
    .await;
    assert!(!whole.truncated());
    assert_eq!(a_of(&whole).len(), 100);
}

#[tokio::test]
async fn a_message_without_one_question_is_formerr_and_another_class_is_refused() {
    use hickory_client::proto::op::{Message, MessageType, OpCode};
    let s = serve(DnsOptions::default(), sample_records()).await;
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    socket.connect(s.addr).await.unwrap();
    let mut empty = Message::new();
    empty
        .set_id(7)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query);
    socket.send(&empty.to_vec().unwrap()).await.unwrap();
    let mut buffer = [0u8; 512];
    let n = socket.recv(&mut buffer).await.unwrap();
    let reply = Message::from_vec(&buffer[..n]).unwrap();
    assert_eq!(
        (reply.id(), reply.response_code()),
        (7, ResponseCode::FormErr)
    );

    use hickory_client::client::ClientHandle;
    let mut client = crate::support::client(s.addr, crate::support::Transport::Udp).await;
    let chaos = client
        .query(
            Name::from_ascii("orders.internal.").unwrap(),
            hickory_client::proto::rr::DNSClass::CH,
            RecordType::A,
        )
        .await
        .unwrap();
    assert_eq!(chaos.response_code(), ResponseCode::Refused);
    assert_eq!(
        crate::support::metric(
            &s.registry,
            r#"berth_dns_queries_total{result="formerr",type="OTHER"}"#
        ),
        1.0
    );
}
