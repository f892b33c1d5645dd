//! Stickiness: which target or target group a client's earlier requests went to, and the
//! cookies that remember it. `AWSALB` (load-balancer cookie), `AWSALBAPP-0` (following an
//! application cookie), `AWSALBTG` (target group of a weighted forward) and, for NLB
//! listeners, source-IP affinity.
//!
//! One implementation for every path: cookies are read from header values as bytes (from
//! hyper's header map or the fast path's raw headers) and written as bytes. It does not
//! pick targets; it names the one a request prefers ([`Affinity`]) and the cookie a
//! response sets ([`TargetCookie`]).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use rand::Rng;

use crate::group::GroupRuntime;
use crate::group_settings::Stickiness;
use crate::rules::Forward;

/// The load balancer's target cookie (`lb_cookie` stickiness).
pub(crate) const LB_COOKIE: &str = "AWSALB";
/// The load balancer's target cookie under `app_cookie` stickiness.
pub(crate) const APP_STICKY_COOKIE: &str = "AWSALBAPP-0";
/// Target-group stickiness across a weighted forward.
pub(crate) const TG_COOKIE: &str = "AWSALBTG";

/// FNV-1a over `bytes`: a short stable hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The hash source-IP stickiness maps a client address with.
pub(crate) fn source_ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => fnv1a(&v4.octets()),
        IpAddr::V6(v6) => fnv1a(&v6.octets()),
    }
}

/// A short stable token naming a target group in the `AWSALBTG` cookie.
fn group_cookie(arn: &str) -> String {
    format!("{:016x}", fnv1a(arn.as_bytes()))
}

/// The value of cookie `name` among a request's Cookie header values.
pub(crate) fn cookie<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
) -> Option<&'a str> {
    values
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a Set-Cookie value sets the cookie `name`.
pub(crate) fn sets_cookie(set_cookie: &[u8], name: &str) -> bool {
    set_cookie
        .iter()
        .position(|&b| b == b'=')
        .is_some_and(|i| set_cookie[..i].trim_ascii() == name.as_bytes())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `addr` as a cookie value: its text, hex-encoded.
fn write_target(out: &mut Vec<u8>, addr: SocketAddr) {
    // The longest socket address text ("[v6%scope]:port") fits.
    let mut text = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut text[..]);
    let _ = write!(cur, "{addr}");
    let n = cur.position() as usize;
    for &b in &text[..n] {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

#[cfg(test)]
pub(crate) fn encode_target(addr: SocketAddr) -> String {
    let mut out = Vec::new();
    write_target(&mut out, addr);
    String::from_utf8(out).expect("hex is ASCII")
}

/// The target a cookie value names, if it is one the proxy wrote. Decodes on the stack:
/// no allocation on the request path.
pub(crate) fn decode_target(v: &str) -> Option<SocketAddr> {
    let v = v.as_bytes();
    if v.len() % 2 != 0 || v.len() > 128 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut text = [0u8; 64];
    for (out, pair) in text.iter_mut().zip(v.chunks_exact(2)) {
        *out = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    std::str::from_utf8(&text[..v.len() / 2]).ok()?.parse().ok()
}

/// A request's target stickiness: its group's setting and the target its cookie names.
pub(crate) struct Affinity {
    pub(crate) stickiness: Option<Stickiness>,
    /// The target the request's cookie (or address) names, tried first.
    pub(crate) preferred: Option<SocketAddr>,
}

impl Affinity {
    /// The affinity of an HTTP request: `cookie` looks a cookie up in the request.
    pub(crate) fn of_request<'a>(
        stickiness: Option<Stickiness>,
        cookie: impl FnOnce(&str) -> Option<&'a str>,
    ) -> Affinity {
        let preferred = match &stickiness {
            Some(Stickiness::LbCookie { .. }) => cookie(LB_COOKIE).and_then(decode_target),
            Some(Stickiness::AppCookie { .. }) => cookie(APP_STICKY_COOKIE).and_then(decode_target),
            _ => None,
        };
        Affinity {
            stickiness,
            preferred,
        }
    }

    /// The affinity of an NLB connection from `ip` to `group`.
    pub(crate) fn of_connection(
        stickiness: Option<&Stickiness>,
        group: &GroupRuntime,
        ip: IpAddr,
    ) -> Affinity {
        let preferred = match stickiness {
            Some(Stickiness::SourceIp) => group.target_by_hash(source_ip_hash(ip)),
            _ => None,
        };
        Affinity {
            stickiness: None,
            preferred,
        }
    }

    /// The application cookie whose setting makes a response sticky, under
    /// `app_cookie` stickiness.
    #[inline]
    pub(crate) fn app_cookie(&self) -> Option<&str> {
        match &self.stickiness {
            Some(Stickiness::AppCookie { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// The cookie a response from `target` sets: `AWSALB` when the request did not
    /// already name that target, `AWSALBAPP-0` when the response sets the application's
    /// cookie (`sets_app_cookie`, see [`Affinity::app_cookie`]).
    pub(crate) fn response_cookie(
        &self,
        target: SocketAddr,
        sets_app_cookie: bool,
    ) -> Option<TargetCookie> {
        match &self.stickiness {
            Some(Stickiness::LbCookie { duration }) if self.preferred != Some(target) => {
                Some(TargetCookie {
                    name: LB_COOKIE,
                    target,
                    max_age: *duration,
                })
            }
            Some(Stickiness::AppCookie { duration, .. }) if sets_app_cookie => Some(TargetCookie {
                name: APP_STICKY_COOKIE,
                target,
                max_age: *duration,
            }),
            _ => None,
        }
    }
}

/// A cookie naming the target that served a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetCookie {
    name: &'static str,
    target: SocketAddr,
    max_age: Duration,
}

impl TargetCookie {
    /// Writes the Set-Cookie value: `NAME=<target>; Max-Age=<secs>; Path=/`.
    pub(crate) fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'=');
        write_target(out, self.target);
        out.extend_from_slice(b"; Max-Age=");
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.max_age.as_secs()).as_bytes());
        out.extend_from_slice(b"; Path=/");
    }

    /// The Set-Cookie value as a header value.
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        let mut v = Vec::with_capacity(64);
        self.write_value(&mut v);
        HeaderValue::from_maybe_shared(Bytes::from(v)).ok()
    }
}

/// The target group a forward action sends a request to: the one its `AWSALBTG` cookie
/// names under target-group stickiness, else one chosen by weight. With it, the
/// Set-Cookie value to add when stickiness is on and the choice was by weight. `None`
/// when every weight is 0.
pub(crate) fn choose_group<'a>(
    f: &Forward,
    tg_cookie: impl FnOnce() -> Option<&'a str>,
) -> Option<(Arc<GroupRuntime>, Option<String>)> {
    if f.group_stickiness.is_some() {
        if let Some(v) = tg_cookie() {
            if let Some(g) = f
                .groups
                .iter()
                .find(|g| g.weight > 0 && group_cookie(&g.group.arn) == v)
            {
                return Some((g.group.clone(), None));
            }
        }
    }
    if f.groups.len() == 1 {
        return Some((f.groups[0].group.clone(), None));
    }
    if f.total_weight == 0 {
        return None;
    }
    let mut x = rand::rng().random_range(0..f.total_weight);
    let mut chosen = &f.groups[0];
    for g in &f.groups {
        if x < g.weight {
            chosen = g;
            break;
        }
        x -= g.weight;
    }
    let cookie = f.group_stickiness.map(|d| {
        format!(
            "{TG_COOKIE}={}; Max-Age={}; Path=/",
            group_cookie(&chosen.group.arn),
            d.as_secs()
        )
    });
    Some((chosen.group.clone(), cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn target_cookie_round_trips() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(decode_target(&encode_target(a)), Some(a));
        let b: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(decode_target(&encode_target(b)), Some(b));
        assert_eq!(decode_target("zz"), None);
    }

    #[test]
    fn the_encoding_is_the_hex_of_the_address_text() {
        assert_eq!(encode_target(addr()), "3132372e302e302e313a38303830");
        let long: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
            .parse()
            .unwrap();
        assert_eq!(decode_target(&encode_target(long)), Some(long));
    }

    #[test]
    fn cookies_are_found_among_several_headers() {
        let values: [&[u8]; 2] = [b"a=1; AWSALB=xyz", b"b=2;c=3"];
        assert_eq!(cookie(values, "AWSALB"), Some("xyz"));
        assert_eq!(cookie(values, "c"), Some("3"));
        assert_eq!(cookie(values, "d"), None);
    }

    #[test]
    fn set_cookie_names_are_matched_whole() {
        assert!(sets_cookie(b"sid=1; Path=/", "sid"));
        assert!(sets_cookie(b" sid =1", "sid"));
        assert!(!sets_cookie(b"sid2=1", "sid"));
        assert!(!sets_cookie(b"sid", "sid"));
    }

    #[test]
    fn lb_cookie_is_set_unless_the_request_already_named_the_target() {
        let lb = || {
            Some(Stickiness::LbCookie {
                duration: Duration::from_secs(60),
            })
        };
        let value = encode_target(addr());
        let named = Affinity::of_request(lb(), |n| (n == LB_COOKIE).then_some(value.as_str()));
        assert_eq!(named.preferred, Some(addr()));
        assert_eq!(named.response_cookie(addr(), false), None);
        let fresh = Affinity::of_request(lb(), |_| None);
        let c = fresh.response_cookie(addr(), false).unwrap();
        assert_eq!(
            c.header_value().unwrap(),
            format!("AWSALB={value}; Max-Age=60; Path=/").as_str()
        );
    }

    #[test]
    fn app_cookie_stickiness_follows_the_application_cookie() {
        let app = Some(Stickiness::AppCookie {
            name: "sid".into(),
            duration: Duration::from_secs(5),
        });
        let a = Affinity::of_request(app, |_| None);
        assert_eq!(a.app_cookie(), Some("sid"));
        assert_eq!(a.response_cookie(addr(), false), None);
        let mut out = Vec::new();
        a.response_cookie(addr(), true)
            .unwrap()
            .write_value(&mut out);
        assert_eq!(
            out,
            format!("AWSALBAPP-0={}; Max-Age=5; Path=/", encode_target(addr())).as_bytes()
        );
    }

    #[test]
    fn no_stickiness_sets_nothing() {
        let a = Affinity::of_request(None, |_| panic!("no cookie is read"));
        assert_eq!(a.preferred, None);
        assert_eq!(a.app_cookie(), None);
        assert_eq!(a.response_cookie(addr(), true), None);
    }

    #[test]
    fn source_ip_hash_is_fnv1a_of_the_octets() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(source_ip_hash(ip), fnv1a(&[10, 0, 0, 1]));
        assert_ne!(
            source_ip_hash(ip),
            source_ip_hash("10.0.0.2".parse().unwrap())
        );
    }
}
