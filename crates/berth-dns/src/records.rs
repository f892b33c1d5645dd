//! A published [`DiscoveryRecords`] compiled for answering: DNS records built once, in a
//! map keyed by lowercase name, with each zone's SOA. Immutable; a publish builds a new
//! one and swaps it in.
//!
//! It does not decide which records exist (the control plane does) and does not answer
//! queries (the `handler` module does).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use berth_model::discovery::{DiscoveryRecords, DnsName};
use hickory_proto::rr::rdata::{A, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record};

/// SOA refresh, retry and expire: berth has no secondary servers, so these only need to
/// be sensible numbers (an hour, a minute, a week).
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 60;
const SOA_EXPIRE: i32 = 604_800;

/// One compiled snapshot.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    names: HashMap<LowerName, Entry>,
    /// Longest apex first, so a name finds its most specific zone.
    zones: Vec<Zone>,
    /// Names inside a zone that have no records but have listed names below them (or
    /// are a zone apex): they exist, so they get an empty answer, not NXDOMAIN.
    empty_non_terminals: HashSet<LowerName>,
}

/// One listed name.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: Name,
    pub(crate) ttl: u32,
    pub(crate) node_proxy: bool,
    pub(crate) a: Vec<Record>,
    pub(crate) srv: Vec<Record>,
    /// The A records of the SRV targets, sent in the additional section.
    pub(crate) srv_targets: Vec<Record>,
    /// Index into the snapshot's zones of the zone holding this name, if any.
    zone: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Zone {
    pub(crate) apex: LowerName,
    pub(crate) soa: Record,
}

/// Where a queried name falls.
pub(crate) enum Found<'a> {
    /// A listed name, and its zone if it lies in one.
    Listed(&'a Entry, Option<&'a Zone>),
    /// A zone apex or an empty non-terminal: the name exists without records.
    Exists(&'a Zone),
    /// Inside a zone, not listed: NXDOMAIN.
    Missing(&'a Zone),
    /// Outside every zone and not listed: the fallback's business.
    Foreign,
}

fn fqdn(name: &str) -> Option<Name> {
    let mut parsed = Name::from_ascii(name.trim_end_matches('.')).ok()?;
    if parsed.is_root() {
        return None;
    }
    parsed.set_fqdn(true);
    Some(parsed.to_lowercase())
}

impl Snapshot {
    /// Compiles `records`; `serial` goes into every zone's SOA. Names and SRV targets that
    /// are not valid DNS names are left out with a warning.
    pub(crate) fn compile(records: &DiscoveryRecords, serial: u32, negative_ttl: u32) -> Snapshot {
        let mut zones: Vec<Zone> = Vec::new();
        for zone in &records.zones {
            let Some(apex) = fqdn(zone) else {
                tracing::warn!(zone, "discovery zone skipped: not a valid DNS name");
                continue;
            };
            let lower = LowerName::new(&apex);
            if zones.iter().any(|z| z.apex == lower) {
                continue;
            }
            zones.push(Zone {
                soa: soa_record(&apex, serial, negative_ttl),
                apex: lower,
            });
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.apex.num_labels()));

        let mut parsed: Vec<(Name, &DnsName)> = Vec::with_capacity(records.names.len());
        for listed in &records.names {
            match fqdn(&listed.name) {
                Some(name) => parsed.push((name, listed)),
                None => tracing::warn!(
                    name = listed.name,
                    "discovery name skipped: not a valid DNS name"
                ),
            }
        }
        // A records by name, for the additional section of SRV answers.
        let a_by_name: HashMap<LowerName, Vec<Record>> = parsed
            .iter()
            .filter(|(_, listed)| !listed.node_proxy && !listed.a.is_empty())
            .map(|(name, listed)| (LowerName::new(name), a_records(name, listed.ttl, &listed.a)))
            .collect();

        let mut snapshot = Snapshot {
            zones,
            ..Snapshot::default()
        };
        for (name, listed) in parsed {
            let lower = LowerName::new(&name);
            let zone = snapshot.zone_index(&lower);
            if let Some(index) = zone {
                snapshot.add_ancestors(&name, index);
            }
            let mut srv = Vec::with_capacity(listed.srv.len());
            let mut srv_targets = Vec::new();
            for record in &listed.srv {
                let Some(target) = fqdn(&record.target) else {
                    tracing::warn!(
                        name = listed.name,
                        target = record.target,
                        "SRV record skipped: its target is not a valid DNS name"
                    );
                    continue;
                };
                if let Some(a) = a_by_name.get(&LowerName::new(&target)) {
                    srv_targets.extend(a.iter().cloned());
                }
                let rdata = SRV::new(record.priority, record.weight, record.port, target);
                srv.push(Record::from_rdata(
                    name.clone(),
                    listed.ttl,
                    RData::SRV(rdata),
                ));
            }
            let entry = Entry {
                a: a_records(&name, listed.ttl, &listed.a),
                name,
                ttl: listed.ttl,
                node_proxy: listed.node_proxy,
                srv,
                srv_targets,
                zone,
            };
            snapshot.names.insert(lower, entry);
        }
        for zone in &snapshot.zones {
            snapshot.empty_non_terminals.insert(zone.apex.clone());
        }
        snapshot
    }

    /// The number of names answered.
    pub(crate) fn name_count(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn lookup(&self, name: &LowerName) -> Found<'_> {
        if let Some(entry) = self.names.get(name) {
            return Found::Listed(entry, entry.zone.map(|i| &self.zones[i]));
        }
        match self.zone_index(name) {
            None => Found::Foreign,
            Some(i) if self.empty_non_terminals.contains(name) => Found::Exists(&self.zones[i]),
            Some(i) => Found::Missing(&self.zones[i]),
        }
    }

    fn zone_index(&self, name: &LowerName) -> Option<usize> {
        self.zones.iter().position(|z| z.apex.zone_of(name))
    }

    /// Marks the names between `name` and its zone's apex as existing.
    fn add_ancestors(&mut self, name: &Name, zone: usize) {
        let apex_labels = self.zones[zone].apex.num_labels();
        let mut labels = name.num_labels();
        while labels > apex_labels + 1 {
            labels -= 1;
            self.empty_non_terminals
                .insert(LowerName::new(&name.trim_to(labels as usize)));
        }
    }
}

fn a_records(name: &Name, ttl: u32, ips: &[Ipv4Addr]) -> Vec<Record> {
    ips.iter().map(|ip| a_record(name, ttl, *ip)).collect()
}

pub(crate) fn a_record(name: &Name, ttl: u32, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name.clone(), ttl, RData::A(A(ip)))
}

/// `<zone> SOA ns.<zone> hostmaster.<zone> <serial> ...`, with the negative-caching TTL
/// as both its own TTL and its `minimum` (RFC 2308 takes the smaller).
fn soa_record(apex: &Name, serial: u32, negative_ttl: u32) -> Record {
    let under = |label: &str| apex.prepend_label(label).unwrap_or_else(|_| apex.clone());
    let soa = SOA::new(
        under("ns"),
        under("hostmaster"),
        serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        negative_ttl,
    );
    Record::from_rdata(apex.clone(), negative_ttl, RData::SOA(soa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::discovery::SrvRecord;

    fn lower(name: &str) -> LowerName {
        LowerName::new(&fqdn(name).unwrap())
    }

    fn records() -> DiscoveryRecords {
        DiscoveryRecords {
            zones: vec!["internal".into(), "prod.internal".into()],
            names: vec![
                DnsName {
                    name: "Orders.Internal.".into(),
                    ttl: 7,
                    node_proxy: false,
                    a: vec![Ipv4Addr::new(10, 0, 0, 5)],
                    srv: vec![],
                },
                DnsName {
                    name: "api.prod.internal".into(),
                    ttl: 5,
                    node_proxy: false,
                    a: vec![],
                    srv: vec![SrvRecord {
                        priority: 1,
                        weight: 1,
                        port: 32768,
                        target: "t1.api.prod.internal".into(),
                    }],
                },
                DnsName {
                    name: "t1.api.prod.internal".into(),
                    ttl: 5,
                    node_proxy: false,
                    a: vec![Ipv4Addr::new(192, 0, 2, 1)],
                    srv: vec![],
                },
                DnsName {
                    name: "bad..name".into(),
                    ttl: 5,
                    node_proxy: false,
                    a: vec![],
                    srv: vec![],
                },
            ],
        }
    }

    #[test]
    fn names_are_found_case_insensitively_with_records_built_once() {
        let s = Snapshot::compile(&records(), 3, 5);
        assert_eq!(s.name_count(), 3, "the invalid name is left out");
        let Found::Listed(entry, Some(zone)) = s.lookup(&lower("ORDERS.internal")) else {
            panic!("orders.internal should be listed in a zone");
        };
        assert_eq!(entry.a[0].ttl(), 7);
        assert_eq!(entry.a[0].data(), &RData::A(A(Ipv4Addr::new(10, 0, 0, 5))));
        assert_eq!(zone.apex, lower("internal"));
    }

    #[test]
    fn srv_targets_bring_their_a_records_and_the_most_specific_zone_wins() {
        let s = Snapshot::compile(&records(), 3, 5);
        let Found::Listed(entry, Some(zone)) = s.lookup(&lower("api.prod.internal")) else {
            panic!("api.prod.internal should be listed");
        };
        assert_eq!(zone.apex, lower("prod.internal"));
        assert_eq!(entry.srv.len(), 1);
        assert_eq!(entry.srv_targets.len(), 1);
        assert_eq!(
            entry.srv_targets[0].name(),
            &fqdn("t1.api.prod.internal").unwrap()
        );
    }

    #[test]
    fn apexes_and_empty_non_terminals_exist_other_zone_names_are_missing() {
        let mut r = records();
        r.names.push(DnsName {
            name: "t9.svc.internal".into(),
            ttl: 5,
            node_proxy: false,
            a: vec![Ipv4Addr::LOCALHOST],
            srv: vec![],
        });
        let s = Snapshot::compile(&r, 3, 5);
        assert!(matches!(s.lookup(&lower("internal")), Found::Exists(_)));
        assert!(matches!(s.lookup(&lower("svc.internal")), Found::Exists(_)));
        assert!(matches!(
            s.lookup(&lower("nope.internal")),
            Found::Missing(_)
        ));
        assert!(matches!(s.lookup(&lower("example.com")), Found::Foreign));
        assert!(matches!(
            s.lookup(&lower("internal.example.com")),
            Found::Foreign
        ));
    }

    #[test]
    fn soa_names_the_zone_server_and_carries_the_serial_and_negative_ttl() {
        let s = Snapshot::compile(&records(), 42, 4);
        let Found::Missing(zone) = s.lookup(&lower("x.internal")) else {
            panic!("x.internal should be missing")
        };
        let RData::SOA(soa) = zone.soa.data() else {
            panic!("an SOA record")
        };
        assert_eq!(soa.mname(), &fqdn("ns.internal").unwrap());
        assert_eq!(soa.serial(), 42);
        assert_eq!(soa.minimum(), 4);
        assert_eq!(zone.soa.ttl(), 4);
    }
}
