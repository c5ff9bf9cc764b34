//! What the heartbeat says about the process: command line, CPU time,
//! resident memory, threads. Read from `/proc/self` on Linux (CPU time
//! from `getrusage` on every Unix); `None` where unknown.

/// The command line, arguments separated by spaces.
pub(crate) fn cmdline() -> String {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// User + system CPU time of the whole process, in ns.
#[cfg(unix)]
pub(crate) fn cpu_ns() -> Option<i64> {
    // SAFETY: `ru` is a valid rusage to write into.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return None;
    }
    // The field types differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    let us = |t: libc::timeval| t.tv_sec as i64 * 1_000_000 + t.tv_usec as i64;
    Some((us(ru.ru_utime) + us(ru.ru_stime)) * 1000)
}

#[cfg(not(unix))]
pub(crate) fn cpu_ns() -> Option<i64> {
    None
}

/// Resident set size in bytes (`/proc/self/statm`).
#[cfg(target_os = "linux")]
pub(crate) fn rss_bytes() -> Option<i64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as i64)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn rss_bytes() -> Option<i64> {
    None
}

/// Threads of the process (`/proc/self/stat`, field 20).
#[cfg(target_os = "linux")]
pub(crate) fn threads() -> Option<i64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: count from its end.
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(17)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn threads() -> Option<i64> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let t = std::thread::spawn(super::threads);
        assert!(t.join().unwrap().unwrap() >= 2);
        assert!(super::rss_bytes().unwrap() > 1 << 20);
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_ns().unwrap() > 0);
        assert!(!super::cmdline().is_empty());
    }
}
