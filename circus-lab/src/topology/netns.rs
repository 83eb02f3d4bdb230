//! Named network namespaces (`/run/netns/NAME`, as `ip netns` makes them) and
//! running code inside one.
//!
//! `setns` moves only the calling thread, so code runs in a namespace on a
//! fresh OS thread that enters it and nothing else: never on a tokio worker
//! or the caller's thread, which would silently stay in the wrong namespace.
//! Sockets, netlink connections and interface indices must be opened or
//! looked up on that thread: they belong to the namespace they were made in.
//!
//! Namespaces are created without forking (unlike rtnetlink's
//! `NetworkNamespace::add`): a fork of a multi-threaded process (the test
//! harness, a tokio runtime) may deadlock in the child on a lock another
//! thread held. A thread `unshare`s instead and bind-mounts its own namespace.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// Where named namespaces live (the iproute2 convention).
pub const NETNS_DIR: &str = "/run/netns";

/// A failure to create, enter or remove a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A system call on a namespace failed.
    #[error("network namespace {name}: {action} failed: {errno}")]
    Sys {
        /// The namespace name.
        name: String,
        /// What was attempted, e.g. "bind-mount /proc/thread-self/ns/net".
        action: &'static str,
        /// The error the kernel returned.
        errno: Errno,
    },
    /// The namespace file could not be opened (it does not exist?).
    #[error("network namespace {name}: cannot open {path}: {source}")]
    Open {
        /// The namespace name.
        name: String,
        /// The namespace file.
        path: PathBuf,
        /// Why opening failed.
        source: io::Error,
    },
    /// No thread could be started for the namespace.
    #[error("network namespace {name}: cannot start a thread: {source}")]
    Thread {
        /// The namespace name.
        name: String,
        /// Why spawning failed.
        source: io::Error,
    },
    /// The code run in the namespace panicked.
    #[error("network namespace {name}: the code run inside panicked")]
    Panicked {
        /// The namespace name.
        name: String,
    },
    /// A current-thread tokio runtime could not be built inside the namespace.
    #[error("network namespace {name}: cannot build a tokio runtime: {source}")]
    Runtime {
        /// The namespace name.
        name: String,
        /// Why building failed.
        source: io::Error,
    },
}

/// A named network namespace. Does not own it: removal is
/// [`super::cleanup::CleanupGuard`]'s job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Refers to the existing namespace `/run/netns/<name>`.
    pub fn existing(name: impl Into<String>) -> Netns {
        Netns { name: name.into() }
    }

    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Opens the namespace file, e.g. to move an interface into it
    /// (`setns_by_fd`) or to enter it.
    pub fn open(&self) -> Result<File, NetnsError> {
        let path = self.path();
        File::open(&path).map_err(|source| NetnsError::Open {
            name: self.name.clone(),
            path,
            source,
        })
    }

    /// Runs `f` inside the namespace on a fresh OS thread and waits for it.
    /// `f` may borrow from the caller.
    pub fn run<R, F>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = self.open()?;
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(thread_name(&self.name))
                .spawn_scoped(scope, move || {
                    self.enter(&file)?;
                    Ok(f())
                })
                .map_err(|source| NetnsError::Thread {
                    name: self.name.clone(),
                    source,
                })?;
            thread.join().map_err(|_| NetnsError::Panicked {
                name: self.name.clone(),
            })?
        })
    }

    /// Runs the future made by `make` to completion on a current-thread tokio
    /// runtime inside the namespace (a fresh OS thread), e.g. netlink requests.
    pub fn block_on<R, F, Fut>(&self, make: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = R>,
        R: Send,
    {
        self.run(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| NetnsError::Runtime {
                    name: self.name.clone(),
                    source,
                })?;
            Ok(runtime.block_on(make()))
        })?
    }

    /// Starts a long-lived thread named `thread_name` inside the namespace
    /// running `f`. Returns once the thread is inside, so a failure to enter
    /// is reported here rather than lost inside the thread.
    pub fn spawn<R, F>(&self, thread_name: &str, f: F) -> Result<NetnsThread<R>, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.open()?;
        let (entered_tx, entered_rx) = mpsc::sync_channel::<Result<(), NetnsError>>(1);
        let this = self.clone();
        let handle = std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || {
                let entered = this.enter(&file);
                drop(file);
                let ok = entered.is_ok();
                // The spawner waits for exactly this message.
                let _ = entered_tx.send(entered);
                ok.then(f)
            })
            .map_err(|source| NetnsError::Thread {
                name: self.name.clone(),
                source,
            })?;
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(NetnsThread {
                netns: self.name.clone(),
                handle,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err(NetnsError::Panicked {
                name: self.name.clone(),
            }),
        }
    }

    /// Moves the calling thread into this namespace.
    fn enter(&self, file: &File) -> Result<(), NetnsError> {
        nix::sched::setns(file, CloneFlags::CLONE_NEWNET).map_err(|errno| NetnsError::Sys {
            name: self.name.clone(),
            action: "setns",
            errno,
        })
    }
}

/// A thread started inside a namespace by [`Netns::spawn`].
#[derive(Debug)]
pub struct NetnsThread<R> {
    netns: String,
    /// `None` only when entering failed, which `spawn` already reported.
    handle: JoinHandle<Option<R>>,
}

impl<R> NetnsThread<R> {
    /// Waits for the thread and returns what it returned.
    pub fn join(self) -> Result<R, NetnsError> {
        match self.handle.join() {
            Ok(Some(r)) => Ok(r),
            Ok(None) | Err(_) => Err(NetnsError::Panicked { name: self.netns }),
        }
    }

    /// Whether the thread has finished (join will not block).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Creates the namespace `/run/netns/<name>`; fails if it exists.
pub fn create(name: &str) -> Result<Netns, NetnsError> {
    let netns = Netns::existing(name);
    let sys = |action: &'static str| {
        move |errno| NetnsError::Sys {
            name: name.to_owned(),
            action,
            errno,
        }
    };
    ensure_netns_dir().map_err(sys("prepare /run/netns"))?;
    let path = netns.path();
    let created = nix::fcntl::open(
        &path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL,
        Mode::empty(),
    )
    .map_err(sys("create the namespace file"))?;
    drop(created);
    let bound = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare"))?;
                // /proc/self would name the main thread's namespace, not ours.
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys("bind-mount /proc/thread-self/ns/net"))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetnsError::Panicked {
                    name: name.to_owned(),
                })
            })
    });
    if let Err(e) = bound {
        let _ = nix::unistd::unlink(&path);
        return Err(e);
    }
    Ok(netns)
}

/// Kills the processes inside `name` and removes its namespace file. The
/// namespace itself (and every interface in it) disappears once no thread
/// is inside and no socket of it is open. Removing a namespace that is
/// already gone is not an error.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    let path = Netns::existing(name).path();
    let killed = super::process::kill_processes_in(&path);
    if killed > 0 {
        tracing::info!(
            namespace = name,
            killed,
            "killed processes left in the namespace"
        );
    }
    let sys = |action: &'static str| {
        move |errno| NetnsError::Sys {
            name: name.to_owned(),
            action,
            errno,
        }
    };
    match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(sys("unmount")(errno)),
    }
    match nix::unistd::unlink(&path) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(sys("remove the namespace file")(errno)),
    }
}

/// Makes `/run/netns` exist and be a shared mount point, as `ip netns add`
/// does, so the namespace bind mounts propagate to other mount namespaces.
fn ensure_netns_dir() -> Result<(), Errno> {
    match nix::unistd::mkdir(NETNS_DIR, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let make_shared = || {
        nix::mount::mount(
            Some(""),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    if make_shared().is_ok() {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself, then share it.
    nix::mount::mount(
        Some(NETNS_DIR),
        NETNS_DIR,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    make_shared()
}

/// Thread names are cut to 15 bytes by the kernel; keep the informative end.
fn thread_name(ns: &str) -> String {
    let start = ns.len().saturating_sub(15);
    ns.get(start..).unwrap_or(ns).to_owned()
}
