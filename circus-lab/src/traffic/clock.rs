//! Timestamps from CLOCK_MONOTONIC.
//!
//! All lab namespaces run on one host and share its monotonic clock, so a send
//! timestamp written in the client namespace and a receive timestamp read in
//! the server namespace are directly comparable: their difference is the
//! one-way latency. `std::time::Instant` reads the same clock but hides the raw
//! value, which the probe payload has to carry.

use std::ops::Add;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};
use serde::{Deserialize, Serialize};

/// A CLOCK_MONOTONIC reading in nanoseconds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct MonoNanos(pub u64);

impl MonoNanos {
    /// Reads CLOCK_MONOTONIC.
    pub fn now() -> Self {
        // CLOCK_MONOTONIC exists on every Linux kernel; the call cannot fail
        // with a valid clock id and a valid pointer.
        let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)
            .expect("CLOCK_MONOTONIC is always readable on Linux");
        Self(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: MonoNanos) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Sleeps until the clock reaches `self` (an absolute deadline, so repeated
    /// sleeps do not accumulate drift). Returns at once if it is already past.
    pub fn sleep_until(self) {
        let request = TimeSpec::new((self.0 / 1_000_000_000) as _, (self.0 % 1_000_000_000) as _);
        loop {
            match clock_nanosleep(
                ClockId::CLOCK_MONOTONIC,
                ClockNanosleepFlags::TIMER_ABSTIME,
                &request,
            ) {
                Err(Errno::EINTR) => continue,
                _ => return,
            }
        }
    }
}

impl Add<Duration> for MonoNanos {
    type Output = MonoNanos;

    fn add(self, rhs: Duration) -> MonoNanos {
        MonoNanos(self.0.saturating_add(rhs.as_nanos() as u64))
    }
}

/// Sets this thread's timer slack to 1 ns while sending (the default 50 us
/// would be added to every sleep), and restores it on drop.
pub struct TimerSlack {
    previous: libc::c_int,
}

impl TimerSlack {
    pub fn tighten() -> Self {
        // SAFETY: PR_GET/SET_TIMERSLACK only read or set a value of the calling
        // thread; they take no pointers.
        let previous = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) };
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        Self { previous }
    }
}

/// The calling thread at SCHED_FIFO while this is held, so only the host or
/// a higher real-time priority keeps it from running on time; normal
/// scheduling again on drop.
pub struct FifoPriority {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl FifoPriority {
    /// `None` when the kernel refuses (it needs root or CAP_SYS_NICE).
    pub fn enter(priority: i32) -> Option<Self> {
        set_policy(libc::SCHED_FIFO, priority).then_some(Self {
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for FifoPriority {
    fn drop(&mut self) {
        set_policy(libc::SCHED_OTHER, 0);
    }
}

fn set_policy(policy: libc::c_int, priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid
    // pointer to an initialised sched_param.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

impl Drop for TimerSlack {
    fn drop(&mut self) {
        if self.previous > 0 {
            // SAFETY: as in `tighten`.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, self.previous as libc::c_ulong) };
        }
    }
}
