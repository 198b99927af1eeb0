//! The limit of open files, for commands that hold many connections (`bench`, `serve`).
//!
//! Unix limits the descriptors of a process (`ulimit -n`); Windows has no such limit on
//! sockets, so there is nothing to raise and no connection cap is derived from it.

/// Raises this process's soft limit of open files as far as the system lets this user (the
/// soft limit is often 1,024 while the hard limit is far higher). Returns the soft limit now
/// in force, or None where it cannot be changed or read.
#[cfg(unix)]
pub(crate) fn raise() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// No limit of open files to raise on this platform: None.
#[cfg(not(unix))]
pub(crate) fn raise() -> Option<u64> {
    None
}

/// Descriptors kept for everything but client connections (upstream pools, the log, …).
const RESERVE: u64 = 64;

/// The most client connections a server can hold with `limit` open files: each one may need
/// a second descriptor towards the upstream.
pub(crate) fn connections_within(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVE) / 2).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_in_the_limit() {
        assert_eq!(connections_within(1024), 480);
        assert_eq!(connections_within(10), 1);
        assert!(connections_within(u64::MAX) > 1 << 40);
    }
}
