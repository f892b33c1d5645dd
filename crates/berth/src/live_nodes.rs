//! The berth nodes running on this machine, found in `/proc`: every `berth server` and
//! `berth agent` process, its data directory (`--data-dir`, else `BERTH_DATA_DIR` from
//! its environment, else the default, relative to its working directory) and the
//! container instance id kept there. Their tasks are never orphans, whichever berth
//! version runs them.
//!
//! What it does not do: look at other machines, or decide anything about tasks (the
//! runtime and the agent do).

use std::path::{Path, PathBuf};

use berth_runtime::LiveOwners;

/// Global flags of the CLI that take a value (and may come before the subcommand).
const GLOBAL_VALUE_FLAGS: [&str; 5] =
    ["--endpoint", "-o", "--output", "--credentials", "--ca-cert"];

/// A berth node's subcommand and the data directory it names, from its arguments.
fn node_of(args: &[String]) -> Option<(&'static str, Option<PathBuf>)> {
    let program = Path::new(args.first()?).file_name()?.to_str()?;
    if program != "berth" {
        return None;
    }
    let mut rest = args[1..].iter();
    let mut sub = None;
    while let Some(a) = rest.next() {
        if GLOBAL_VALUE_FLAGS.contains(&a.as_str()) {
            rest.next();
        } else if !a.starts_with('-') {
            sub = match a.as_str() {
                "server" => Some("server"),
                "agent" => Some("agent"),
                _ => None,
            };
            break;
        }
    }
    let sub = sub?;
    let mut data_dir = None;
    while let Some(a) = rest.next() {
        if a == "--" {
            break;
        }
        if a == "--data-dir" {
            data_dir = rest.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--data-dir=") {
            data_dir = Some(PathBuf::from(v));
        }
    }
    Some((sub, data_dir))
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The data directory of the berth node running as `pid`, if it is one.
fn data_dir_of(pid: i32) -> Option<PathBuf> {
    let args = split_nul(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?);
    let (sub, flag) = node_of(&args)?;
    let dir = flag
        .or_else(|| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            split_nul(&env)
                .into_iter()
                .find_map(|kv| kv.strip_prefix("BERTH_DATA_DIR=").map(PathBuf::from))
        })
        .unwrap_or_else(|| match sub {
            "server" => PathBuf::from(".berth"),
            _ => PathBuf::from(".berth-agent"),
        });
    if dir.is_absolute() {
        return Some(dir);
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    Some(cwd.join(dir))
}

/// Whether `pid` is a zombie (its arguments are gone, but be sure).
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(true)
}

/// The owners (instance ids and process runtime state directories) of every berth node
/// running on this machine, this one included.
pub(crate) fn live_owners() -> LiveOwners {
    let mut live = LiveOwners::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return live;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Some(dir) = data_dir_of(pid) else {
            continue;
        };
        if is_zombie(pid) {
            continue;
        }
        live.add_state_dir(&dir.join("runtime"));
        if let Ok(id) = std::fs::read_to_string(dir.join("instance-id")) {
            let id = id.trim();
            if !id.is_empty() {
                live.instance_ids.insert(id.to_string());
            }
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    #[test]
    fn servers_and_agents_are_nodes_with_their_data_dirs() {
        assert_eq!(
            node_of(&args(
                "/x/berth server --data-dir /d --api-addr 127.0.0.1:0"
            )),
            Some(("server", Some(PathBuf::from("/d"))))
        );
        assert_eq!(
            node_of(&args("berth --endpoint http://a:1 agent --data-dir=rel")),
            Some(("agent", Some(PathBuf::from("rel"))))
        );
        assert_eq!(node_of(&args("/x/berth server")), Some(("server", None)));
        assert_eq!(
            node_of(&args("/x/berth shim --dir /d/runtime/tasks/t/c -- server")),
            None
        );
        assert_eq!(node_of(&args("/x/berth get services")), None);
        assert_eq!(node_of(&args("/x/other server --data-dir /d")), None);
    }

    #[test]
    fn this_test_process_is_not_a_node_but_a_server_child_is() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("instance-id"), "i-0123456789abcdef0").unwrap();
        let before = live_owners();
        assert!(!before.instance_ids.contains("i-0123456789abcdef0"));
        // A shell reading a script named `server` in its working directory, shown as
        // `berth server`, with the data dir in its environment; it waits on its stdin.
        std::fs::write(dir.path().join("server"), "read line\n").unwrap();
        let mut child = std::process::Command::new("sh")
            .arg0("berth")
            .arg("server")
            .current_dir(dir.path())
            .env("BERTH_DATA_DIR", dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The child shows as `berth server` once it has exec'd the shell.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"berth\0server\0")) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never exec'd"
            );
            std::thread::yield_now();
        }
        let live = live_owners();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            live.instance_ids.contains("i-0123456789abcdef0"),
            "{live:?}"
        );
        assert!(live.owns_state_dir(&dir.path().join("runtime")), "{live:?}");
        let after = live_owners();
        assert!(
            !after.instance_ids.contains("i-0123456789abcdef0"),
            "{after:?}"
        );
    }
}
