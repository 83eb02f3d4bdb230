//! Removing everything the lab created, whatever way the process ends.
//!
//! Everything a topology creates lives inside its namespaces (no interface is
//! ever made in the caller's namespace), so removing the namespace files is
//! the whole cleanup. That happens:
//! - on drop of the [`CleanupGuard`] (normal exit, and panics, which unwind);
//! - on SIGINT/SIGTERM/SIGHUP, from a signal handler that only makes
//!   async-signal-safe system calls (`umount2`, `unlink`) on paths registered
//!   in a fixed, allocation-free table, then lets the signal take its
//!   previous course (by default: the process ends with that signal);
//! - after SIGKILL, which no handler sees, by [`sweep_stale`] at the next
//!   start: namespaces of the same tag whose owner pid is dead are removed.

use std::cell::UnsafeCell;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::naming::owner_pid;
use super::netns::{self, NETNS_DIR, Netns, NetnsError};

/// A set of namespaces removed together when the guard is dropped.
#[derive(Debug, Default)]
pub struct CleanupGuard {
    owned: Vec<Owned>,
}

#[derive(Debug)]
struct Owned {
    netns: Netns,
    /// Slot in the signal handler's table, if there was room.
    slot: Option<usize>,
}

impl CleanupGuard {
    /// An empty guard; installs the signal handlers on first use.
    pub fn new() -> CleanupGuard {
        install_signal_handlers();
        CleanupGuard::default()
    }

    /// Creates the namespace `name`, owned by this guard from before it
    /// exists (a signal during creation still removes it).
    pub fn create_netns(&mut self, name: &str) -> Result<Netns, NetnsError> {
        let slot = register(&Netns::existing(name).path());
        if slot.is_none() {
            tracing::warn!(
                namespace = name,
                "signal cleanup table full: this namespace is removed on drop or by the next sweep only"
            );
        }
        match netns::create(name) {
            Ok(netns) => {
                self.owned.push(Owned {
                    netns: netns.clone(),
                    slot,
                });
                Ok(netns)
            }
            Err(e) => {
                if let Some(slot) = slot {
                    unregister(slot);
                }
                Err(e)
            }
        }
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        for owned in self.owned.drain(..).rev() {
            if let Err(e) = netns::delete(owned.netns.name()) {
                tracing::error!("cleanup: {e}");
            }
            if let Some(slot) = owned.slot {
                unregister(slot);
            }
        }
    }
}

/// Removes namespaces whose name is of the lab's scheme with `tag` and whose
/// owning process is dead (a run killed by SIGKILL or a power cut). Returns
/// the names removed.
pub fn sweep_stale(tag: &str) -> Result<Vec<String>, NetnsError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetnsError::Open {
                name: String::new(),
                path: NETNS_DIR.into(),
                source,
            });
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(pid) = owner_pid(&name, tag) else {
            continue;
        };
        if process_is_alive(pid) {
            continue;
        }
        netns::delete(&name)?;
        tracing::info!(namespace = %name, pid, "removed a stale namespace of a dead run");
        removed.push(name);
    }
    Ok(removed)
}

fn process_is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // EPERM means it exists but belongs to someone else.
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

// --- The table the signal handler reads -----------------------------------

/// Namespaces alive at once in one process (4 per topology).
const SLOTS: usize = 64;
/// Longest namespace path stored, including the terminating NUL.
const PATH_CAPACITY: usize = 128;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

struct Slot {
    state: AtomicU8,
    /// NUL-terminated path; written only while `state` is WRITING.
    path: UnsafeCell<[u8; PATH_CAPACITY]>,
}

// SAFETY: `path` is written only by the thread that moved `state` from FREE
// to WRITING, and read only when `state` is READY (Acquire after Release).
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU8::new(FREE),
        path: UnsafeCell::new([0; PATH_CAPACITY]),
    }
}; SLOTS];

fn register(path: &std::path::Path) -> Option<usize> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= PATH_CAPACITY || bytes.contains(&0) {
        return None;
    }
    for (index, slot) in TABLE.iter().enumerate() {
        if slot
            .state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: this thread won FREE -> WRITING, so it alone touches `path`.
            let dest = unsafe { &mut *slot.path.get() };
            dest[..bytes.len()].copy_from_slice(bytes);
            dest[bytes.len()] = 0;
            slot.state.store(READY, Ordering::Release);
            return Some(index);
        }
    }
    None
}

fn unregister(index: usize) {
    TABLE[index].state.store(FREE, Ordering::Release);
}

/// Signals after which the process should not leave namespaces behind.
const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The actions in place before ours, restored before re-raising the signal.
static PREVIOUS_ACTIONS: OnceLock<[Option<libc::sigaction>; 3]> = OnceLock::new();

fn install_signal_handlers() {
    PREVIOUS_ACTIONS.get_or_init(|| {
        let mut previous = [None; 3];
        for (signal, slot) in CLEANUP_SIGNALS.iter().zip(previous.iter_mut()) {
            // SAFETY: plain sigaction calls with valid, zero-initialised structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(*signal, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                // A process told to ignore the signal (nohup) keeps ignoring it.
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_cleanup_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(*signal, &action, std::ptr::null_mut()) == 0 {
                    *slot = Some(old);
                }
            }
        }
        previous
    });
}

/// Removes every registered namespace, then re-raises the signal under the
/// previous action. Only async-signal-safe calls: no allocation, no locks.
extern "C" fn on_cleanup_signal(signal: libc::c_int) {
    for slot in &TABLE {
        if slot.state.load(Ordering::Acquire) == READY {
            let path = slot.path.get() as *const libc::c_char;
            // SAFETY: READY slots hold a NUL-terminated path.
            unsafe {
                libc::umount2(path, libc::MNT_DETACH);
                libc::unlink(path);
            }
        }
    }
    let previous = PREVIOUS_ACTIONS.get().and_then(|actions| {
        CLEANUP_SIGNALS
            .iter()
            .position(|s| *s == signal)
            .and_then(|i| actions[i])
    });
    // SAFETY: sigaction and raise are async-signal-safe. The re-raised signal
    // is blocked until this handler returns, then takes the previous action.
    unsafe {
        match previous {
            Some(old) => libc::sigaction(signal, &old, std::ptr::null_mut()),
            None => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut())
            }
        };
        libc::raise(signal);
    }
}
