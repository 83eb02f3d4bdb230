//! Removing everything the lab created, whatever way the process ends.
//!
//! Everything a topology creates lives inside its namespaces (no interface is
//! ever made in the caller's namespace) or in its run directory (files such
//! as the daemons' status sockets), so removing the namespace files and that
//! directory is the whole cleanup. That happens:
//! - on drop of the [`CleanupGuard`] (normal exit, and panics, which unwind);
//! - on SIGINT/SIGTERM/SIGHUP, from a signal handler that only makes
//!   async-signal-safe system calls (`kill`, `umount2`, `unlink`, `open`,
//!   `getdents64`, `unlinkat`, `rmdir`) on process groups and paths
//!   registered in fixed, allocation-free tables, then lets the signal take
//!   its previous course (by default: the process ends with that signal);
//! - after SIGKILL, which no handler sees, by [`sweep_stale`] at the next
//!   start: namespaces and run directories of the same tag whose owner pid
//!   is dead are removed, and the processes still inside those namespaces
//!   killed ([`super::process`]).

use std::cell::UnsafeCell;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::naming::{files_owner_pid, owner_pid};
use super::netns::{self, NETNS_DIR, Netns, NetnsError};

/// A set of namespaces and run directories removed together when the
/// guard is dropped.
#[derive(Debug, Default)]
pub struct CleanupGuard {
    owned: Vec<Owned>,
}

#[derive(Debug)]
struct Owned {
    what: Resource,
    /// Slot in the signal handler's table, if there was room.
    slot: Option<usize>,
}

#[derive(Debug)]
enum Resource {
    Netns(Netns),
    /// A run directory, removed with everything in it.
    Dir(PathBuf),
}

/// Where run directories are made: the system's temporary directory
/// (`$TMPDIR`, else `/tmp`).
pub fn run_dir_parent() -> PathBuf {
    std::env::temp_dir()
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
        let slot = register(&Netns::existing(name).path(), Kind::Netns);
        if slot.is_none() {
            tracing::warn!(
                namespace = name,
                "signal cleanup table full: this namespace is removed on drop or by the next sweep only"
            );
        }
        match netns::create(name) {
            Ok(netns) => {
                if let (Some(slot), Ok(file)) = (slot, std::fs::metadata(netns.path())) {
                    TABLE[slot]
                        .namespace_ino
                        .store(file.ino(), Ordering::Release);
                    TABLE[slot]
                        .namespace_dev
                        .store(file.dev(), Ordering::Release);
                }
                self.owned.push(Owned {
                    what: Resource::Netns(netns.clone()),
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

    /// Creates the run directory `name` in [`run_dir_parent`], readable by
    /// root only, owned by this guard like a namespace: removed with its
    /// files on drop, on signals, or by the next sweep. Only files go in
    /// it, no subdirectories (the signal handler empties one level).
    pub fn create_run_dir(&mut self, name: &str) -> std::io::Result<PathBuf> {
        let path = run_dir_parent().join(name);
        let slot = register(&path, Kind::Dir);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                self.owned.push(Owned {
                    what: Resource::Dir(path.clone()),
                    slot,
                });
                Ok(path)
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
            match &owned.what {
                Resource::Netns(netns) => {
                    if let Err(e) = netns::delete(netns.name()) {
                        tracing::error!("cleanup: {e}");
                    }
                }
                Resource::Dir(path) => {
                    if let Err(e) = std::fs::remove_dir_all(path) {
                        tracing::error!("cleanup: run directory {}: {e}", path.display());
                    }
                }
            }
            if let Some(slot) = owned.slot {
                unregister(slot);
            }
        }
    }
}

/// Removes namespaces and run directories whose name is of the lab's scheme
/// with `tag` and whose owning process is dead (a run killed by SIGKILL or a
/// power cut). Returns the names removed.
pub fn sweep_stale(tag: &str) -> Result<Vec<String>, NetnsError> {
    let mut removed = sweep_stale_namespaces(tag)?;
    removed.extend(sweep_stale_run_dirs(tag));
    Ok(removed)
}

fn sweep_stale_namespaces(tag: &str) -> Result<Vec<String>, NetnsError> {
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

/// Run directories are only files of a dead run: one that cannot be removed
/// is logged, and does not stop the next run.
fn sweep_stale_run_dirs(tag: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_dir_parent()) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(pid) = files_owner_pid(&name, tag) else {
            continue;
        };
        if process_is_alive(pid) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(directory = %name, pid, "removed a stale run directory of a dead run");
                removed.push(name);
            }
            Err(e) => tracing::warn!(directory = %name, "cannot remove a stale run directory: {e}"),
        }
    }
    removed
}

fn process_is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // EPERM means it exists but belongs to someone else.
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Empties the directory at `path` (one level: run directories hold no
/// subdirectories) and removes it, with raw system calls only, so a signal
/// handler may call it. What cannot be removed stays for the next sweep.
///
/// # Safety
/// `path` must point to a NUL-terminated string.
unsafe fn remove_dir_raw(path: *const libc::c_char) {
    // SAFETY: `path` is NUL-terminated (caller); `name` is NUL-terminated
    // (for_each_entry_raw) and `fd` open until closed here.
    unsafe {
        let fd = libc::open(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd >= 0 {
            for_each_entry_raw(fd, |name| {
                if !name.starts_with(b".\0") && !name.starts_with(b"..\0") {
                    libc::unlinkat(fd, name.as_ptr().cast(), 0);
                }
            });
            libc::close(fd);
        }
        libc::rmdir(path);
    }
}

/// Calls `each` with the name of every entry of the open directory `fd`
/// (its bytes up to and including the NUL, then the record's padding),
/// listed with getdents64 into a stack buffer: no allocation, so a signal
/// handler may call it.
///
/// # Safety
/// `fd` must be an open directory.
unsafe fn for_each_entry_raw(fd: libc::c_int, mut each: impl FnMut(&[u8])) {
    /// Offsets in `struct linux_dirent64`: u64 ino, i64 off, u16 reclen,
    /// u8 type, then the NUL-terminated name.
    const RECLEN: usize = 16;
    const NAME: usize = 19;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `fd` is an open directory (caller); getdents64 writes at
        // most `buf.len()` bytes into `buf`.
        let filled =
            unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        let Ok(filled) = usize::try_from(filled) else {
            return;
        };
        if filled == 0 {
            return;
        }
        let mut at = 0;
        while at + NAME < filled {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + RECLEN], buf[at + RECLEN + 1]]));
            if reclen == 0 || at + reclen > filled {
                break;
            }
            each(&buf[at + NAME..at + reclen]);
            at += reclen;
        }
    }
}

/// Kills every process inside a registered namespace (one that left its
/// process group, as daemons do), with raw system calls only: `/proc` is
/// listed with getdents64 and each `/proc/PID/ns/net` compared by stat.
///
/// # Safety
/// Async-signal-safe; touches only stack buffers and the table.
unsafe fn kill_processes_in_registered_namespaces_raw() {
    let own = std::process::id();
    // SAFETY: `fd` is open until closed here; `path` is NUL-terminated (it
    // is zeroed and at most 6 + 10 + 7 bytes are written into its 32).
    unsafe {
        let fd = libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        for_each_entry_raw(fd, |name| {
            let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 10 || name.get(digits) != Some(&0) {
                return;
            }
            let pid = name[..digits].iter().fold(0u32, |pid, &digit| {
                pid.wrapping_mul(10).wrapping_add(u32::from(digit - b'0'))
            });
            if pid == own {
                return;
            }
            let mut path = [0u8; 32];
            path[..6].copy_from_slice(b"/proc/");
            path[6..6 + digits].copy_from_slice(&name[..digits]);
            path[6 + digits..6 + digits + 7].copy_from_slice(b"/ns/net");
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::stat(path.as_ptr().cast(), &mut stat) != 0 {
                return;
            }
            let inside = TABLE.iter().any(|slot| {
                slot.state.load(Ordering::Acquire) == READY
                    && slot.namespace_ino.load(Ordering::Acquire) == stat.st_ino
                    && slot.namespace_dev.load(Ordering::Acquire) == stat.st_dev
            });
            if inside {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        });
        libc::close(fd);
    }
}

// --- The table the signal handler reads -----------------------------------

/// Namespaces and run directories alive at once in one process (5 per
/// topology).
const SLOTS: usize = 64;
/// Longest namespace path stored, including the terminating NUL.
const PATH_CAPACITY: usize = 128;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// What a registered path is, which says how the handler removes it.
#[derive(Clone, Copy)]
enum Kind {
    /// A namespace file: unmounted, then unlinked.
    Netns,
    /// A run directory: emptied, then removed.
    Dir,
}

struct Slot {
    state: AtomicU8,
    /// Written only while `state` is WRITING, like `path`.
    kind: UnsafeCell<Kind>,
    /// NUL-terminated path; written only while `state` is WRITING.
    path: UnsafeCell<[u8; PATH_CAPACITY]>,
    /// A namespace's identity (its file's inode and device, as every
    /// process's `/proc/PID/ns/net` shows it); 0 until it exists.
    namespace_ino: AtomicU64,
    namespace_dev: AtomicU64,
}

// SAFETY: `kind` and `path` are written only by the thread that moved
// `state` from FREE to WRITING, and read only when `state` is READY
// (Acquire after Release).
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU8::new(FREE),
        kind: UnsafeCell::new(Kind::Netns),
        path: UnsafeCell::new([0; PATH_CAPACITY]),
        namespace_ino: AtomicU64::new(0),
        namespace_dev: AtomicU64::new(0),
    }
}; SLOTS];

fn register(path: &Path, kind: Kind) -> Option<usize> {
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
            // SAFETY: this thread won FREE -> WRITING, so it alone touches
            // `kind` and `path`.
            let dest = unsafe {
                *slot.kind.get() = kind;
                &mut *slot.path.get()
            };
            dest[..bytes.len()].copy_from_slice(bytes);
            dest[bytes.len()] = 0;
            slot.state.store(READY, Ordering::Release);
            return Some(index);
        }
    }
    None
}

fn unregister(index: usize) {
    TABLE[index].namespace_ino.store(0, Ordering::Release);
    TABLE[index].state.store(FREE, Ordering::Release);
}

// --- Process groups the signal handler kills --------------------------------

/// Process groups of [`super::process::LabProcess`]es alive at once.
const GROUP_SLOTS: usize = 64;

/// Leaders of running process groups; 0 is a free slot.
static GROUPS: [AtomicI32; GROUP_SLOTS] = [const { AtomicI32::new(0) }; GROUP_SLOTS];

/// A registered process group; dropping it unregisters the group.
#[derive(Debug)]
pub struct ProcessGroupSlot(usize);

/// Registers the process group led by `leader` for the signal handler to
/// kill; `None` (with a warning) when the table is full, which leaves that
/// group to [`super::process::LabProcess`]'s drop and the next sweep.
pub fn register_process_group(leader: u32) -> Option<ProcessGroupSlot> {
    install_signal_handlers();
    let leader = i32::try_from(leader).ok()?;
    let slot = GROUPS.iter().position(|slot| {
        slot.compare_exchange(0, leader, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if slot.is_none() {
        tracing::warn!(
            leader,
            "signal cleanup table full: this process group is killed on drop or by the next sweep only"
        );
    }
    slot.map(ProcessGroupSlot)
}

impl Drop for ProcessGroupSlot {
    fn drop(&mut self) {
        GROUPS[self.0].store(0, Ordering::Release);
    }
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

/// Kills every registered process group, removes every registered
/// namespace and run directory, then re-raises
/// the signal under the previous action. Only async-signal-safe calls: no
/// allocation, no locks.
extern "C" fn on_cleanup_signal(signal: libc::c_int) {
    // Processes first: they keep namespaces alive after their files go.
    for group in &GROUPS {
        let leader = group.load(Ordering::Acquire);
        if leader > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe {
                libc::kill(-leader, libc::SIGKILL);
            }
        }
    }
    // SAFETY: raw system calls on stack buffers only.
    unsafe { kill_processes_in_registered_namespaces_raw() };
    for slot in &TABLE {
        if slot.state.load(Ordering::Acquire) == READY {
            let path = slot.path.get() as *const libc::c_char;
            // SAFETY: READY slots hold a NUL-terminated path and their kind.
            unsafe {
                match *slot.kind.get() {
                    Kind::Netns => {
                        libc::umount2(path, libc::MNT_DETACH);
                        libc::unlink(path);
                    }
                    Kind::Dir => remove_dir_raw(path),
                }
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
