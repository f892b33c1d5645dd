//! A network namespace joined to the host by a veth pair, for tests whose agents must
//! live at addresses of their own: the host side gets `10.X.Y.1/30`, the namespace side
//! `10.X.Y.2/30` (X and Y chosen per namespace so concurrent tests do not collide), and
//! the namespace's loopback is up. Removed on drop.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// A network namespace with a veth link to the host.
pub struct NetNs {
    pub name: String,
    /// The host side's address.
    pub host_ip: String,
    /// The namespace side's address.
    pub ns_ip: String,
    host_veth: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (Debian's iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetNs {
    /// Creates the namespace and its link. Needs root (CAP_NET_ADMIN); fails loudly
    /// without it.
    pub fn create() -> Result<NetNs> {
        let n = std::process::id() ^ rand_u32();
        let (x, y) = (200 + (n % 50) as u8, ((n / 50) % 64 * 4) as u8);
        let tag = format!("{:x}", n & 0xff_ffff);
        let name = format!("berth-t{tag}");
        let host_veth = format!("bh{tag}");
        let ns_veth = format!("bn{tag}");
        let host_ip = format!("10.{x}.{y}.1");
        let ns_ip = format!("10.{x}.{y}.2");
        ip(&["netns", "add", &name])?;
        let ns = NetNs {
            name: name.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
            host_veth: host_veth.clone(),
        };
        ip(&[
            "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth,
        ])?;
        ip(&["link", "set", &ns_veth, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_veth])?;
        ip(&["link", "set", &host_veth, "up"])?;
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_veth,
        ])?;
        ip(&["-n", &name, "link", "set", &ns_veth, "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
