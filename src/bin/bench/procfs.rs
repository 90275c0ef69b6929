//! What the kernel says about a process: resident memory and CPU time, read from `/proc` so
//! the operator's figures are its own and not the bench's.

use std::time::Duration;

/// Memory of one process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the resident peak, in KiB.
    pub hwm_kib: u64,
}

/// Parse the `VmRSS` and `VmHWM` lines of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// `Pss` of a `/proc/<pid>/smaps_rollup` text in KiB: resident memory with each shared page
/// divided among the processes mapping it (a hundred kubectl processes share one binary's text,
/// which summed RSS counts a hundred times).
pub fn parse_pss(text: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Proportional set size of `pid` in KiB (0 when it is gone or unreadable).
pub fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map(|t| parse_pss(&t))
        .unwrap_or(0)
}

/// CPU time of a process in clock ticks, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// `utime + stime` of the process itself.
    pub own: u64,
    /// `cutime + cstime`: children it has waited for.
    pub children: u64,
}

/// Parse `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<CpuTicks> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3; utime is field 14, so index 11 here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(CpuTicks {
        own: num(11)? + num(12)?,
        children: num(13)? + num(14)?,
    })
}

/// Memory of `pid` now (zeros when it is gone).
pub fn memory(pid: u32) -> Memory {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|t| parse_status(&t))
        .unwrap_or_default()
}

/// CPU ticks of `pid` now (`None` when it is gone).
pub fn cpu(pid: u32) -> Option<CpuTicks> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat(&t))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// Ticks as time.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / per_second.max(1) as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_rss_and_peak() {
        let text = "Name:\tgitlab\nVmPeak:\t  900 kB\nVmHWM:\t   52344 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(
            parse_status(text),
            Memory {
                rss_kib: 51200,
                hwm_kib: 52344
            }
        );
        assert_eq!(parse_status("Name: x\n"), Memory::default());
    }

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:   48000 kB\nPss:   21034 kB\nPss_Anon:  19000 kB\n";
        assert_eq!(parse_pss(text), 21034);
        assert!(pss(std::process::id()) > 0);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text =
            "4242 (odd) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 170 30 7 3 20 0 8 0 1 2 3";
        assert_eq!(
            parse_stat(text),
            Some(CpuTicks {
                own: 200,
                children: 10
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(memory(me).rss_kib > 0);
        assert!(cpu(me).is_some());
    }
}
