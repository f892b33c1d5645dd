//! Answering one query: hickory-server hands each decoded request to a [`QueryHandler`],
//! which looks the name up in the current snapshot (no lock: one arc-swap load) and
//! sends the answer, NXDOMAIN, REFUSED, or the upstream's answer.
//!
//! It does not bind sockets or frame messages (hickory-server's `ServerFuture` does).
//! [`Shared`] is the state every handler reads, made and updated by the server.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_proto::xfer::Protocol;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use crate::forward::forward;
use crate::metrics::{Metrics, QueryResult};
use crate::options::{DnsOptions, Fallback};
use crate::records::{a_record, Entry, Found, Snapshot, Zone};

/// What every bound address's handler shares.
pub(crate) struct Shared {
    pub(crate) options: DnsOptions,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) metrics: Metrics,
    /// The addresses served, so forwarding never sends a query back to this server.
    pub(crate) bound_addrs: ArcSwap<Vec<SocketAddr>>,
}

/// The largest UDP response to a query without EDNS.
const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// The handler of one bound address: it knows the local IP its queries arrive on.
pub(crate) struct QueryHandler {
    pub(crate) shared: Arc<Shared>,
    /// The IP the socket is bound to; the answer to a client alias when it is one of the
    /// node proxy's addresses.
    pub(crate) local_ip: IpAddr,
}

/// The sections of a response other than the question.
#[derive(Default)]
struct Sections<'a> {
    answers: Vec<&'a Record>,
    authority: Vec<&'a Record>,
    additionals: Vec<&'a Record>,
}

#[async_trait::async_trait]
impl RequestHandler for QueryHandler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let metrics = &self.shared.metrics;
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            metrics.count(None, QueryResult::Refused);
            return send_error(request, response, ResponseCode::Refused).await;
        }
        let Ok(info) = request.request_info() else {
            metrics.count(None, QueryResult::FormErr);
            return send_error(request, response, ResponseCode::FormErr).await;
        };
        let query = info.query;
        let query_type = query.query_type();
        if query.query_class() != DNSClass::IN {
            metrics.count(Some(query_type), QueryResult::Refused);
            return send_error(request, response, ResponseCode::Refused).await;
        }
        let snapshot = self.shared.snapshot.load_full();
        let node_proxy_answer;
        let mut sections = Sections::default();
        let code = match snapshot.lookup(query.name()) {
            Found::Listed(entry, zone) => {
                node_proxy_answer = self.node_proxy_answer(entry, query_type);
                listed_answer(
                    entry,
                    zone,
                    query_type,
                    node_proxy_answer.as_ref(),
                    &mut sections,
                );
                ResponseCode::NoError
            }
            Found::Exists(zone) => {
                if query_type == RecordType::SOA && *query.name() == zone.apex {
                    sections.answers.push(&zone.soa);
                } else {
                    sections.authority.push(&zone.soa);
                }
                ResponseCode::NoError
            }
            Found::Missing(zone) => {
                sections.authority.push(&zone.soa);
                ResponseCode::NXDomain
            }
            Found::Foreign => return self.fallback(request, response).await,
        };
        let result = if code == ResponseCode::NXDomain {
            QueryResult::NxDomain
        } else {
            QueryResult::Answered
        };
        metrics.count(Some(query_type), result);
        let mut header = Header::response_from_request(request.header());
        header
            .set_authoritative(true)
            .set_recursion_available(self.recursion_available())
            .set_response_code(code);
        send(request, response, header, sections).await
    }
}

impl QueryHandler {
    fn recursion_available(&self) -> bool {
        matches!(self.shared.options.fallback, Fallback::Forward(_))
    }

    /// The A record of a client alias: the address the query arrived on when the proxy
    /// listens there, else the proxy's first address.
    fn node_proxy_answer(&self, entry: &Entry, query_type: RecordType) -> Option<Record> {
        if !entry.node_proxy || !matches!(query_type, RecordType::A | RecordType::ANY) {
            return None;
        }
        let ips = &self.shared.options.node_proxy_ips;
        let ip = match self.local_ip {
            IpAddr::V4(local) if ips.contains(&local) => local,
            _ => *ips.first()?,
        };
        Some(a_record(&entry.name, entry.ttl, ip))
    }

    async fn fallback<R: ResponseHandler>(&self, request: &Request, response: R) -> ResponseInfo {
        let metrics = &self.shared.metrics;
        let query = &request.queries()[0];
        let upstreams = match &self.shared.options.fallback {
            Fallback::Refuse => {
                metrics.count(Some(query.query_type()), QueryResult::Refused);
                return send_error(request, response, ResponseCode::Refused).await;
            }
            Fallback::Forward(upstreams) => upstreams,
        };
        let own = self.shared.bound_addrs.load();
        let upstreams = upstreams.iter().copied().filter(|u| !is_own(&own, *u));
        let reply = forward(
            query,
            request.recursion_desired(),
            request.checking_disabled(),
            upstreams,
            self.shared.options.forward_timeout,
        )
        .await;
        let Some(reply) = reply else {
            metrics.count(Some(query.query_type()), QueryResult::ServFail);
            return send_error(request, response, ResponseCode::ServFail).await;
        };
        metrics.count(Some(query.query_type()), QueryResult::Forwarded);
        let mut header = Header::response_from_request(request.header());
        header
            .set_authoritative(reply.authoritative())
            .set_recursion_available(reply.recursion_available())
            .set_response_code(reply.response_code());
        let sections = Sections {
            answers: reply.answers().iter().collect(),
            authority: reply.name_servers().iter().collect(),
            additionals: reply.additionals().iter().collect(),
        };
        send(request, response, header, sections).await
    }
}

/// An upstream is this server itself when it is a bound address, or a bound wildcard
/// address's port on any IP.
fn is_own(bound: &[SocketAddr], upstream: SocketAddr) -> bool {
    bound.iter().any(|b| {
        b.port() == upstream.port() && (b.ip() == upstream.ip() || b.ip().is_unspecified())
    })
}

fn listed_answer<'a>(
    entry: &'a Entry,
    zone: Option<&'a Zone>,
    query_type: RecordType,
    node_proxy_answer: Option<&'a Record>,
    sections: &mut Sections<'a>,
) {
    let wants_a = matches!(query_type, RecordType::A | RecordType::ANY);
    let wants_srv = matches!(query_type, RecordType::SRV | RecordType::ANY);
    if wants_a {
        if entry.node_proxy {
            sections.answers.extend(node_proxy_answer);
        } else {
            sections.answers.extend(&entry.a);
        }
    }
    if wants_srv {
        sections.answers.extend(&entry.srv);
        sections.additionals.extend(&entry.srv_targets);
    }
    if sections.answers.is_empty() {
        // An empty answer (NODATA) carries the zone's SOA so resolvers cache it briefly.
        sections.authority.extend(zone.map(|z| &z.soa));
    }
}

/// EDNS in the response when the request had it (RFC 6891): version 0, the client's UDP
/// payload size (at least 512).
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns().map(|asked| {
        let mut edns = Edns::new();
        edns.set_max_payload(asked.max_payload().max(512))
            .set_version(0);
        edns
    })
}

async fn send<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    mut header: Header,
    mut sections: Sections<'_>,
) -> ResponseInfo {
    fit_classic_udp(request, &mut header, &mut sections);
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = response_edns(request) {
        builder.edns(edns);
    }
    let message = builder.build(
        header,
        sections.answers,
        sections.authority,
        std::iter::empty(),
        sections.additionals,
    );
    report(response.send_response(message).await, request)
}

/// A UDP answer to a query without EDNS must fit in 512 bytes (RFC 1035 4.2.1) or come
/// truncated, so the client retries over TCP; stub resolvers without EDNS (glibc's and
/// musl's by default) read no more. hickory-server allows 4096 bytes in that case, so the
/// response is encoded once with the 512-byte limit: when that truncates, the sections
/// keep the records that fit and the TC flag is set.
fn fit_classic_udp(request: &Request, header: &mut Header, sections: &mut Sections<'_>) {
    if request.protocol() != Protocol::Udp || request.edns().is_some() {
        return;
    }
    let mut buffer = Vec::with_capacity(usize::from(CLASSIC_UDP_PAYLOAD));
    let mut encoder = BinEncoder::new(&mut buffer);
    encoder.set_max_size(CLASSIC_UDP_PAYLOAD);
    let probe = MessageResponseBuilder::from_message_request(request).build(
        *header,
        sections.answers.iter().copied(),
        sections.authority.iter().copied(),
        std::iter::empty(),
        sections.additionals.iter().copied(),
    );
    match probe.destructive_emit(&mut encoder) {
        Ok(fitted) if fitted.truncated() => {
            header.set_truncated(true);
            sections
                .answers
                .truncate(usize::from(fitted.answer_count()));
            sections
                .authority
                .truncate(usize::from(fitted.name_server_count()));
            sections
                .additionals
                .truncate(usize::from(fitted.additional_count()));
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot measure a UDP response"),
    }
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    code: ResponseCode,
) -> ResponseInfo {
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = response_edns(request) {
        builder.edns(edns);
    }
    let message = builder.error_msg(request.header(), code);
    report(response.send_response(message).await, request)
}

fn report(sent: std::io::Result<ResponseInfo>, request: &Request) -> ResponseInfo {
    sent.unwrap_or_else(|e| {
        tracing::debug!(src = %request.src(), error = %e, "cannot send a DNS response");
        let mut header = Header::response_from_request(request.header());
        header.set_response_code(ResponseCode::ServFail);
        header.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_is_own_on_a_bound_address_or_a_bound_wildcard_port() {
        let bound: Vec<SocketAddr> = vec![
            "127.0.0.1:5353".parse().unwrap(),
            "0.0.0.0:53".parse().unwrap(),
        ];
        assert!(is_own(&bound, "127.0.0.1:5353".parse().unwrap()));
        assert!(is_own(&bound, "10.1.2.3:53".parse().unwrap()));
        assert!(!is_own(&bound, "127.0.0.2:5353".parse().unwrap()));
        assert!(!is_own(&bound[..1], "10.1.2.3:53".parse().unwrap()));
    }
}
