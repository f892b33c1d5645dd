//! What the process runtime reads from `/proc`: liveness, identity and resource use.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// R, S, D, Z (zombie), X (dead), ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// User + system CPU time in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot in clock ticks: with the pid, it identifies a process.
    pub start_time: u64,
    pub rss_pages: u64,
}

pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state) of proc(5).
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        cpu_ticks: num(11)? + num(12)?,
        start_time: num(19)?,
        rss_pages: num(21)?,
    })
}

pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The process `pid` that started at `start_time` still runs (is not a zombie).
pub(crate) fn alive(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && !matches!(s.state, 'Z' | 'X'))
}

/// `pid`'s command line contains `needle` as one of its arguments.
pub(crate) fn cmdline_has_arg(pid: i32, needle: &Path) -> bool {
    let Ok(bytes) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = needle.as_os_str().as_encoded_bytes();
    bytes.split(|b| *b == 0).any(|arg| arg == needle)
}

/// The live processes whose command line has `needle` as an argument (a container's
/// shim names its container directory).
pub(crate) fn processes_with_arg(needle: &Path) -> Vec<(i32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| cmdline_has_arg(*pid, needle))
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| !matches!(s.state, 'Z' | 'X'))
        .collect()
}

/// The live children of `parent`.
pub(crate) fn children(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|s| s.ppid == parent && !matches!(s.state, 'Z' | 'X')))
        .collect()
}

/// CPU ticks and resident pages summed over the processes of process group `pgrp`.
pub(crate) fn group_usage(pgrp: i32) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let mut ticks = 0;
    let mut pages = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(s) = stat(pid) {
            if s.pgrp == pgrp && s.state != 'Z' {
                ticks += s.cpu_ticks;
                pages += s.rss_pages;
            }
        }
    }
    (ticks, pages)
}

/// A positive `sysconf` value, or `default` when the system does not say.
fn sysconf_or(var: nix::unistd::SysconfVar, default: u64) -> u64 {
    nix::unistd::sysconf(var)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

pub(crate) fn clock_ticks_per_second() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::CLK_TCK, 100)
}

pub(crate) fn page_size() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096)
}

/// Seconds since boot, from `/proc/uptime`.
pub(crate) fn uptime_seconds() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
                    5555 1000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.cpu_ticks, 10);
        assert_eq!(s.start_time, 5555);
        assert_eq!(s.rss_pages, 250);
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(alive(me, s.start_time));
        assert!(!alive(me, s.start_time + 1));
    }
}
