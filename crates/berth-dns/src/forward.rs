//! Relaying a query berth does not answer to upstream DNS servers: UDP first, TCP when
//! the UDP answer is truncated; the first server that answers within the timeout wins.
//!
//! It does not cache, retry a server, or validate DNSSEC: the upstream's answer is
//! returned as is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::LowerQuery;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::Name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The UDP payload size offered to upstream servers (the DNS flag day 2020 value).
const UPSTREAM_UDP_PAYLOAD: u16 = 1232;

/// Asks `upstreams` in order and returns the first answer, `None` when none answered
/// within `timeout` each.
pub(crate) async fn forward(
    query: &LowerQuery,
    recursion_desired: bool,
    checking_disabled: bool,
    upstreams: impl IntoIterator<Item = SocketAddr>,
    timeout: Duration,
) -> Option<Message> {
    let mut message = Message::new();
    message
        .set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(recursion_desired)
        .set_checking_disabled(checking_disabled);
    let mut question = Query::query(Name::from(query.name().clone()), query.query_type());
    question.set_query_class(query.query_class());
    message.add_query(question);
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_UDP_PAYLOAD);
    message.set_edns(edns);
    let bytes = match message.to_vec() {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a query to forward");
            return None;
        }
    };
    for upstream in upstreams {
        match tokio::time::timeout(timeout, ask(upstream, &message, &bytes)).await {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "upstream DNS server failed"),
            Err(_) => {
                tracing::debug!(%upstream, ?timeout, "upstream DNS server did not answer in time")
            }
        }
    }
    None
}

async fn ask(upstream: SocketAddr, query: &Message, bytes: &[u8]) -> std::io::Result<Message> {
    let answer = ask_udp(upstream, query, bytes).await?;
    if answer.truncated() {
        return ask_tcp(upstream, query, bytes).await;
    }
    Ok(answer)
}

fn invalid(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// The reply must answer this query: same id, a response, the same question.
fn answers(reply: &Message, query: &Message) -> bool {
    reply.id() == query.id()
        && reply.message_type() == MessageType::Response
        && reply.queries() == query.queries()
}

async fn ask_udp(upstream: SocketAddr, query: &Message, bytes: &[u8]) -> std::io::Result<Message> {
    let local: IpAddr = if upstream.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((local, 0)).await?;
    // Connected: datagrams from any other address are dropped by the kernel.
    socket.connect(upstream).await?;
    socket.send(bytes).await?;
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buffer).await?;
        match Message::from_vec(&buffer[..n]) {
            Ok(reply) if answers(&reply, query) => return Ok(reply),
            Ok(_) => {
                tracing::debug!(%upstream, "ignored a UDP reply that does not answer the forwarded query")
            }
            Err(e) => tracing::debug!(%upstream, error = %e, "ignored an undecodable UDP reply"),
        }
    }
}

async fn ask_tcp(upstream: SocketAddr, query: &Message, bytes: &[u8]) -> std::io::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    let length =
        u16::try_from(bytes.len()).map_err(|_| invalid("query longer than 65535 bytes"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    loop {
        let length = stream.read_u16().await?;
        let mut buffer = vec![0u8; usize::from(length)];
        stream.read_exact(&mut buffer).await?;
        let reply = Message::from_vec(&buffer).map_err(invalid)?;
        if answers(&reply, query) {
            return Ok(reply);
        }
    }
}
