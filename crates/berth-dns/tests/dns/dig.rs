//! The server as `dig` (from dnsutils) sees it.

use std::net::SocketAddr;

use berth_dns::DnsOptions;

use crate::support::{sample_records, serve};

/// `dig @addr -p port <args> +noall +answer`, its answer lines split into words.
async fn dig(server: SocketAddr, args: &[&str]) -> Vec<Vec<String>> {
    let output = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+noall",
            "+answer",
            "+time=5",
            "+tries=1",
        ])
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run dig ({e}): install dnsutils (apt-get install -y dnsutils)")
        });
    assert!(
        output.status.success(),
        "dig {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("dig prints UTF-8")
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn dig_sees_the_a_and_srv_records_over_udp_and_tcp() {
    let s = serve(DnsOptions::default(), sample_records()).await;
    for transport in ["+notcp", "+tcp"] {
        let mut a = dig(s.addr, &[transport, "orders.internal", "A"]).await;
        a.sort();
        assert_eq!(
            a,
            vec![
                vec!["orders.internal.", "5", "IN", "A", "10.0.0.5"],
                vec!["orders.internal.", "5", "IN", "A", "10.0.0.6"],
            ],
            "{transport}"
        );
        let srv = dig(s.addr, &[transport, "WEB.internal", "SRV"]).await;
        assert_eq!(
            srv,
            vec![vec![
                "web.internal.",
                "10",
                "IN",
                "SRV",
                "1",
                "1",
                "32768",
                "t1.web.internal."
            ]],
            "{transport}"
        );
    }
}
