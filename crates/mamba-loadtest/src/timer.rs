//! A precise sleep inside the runtime: a Linux timerfd watched by tokio's reactor, so an
//! arrival wakes the runtime at its nanosecond deadline (within the kernel's timer slack,
//! about 50 µs) without the extra thread switch of a dispatcher thread, and without tokio's
//! millisecond timer granularity.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One timer, armed for one deadline at a time.
pub(crate) struct PreciseTimer {
    fd: AsyncFd<Fd>,
    armed: Cell<Option<Instant>>,
}

impl PreciseTimer {
    /// A timer on the monotonic clock; fails outside a tokio runtime with I/O enabled.
    pub(crate) fn new() -> io::Result<PreciseTimer> {
        let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
        // `AsyncFd::new` is deprecated because a caller could close the descriptor while it is
        // registered; here the `AsyncFd` owns the `TimerFd`, which owns the descriptor, so it
        // lives exactly as long as the registration. Its replacement is `unsafe`, which this
        // workspace forbids.
        #[allow(deprecated)]
        let fd = AsyncFd::new(Fd(fd))?;
        Ok(PreciseTimer { fd, armed: Cell::new(None) })
    }

    /// Waits until `due`. Dropping the future keeps the timer armed, so calling again with
    /// the same deadline neither re-arms it nor loses the expiry.
    pub(crate) async fn sleep_until(&self, due: Instant) -> io::Result<()> {
        let now = Instant::now();
        if due <= now {
            return Ok(());
        }
        if self.armed.get() != Some(due) {
            let wait = TimeSpec::from_duration(due - now);
            self.fd.get_ref().0.set(Expiration::OneShot(wait), TimerSetTimeFlags::empty())?;
            self.armed.set(Some(due));
        }
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => {
                    self.armed.set(None);
                    return result;
                }
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_at_its_deadline_and_survives_being_dropped() {
        let timer = PreciseTimer::new().unwrap();
        let due = Instant::now() + Duration::from_millis(3);
        // Dropped before it fires: the next call with the same deadline still ends on time.
        let _ = tokio::time::timeout(Duration::from_micros(500), timer.sleep_until(due)).await;
        timer.sleep_until(due).await.unwrap();
        let late = Instant::now().saturating_duration_since(due);
        assert!(Instant::now() >= due);
        assert!(late < Duration::from_millis(20), "{late:?}");
        // A deadline in the past returns at once.
        timer.sleep_until(Instant::now() - Duration::from_millis(1)).await.unwrap();
    }
}
