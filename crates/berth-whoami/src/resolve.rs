//! A small resolver for A records, so a statically linked demo app in a `FROM scratch`
//! image can resolve names (a static glibc's `getaddrinfo` needs NSS libraries the image
//! does not have). As libc's default `hosts: files dns`, it reads `/etc/hosts` first
//! (where Docker writes a container's links and `extraHosts`), then asks one server over
//! UDP, the way a stub resolver does: the server named by `BERTH_DNS_SERVER` (`ip:port`,
//! what berth gives its tasks), else the first `nameserver` of `/etc/resolv.conf` (what
//! Docker writes from a container's DNS setting). It does not read `search` domains.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

/// How long one query waits for its answer; a query is sent at most three times.
const QUERY_TIMEOUT: Duration = Duration::from_millis(700);

/// The server to ask: `BERTH_DNS_SERVER`, else `/etc/resolv.conf`'s first nameserver.
pub fn default_server() -> Result<SocketAddr, String> {
    if let Ok(v) = std::env::var("BERTH_DNS_SERVER") {
        return v
            .parse()
            .map_err(|_| format!("BERTH_DNS_SERVER: expected IP:PORT, got {v:?}"));
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("no BERTH_DNS_SERVER and /etc/resolv.conf unreadable: {e}"))?;
    nameserver_of(&conf).ok_or_else(|| "no nameserver in /etc/resolv.conf".to_string())
}

fn nameserver_of(conf: &str) -> Option<SocketAddr> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// The file of static host names, as libc reads it.
const HOSTS_FILE: &str = "/etc/hosts";
/// How long an address from the hosts file is kept (it changes only when the
/// container is recreated).
const HOSTS_FILE_TTL: u32 = 30;

/// The IPv4 addresses `hosts` (the text of a hosts file) gives `name`: every line whose
/// host names (the canonical name or an alias) include it, case-insensitively.
fn hosts_file_addresses(hosts: &str, name: &str) -> Vec<Ipv4Addr> {
    let name = name.trim_end_matches('.');
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let ip = fields.next()?.parse::<Ipv4Addr>().ok()?;
            fields
                .any(|host| host.eq_ignore_ascii_case(name))
                .then_some(ip)
        })
        .collect()
}

/// The A records of `name` and the smallest TTL among them: from `/etc/hosts` when it
/// names `name`, else asked of `server`.
pub async fn lookup_a(server: SocketAddr, name: &str) -> Result<(Vec<Ipv4Addr>, u32), String> {
    let hosts = std::fs::read_to_string(HOSTS_FILE).unwrap_or_default();
    let from_file = hosts_file_addresses(&hosts, name);
    if !from_file.is_empty() {
        return Ok((from_file, HOSTS_FILE_TTL));
    }
    lookup_a_from(server, name).await
}

/// The A records of `name` and the smallest TTL among them, asked of `server`.
async fn lookup_a_from(server: SocketAddr, name: &str) -> Result<(Vec<Ipv4Addr>, u32), String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
    let query = encode_query(id, name)?;
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        sock.send(&query).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(QUERY_TIMEOUT, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => return decode_a(id, &buf[..n]).map_err(|e| format!("{name}: {e}")),
            Ok(Err(e)) => return Err(format!("{server}: {e}")),
            Err(_) => continue,
        }
    }
    Err(format!("{server} did not answer for {name}"))
}

/// A standard query (recursion desired) for the A records of `name`.
fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]);
    Ok(q)
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let len = *msg.get(at).ok_or("truncated name")? as usize;
        if len == 0 {
            return Ok(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Ok(at + 2);
        }
        at += 1 + len;
    }
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, String> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated message".to_string())
}

/// The A records (and smallest TTL) of an answer to query `id`.
fn decode_a(id: u16, msg: &[u8]) -> Result<(Vec<Ipv4Addr>, u32), String> {
    if u16_at(msg, 0)? != id {
        return Err("answer to another query".into());
    }
    let rcode = u16_at(msg, 2)? & 0x000f;
    match rcode {
        0 => {}
        3 => return Err("no such name (NXDOMAIN)".into()),
        5 => return Err("the server refused the query".into()),
        n => return Err(format!("the server answered rcode {n}")),
    }
    let questions = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    let mut ips = Vec::new();
    let mut ttl = u32::MAX;
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let rtype = u16_at(msg, at)?;
        let rttl = msg
            .get(at + 4..at + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated record")?;
        let len = u16_at(msg, at + 8)? as usize;
        let data = msg.get(at + 10..at + 10 + len).ok_or("truncated record")?;
        if rtype == 1 && len == 4 {
            ips.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
            ttl = ttl.min(rttl);
        }
        at += 10 + len;
    }
    if ips.is_empty() {
        return Err("no A record".into());
    }
    Ok((ips, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_nameserver() {
        let conf = "# generated\nsearch example\nnameserver 172.17.0.1\nnameserver 8.8.8.8\n";
        assert_eq!(nameserver_of(conf), Some("172.17.0.1:53".parse().unwrap()));
        assert_eq!(nameserver_of("search x\n"), None);
    }

    #[test]
    fn the_hosts_file_names_links_and_aliases() {
        // As Docker writes it for a container linked to `db` with the alias `database`.
        let hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n\
                     172.17.0.3\tdatabase 0123456789ab berth-t1-db\n\
                     # 10.0.0.1 commented\n172.17.0.4 web # the container itself\n";
        assert_eq!(
            hosts_file_addresses(hosts, "database"),
            vec![Ipv4Addr::new(172, 17, 0, 3)]
        );
        assert_eq!(
            hosts_file_addresses(hosts, "BERTH-T1-DB."),
            vec![Ipv4Addr::new(172, 17, 0, 3)]
        );
        assert_eq!(
            hosts_file_addresses(hosts, "web"),
            vec![Ipv4Addr::new(172, 17, 0, 4)]
        );
        assert!(hosts_file_addresses(hosts, "commented").is_empty());
        assert!(hosts_file_addresses(hosts, "orders.internal").is_empty());
        assert!(
            hosts_file_addresses(hosts, "ip6-localhost").is_empty(),
            "IPv6 only"
        );
    }

    #[test]
    fn a_query_round_trips_through_a_hand_made_answer() {
        let q = encode_query(7, "orders.internal").unwrap();
        assert_eq!(&q[12..19], b"\x06orders");
        // The query as the answer's question, then one A record with a compressed name.
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 2;
        for (ip, ttl) in [([10, 0, 0, 7], 5u32), ([10, 0, 0, 8], 3)] {
            a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            a.extend_from_slice(&ttl.to_be_bytes());
            a.extend_from_slice(&[0, 4]);
            a.extend_from_slice(&ip);
        }
        let (ips, ttl) = decode_a(7, &a).unwrap();
        assert_eq!(
            ips,
            vec![Ipv4Addr::new(10, 0, 0, 7), Ipv4Addr::new(10, 0, 0, 8)]
        );
        assert_eq!(ttl, 3);
        assert!(decode_a(8, &a).is_err());
        let mut nx = q;
        nx[3] = 0x83;
        assert_eq!(decode_a(7, &nx).unwrap_err(), "no such name (NXDOMAIN)");
        assert!(encode_query(1, "a..b").is_err());
    }
}
