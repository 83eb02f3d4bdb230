//! The userspace link emulator: forwards Ethernet frames between the two emu
//! ends of each link (`cli<i>` <-> `gw<i>`), each direction on its own thread
//! with its own [`LinkModel`], releasing every frame at the time its verdict
//! says.
//!
//! Design as measured on this machine kind (EMULATOR-NOTES.md): batched
//! AF_PACKET receive and send (see `packet_socket`), one timer per direction
//! (sleep in `ppoll` until the head frame is due, timer slack 1 ns: busy
//! polling would starve a 2-core machine), SCHED_FIFO where allowed (keeps
//! frames within a millisecond of their due time under load), buffers from a
//! reused pool. The model sees whole Ethernet frames: its rate limit counts
//! the 14-byte header too, as netem does on Ethernet.
//!
//! The runner steers links while they run ([`Forwarder::set_condition`],
//! [`Forwarder::set_params`]) through a channel plus an eventfd that wakes
//! the thread, and reads [`CounterSnapshot`]s at any time.
//!
//! With captures on ([`ForwardedLink::capturing_to`]), each direction also
//! writes what entered and left it to a pcapng file (see [`capture`]); with
//! them off the threads test one `Option` per batch.

pub mod capacity;
pub mod capture;
mod counters;
mod packet_socket;
mod pool;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use counters::{CounterSnapshot, DirectionCounters, LocalDrop};
pub use pool::FRAME_CAPACITY;

use crate::emulator::model::{Direction, LinkCondition, LinkModel, LinkParams, Verdict};
use crate::topology::{LinkAddressing, Netns, NetnsError, NetnsThread};
use crate::traffic::FifoPriority;
use capture::{CaptureError, DirectionCapture, DropCause, capture_path};
use packet_socket::{MessageBatch, PacketSocket, interface_index};
use pool::{FramePool, Pending, ReleaseQueue, Slot};

/// Frames per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 64;

/// One link to forward: its two emu-side interfaces and a model per direction.
#[derive(Debug)]
pub struct ForwardedLink {
    /// Emu interface facing the client (`cli<i>`).
    pub client_side: String,
    /// Emu interface facing the gateway (`gw<i>`).
    pub gateway_side: String,
    /// Client -> gateway.
    pub up: LinkModel,
    /// Gateway -> client.
    pub down: LinkModel,
    /// Capture files (up, down), when captures are on.
    pub captures: Option<(PathBuf, PathBuf)>,
}

impl ForwardedLink {
    /// The link of the topology plan `addressing`, with its two models.
    pub fn new(addressing: &LinkAddressing, up: LinkModel, down: LinkModel) -> ForwardedLink {
        ForwardedLink {
            client_side: addressing.emu_client_side.clone(),
            gateway_side: addressing.emu_gateway_side.clone(),
            up,
            down,
            captures: None,
        }
    }

    /// The same link, capturing both directions into `dir` as
    /// `<name>-up.pcapng` and `<name>-down.pcapng`.
    pub fn capturing_to(self, dir: &Path, name: &str) -> ForwardedLink {
        ForwardedLink {
            captures: Some((
                capture_path(dir, name, Direction::Up),
                capture_path(dir, name, Direction::Down),
            )),
            ..self
        }
    }
}

/// How the forwarder threads run.
#[derive(Clone, Debug)]
pub struct ForwarderOptions {
    /// Time zero of the link models: the scenario's start.
    pub start: Instant,
    /// SCHED_FIFO priority for the threads; `None` for normal scheduling.
    /// Refusal by the kernel is not an error (see [`CounterSnapshot::realtime`]).
    pub realtime_priority: Option<i32>,
    /// Frames one direction may hold at once (buffers are allocated as
    /// needed up to this); more are dropped as [`LocalDrop::NoBuffer`].
    pub max_frames_in_flight: usize,
}

impl ForwarderOptions {
    /// Defaults: real-time priority 10, up to 32768 frames (64 MB) in flight
    /// per direction, which covers 100k frames/s held for 300 ms.
    pub fn new(start: Instant) -> ForwarderOptions {
        ForwarderOptions {
            start,
            realtime_priority: Some(10),
            max_frames_in_flight: 32_768,
        }
    }
}

/// A failure of the forwarder.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// The emu namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A socket or system call failed.
    #[error("forwarder link {link} {direction:?}: {action}: {source}")]
    Io {
        /// Link index.
        link: usize,
        /// Direction.
        direction: Direction,
        /// What was attempted, naming the interface where there is one.
        action: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// No such link.
    #[error("forwarder: no link {link} (it forwards {links})")]
    UnknownLink {
        /// Index asked for.
        link: usize,
        /// Links forwarded.
        links: usize,
    },
    /// A capture file could not be written (forwarding went on without it).
    #[error("forwarder link {link} {direction:?}: {source}")]
    Capture {
        /// Link index.
        link: usize,
        /// Direction.
        direction: Direction,
        /// The file and what failed.
        source: CaptureError,
    },
    /// The direction's thread has ended (after an error) and takes no commands.
    #[error("forwarder link {link} {direction:?}: the thread has stopped")]
    Stopped {
        /// Link index.
        link: usize,
        /// Direction.
        direction: Direction,
    },
}

/// A command for a running direction.
enum Control {
    SetCondition(LinkCondition),
    SetParams(Box<LinkParams>),
    Stop,
}

/// Running forwarder threads; dropping it stops and joins them.
pub struct Forwarder {
    /// Two per link: up then down.
    directions: Vec<DirectionHandle>,
}

struct DirectionHandle {
    link: usize,
    direction: Direction,
    control: mpsc::Sender<Control>,
    waker: Arc<Waker>,
    counters: Arc<DirectionCounters>,
    thread: Option<NetnsThread<Result<(), ForwarderError>>>,
}

impl Forwarder {
    /// Starts two threads per link inside `emu`. Returns once every thread
    /// has its sockets open, so setup errors are reported here.
    pub fn start(
        emu: &Netns,
        links: Vec<ForwardedLink>,
        options: &ForwarderOptions,
    ) -> Result<Forwarder, ForwarderError> {
        let mut forwarder = Forwarder {
            directions: Vec::with_capacity(links.len() * 2),
        };
        for (index, link) in links.into_iter().enumerate() {
            let ForwardedLink {
                client_side,
                gateway_side,
                up,
                down,
                captures,
            } = link;
            let (up_capture, down_capture) = captures.unzip();
            let up = DirectionHandle::spawn(
                emu,
                index,
                up,
                (&client_side, &gateway_side),
                up_capture,
                options,
            )?;
            forwarder.directions.push(up);
            let down = DirectionHandle::spawn(
                emu,
                index,
                down,
                (&gateway_side, &client_side),
                down_capture,
                options,
            )?;
            forwarder.directions.push(down);
        }
        Ok(forwarder)
    }

    /// Sets the condition of `link` in both directions (a blackhole, down or
    /// up event). For "down", also drop the carrier with
    /// [`crate::topology::Topology::set_carrier`].
    pub fn set_condition(
        &self,
        link: usize,
        condition: LinkCondition,
    ) -> Result<(), ForwarderError> {
        for handle in self.link_directions(link)? {
            handle.send(Control::SetCondition(condition))?;
        }
        Ok(())
    }

    /// Replaces the parameters of `link` in both directions (a `set` event).
    pub fn set_params(&self, link: usize, params: &LinkParams) -> Result<(), ForwarderError> {
        for handle in self.link_directions(link)? {
            handle.send(Control::SetParams(Box::new(params.clone())))?;
        }
        Ok(())
    }

    /// The counters of one direction of `link` now.
    pub fn counters(
        &self,
        link: usize,
        direction: Direction,
    ) -> Result<CounterSnapshot, ForwarderError> {
        let handle = self
            .link_directions(link)?
            .iter()
            .find(|h| h.direction == direction)
            .ok_or(ForwarderError::UnknownLink {
                link,
                links: self.links(),
            })?;
        Ok(handle.counters.snapshot())
    }

    /// Number of links forwarded.
    pub fn links(&self) -> usize {
        self.directions.len() / 2
    }

    /// Stops all threads; returns the first error any of them ended with.
    pub fn stop(mut self) -> Result<(), ForwarderError> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<(), ForwarderError> {
        for handle in &self.directions {
            // A thread that already ended reports its error on join below.
            let _ = handle.send(Control::Stop);
        }
        let mut first_error = Ok(());
        for handle in &mut self.directions {
            if let Some(thread) = handle.thread.take() {
                let result = thread.join().map_err(ForwarderError::from).and_then(|r| r);
                if first_error.is_ok() {
                    first_error = result;
                }
            }
        }
        first_error
    }

    fn link_directions(&self, link: usize) -> Result<&[DirectionHandle], ForwarderError> {
        self.directions
            .get(link * 2..link * 2 + 2)
            .ok_or(ForwarderError::UnknownLink {
                link,
                links: self.links(),
            })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Err(e) = self.stop_all() {
            tracing::error!("forwarder: {e}");
        }
    }
}

impl DirectionHandle {
    fn spawn(
        emu: &Netns,
        link: usize,
        model: LinkModel,
        (from, to): (&str, &str),
        capture: Option<PathBuf>,
        options: &ForwarderOptions,
    ) -> Result<DirectionHandle, ForwarderError> {
        let direction = model.direction();
        let io_error = |action: String| {
            move |source| ForwarderError::Io {
                link,
                direction,
                action,
                source,
            }
        };
        let waker = Arc::new(Waker::new().map_err(io_error("create an eventfd".into()))?);
        let counters = Arc::new(DirectionCounters::default());
        let (control, commands) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let setup = WorkerSetup {
            link,
            model,
            from: from.to_owned(),
            to: to.to_owned(),
            capture,
            options: options.clone(),
            commands,
            waker: Arc::clone(&waker),
            counters: Arc::clone(&counters),
        };
        let name = format!(
            "fwd{link}-{}",
            if direction == Direction::Up {
                "up"
            } else {
                "down"
            }
        );
        let thread = emu.spawn(&name, move || match Worker::open(setup) {
            Ok(worker) => {
                let _ = ready_tx.send(Ok(()));
                worker.run()
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                Ok(())
            }
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(DirectionHandle {
                link,
                direction,
                control,
                waker,
                counters,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(thread.join().err().map_or(
                ForwarderError::Stopped { link, direction },
                ForwarderError::from,
            )),
        }
    }

    fn send(&self, command: Control) -> Result<(), ForwarderError> {
        let stopped = ForwarderError::Stopped {
            link: self.link,
            direction: self.direction,
        };
        self.control.send(command).map_err(|_| stopped)?;
        self.waker.wake();
        Ok(())
    }
}

/// An eventfd that wakes a thread sleeping in `ppoll`.
struct Waker {
    fd: OwnedFd,
}

impl Waker {
    fn new() -> io::Result<Waker> {
        // SAFETY: eventfd() has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (never in
        // practice) only means the thread is already due to wake.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN when already clear.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }
}

/// Everything a direction's thread needs, moved into it.
struct WorkerSetup {
    link: usize,
    model: LinkModel,
    from: String,
    to: String,
    capture: Option<PathBuf>,
    options: ForwarderOptions,
    commands: mpsc::Receiver<Control>,
    waker: Arc<Waker>,
    counters: Arc<DirectionCounters>,
}

/// One direction of one link, on its thread inside the emu namespace.
struct Worker {
    link: usize,
    model: LinkModel,
    receiver: PacketSocket,
    sender: PacketSocket,
    commands: mpsc::Receiver<Control>,
    waker: Arc<Waker>,
    counters: Arc<DirectionCounters>,
    start: Instant,
    pool: FramePool,
    queue: ReleaseQueue,
    /// Receive batch; entry `i` points at the buffer of `receive_slots[i]`.
    receive_batch: MessageBatch,
    receive_slots: Vec<Slot>,
    /// Send batch; entry `i` holds `sending[i]`.
    send_batch: MessageBatch,
    sending: Vec<Pending>,
    /// What became of each frame of the last received batch.
    fates: [Fate; BATCH],
    capture: Option<DirectionCapture>,
    /// Held for the thread's life (the worker never leaves it).
    _realtime: Option<FifoPriority>,
}

/// What the worker did with a received frame.
#[derive(Clone, Copy)]
enum Fate {
    /// Waiting in this buffer for its due time.
    Queued(Slot),
    /// Not forwarded; its buffer is reused by the next batch.
    Dropped(DropCause),
}

/// Whether the worker goes on after a command.
enum Continue {
    Yes,
    Stop,
}

impl Worker {
    fn open(setup: WorkerSetup) -> Result<Worker, ForwarderError> {
        let WorkerSetup {
            link,
            model,
            from,
            to,
            capture,
            options,
            commands,
            waker,
            counters,
        } = setup;
        let direction = model.direction();
        let io_error = |action: String| {
            move |source| ForwarderError::Io {
                link,
                direction,
                action,
                source,
            }
        };
        let from_index =
            interface_index(&from).map_err(io_error(format!("find interface {from}")))?;
        let to_index = interface_index(&to).map_err(io_error(format!("find interface {to}")))?;
        let receiver = PacketSocket::receiver(from_index).map_err(io_error(format!(
            "open a receiving packet socket on {from}"
        )))?;
        let sender = PacketSocket::sender(to_index)
            .map_err(io_error(format!("open a sending packet socket on {to}")))?;
        let capture = capture
            .map(|path| DirectionCapture::create(&path, &from, &to, options.start))
            .transpose()
            .map_err(|source| ForwarderError::Capture {
                link,
                direction,
                source,
            })?;
        let realtime = tune_thread(options.realtime_priority);
        counters.set_realtime(realtime.is_some());

        let mut pool = FramePool::new(options.max_frames_in_flight + BATCH);
        let mut receive_batch = MessageBatch::new(BATCH);
        let mut receive_slots = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            let slot = pool.take().expect("a new pool holds at least one batch");
            receive_batch.point(i, pool.buffer(slot).as_mut_ptr(), FRAME_CAPACITY);
            receive_slots.push(slot);
        }
        Ok(Worker {
            link,
            model,
            receiver,
            sender,
            commands,
            waker,
            counters,
            start: options.start,
            pool,
            queue: ReleaseQueue::new(options.max_frames_in_flight + BATCH),
            receive_batch,
            receive_slots,
            send_batch: MessageBatch::new(BATCH),
            sending: Vec::with_capacity(BATCH),
            fates: [Fate::Queued(0); BATCH],
            capture,
            _realtime: realtime,
        })
    }

    fn run(mut self) -> Result<(), ForwarderError> {
        let mut busy = false;
        loop {
            self.release_due()?;
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.queue
                    .next_due_ns()
                    .map(|due| Duration::from_nanos(due.saturating_sub(self.now_ns())))
            };
            let (frames_ready, commands_ready) = self.wait(timeout)?;
            if commands_ready && matches!(self.apply_commands(), Continue::Stop) {
                return self.finish_capture();
            }
            busy = frames_ready && self.receive()? == BATCH;
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sleeps until a frame arrives, a command comes, or `timeout` passes.
    fn wait(&self, timeout: Option<Duration>) -> Result<(bool, bool), ForwarderError> {
        let mut fds = [
            libc::pollfd {
                fd: self.receiver.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.waker.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timespec = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let timeout_ptr = timespec
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` and the timespec live across the call.
        let result = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout_ptr,
                std::ptr::null(),
            )
        };
        if result < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                return Ok((false, false));
            }
            return Err(self.io_error("wait (ppoll)", error));
        }
        // POLLERR on the packet socket (interface went down) is read as a
        // frame-ready event: the receive call then clears the error.
        Ok((fds[0].revents != 0, fds[1].revents != 0))
    }

    fn apply_commands(&mut self) -> Continue {
        self.waker.clear();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Control::SetCondition(condition) => self.model.set_condition(condition),
                Control::SetParams(params) => self.model.set_params(*params),
                Control::Stop => return Continue::Stop,
            }
        }
        Continue::Yes
    }

    /// Receives one batch and gives each frame its verdict; returns how many
    /// frames came.
    fn receive(&mut self) -> Result<usize, ForwarderError> {
        // SAFETY: every entry points at the pool buffer of its receive slot,
        // FRAME_CAPACITY long; pool chunks never move or shrink.
        let received = match unsafe { self.receive_batch.receive(&self.receiver, BATCH) } {
            Ok(n) => n,
            // The interface went down (carrier event): nothing to receive.
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(self.io_error("receive (recvmmsg)", e)),
        };
        let now = self.start.elapsed();
        for i in 0..received {
            let len = self.receive_batch.received_len(i);
            self.counters.on_received(len);
            self.fates[i] = self.decide(i, len, now);
        }
        self.counters.set_in_flight(self.queue.len());
        if let Some(capture) = &mut self.capture {
            for (i, fate) in self.fates[..received].iter().enumerate() {
                let (slot, dropped) = match *fate {
                    Fate::Queued(slot) => (slot, None),
                    Fate::Dropped(cause) => (self.receive_slots[i], Some(cause)),
                };
                let len = self.receive_batch.received_len(i).min(FRAME_CAPACITY);
                capture.arrived(now, &self.pool.buffer(slot)[..len], dropped);
            }
        }
        Ok(received)
    }

    /// Gives received frame `i` its verdict, queues it if it is to leave,
    /// and counts it if not.
    fn decide(&mut self, i: usize, len: usize, now: Duration) -> Fate {
        if self.receive_batch.truncated(i) {
            self.counters.on_local_drop(LocalDrop::Oversize, 1);
            return Fate::Dropped(DropCause::Local(LocalDrop::Oversize));
        }
        match self.model.on_frame(now, len) {
            Verdict::Drop(reason) => {
                self.counters.on_model_drop(reason);
                Fate::Dropped(DropCause::Model(reason))
            }
            Verdict::Deliver { at, duplicate_at } => self.schedule(i, len, at, duplicate_at),
        }
    }

    /// Queues received frame `i` (and its duplicate) and gives its receive
    /// entry a fresh buffer.
    fn schedule(
        &mut self,
        i: usize,
        len: usize,
        at: Duration,
        duplicate_at: Option<Duration>,
    ) -> Fate {
        let Some(fresh) = self.pool.take() else {
            self.counters.on_local_drop(LocalDrop::NoBuffer, 1);
            return Fate::Dropped(DropCause::Local(LocalDrop::NoBuffer));
        };
        let slot = std::mem::replace(&mut self.receive_slots[i], fresh);
        self.receive_batch
            .point(i, self.pool.buffer(fresh).as_mut_ptr(), FRAME_CAPACITY);
        let len32 = len as u32; // <= FRAME_CAPACITY: longer frames were truncated
        self.queue.push(duration_ns(at), slot, len32);
        if let Some(duplicate_at) = duplicate_at {
            match self.pool.take() {
                Some(copy) => {
                    self.pool.copy(slot, copy, len);
                    self.queue.push(duration_ns(duplicate_at), copy, len32);
                    self.counters.on_duplicated();
                }
                None => self.counters.on_local_drop(LocalDrop::NoBuffer, 1),
            }
        }
        Fate::Queued(slot)
    }

    /// Sends every frame that is due, in batches.
    fn release_due(&mut self) -> Result<(), ForwarderError> {
        loop {
            let now = self.now_ns();
            self.sending.clear();
            while self.sending.len() < BATCH {
                let Some(frame) = self.queue.pop_due(now) else {
                    break;
                };
                let i = self.sending.len();
                self.send_batch.point(
                    i,
                    self.pool.buffer(frame.slot).as_mut_ptr(),
                    frame.len as usize,
                );
                self.sending.push(frame);
            }
            if self.sending.is_empty() {
                return Ok(());
            }
            self.send_batch()?;
            self.counters.set_in_flight(self.queue.len());
            if self.sending.len() < BATCH {
                return Ok(());
            }
        }
    }

    /// Sends the frames in `sending`, records lateness, frees their buffers.
    fn send_batch(&mut self) -> Result<(), ForwarderError> {
        let count = self.sending.len();
        let mut next = 0;
        let mut failed = 0u64;
        while next < count {
            // SAFETY: entries next..count point at the pool buffers of the
            // frames in `sending`, `len` bytes each, alive until released below.
            match unsafe { self.send_batch.send(&self.sender, next, count) } {
                Ok(sent) => next += sent.max(1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_send_error(&e) => {
                    // Frame `next` is lost (interface down, buffer full): skip it.
                    self.sending[next].len = 0;
                    failed += 1;
                    next += 1;
                }
                Err(e) => return Err(self.io_error("send (sendmmsg)", e)),
            }
        }
        let sent_at = self.now_ns();
        if let Some(capture) = &mut self.capture {
            for frame in self.sending.iter().filter(|f| f.len > 0) {
                let len = frame.len as usize;
                let data = &self.pool.buffer(frame.slot)[..len];
                capture.left(Duration::from_nanos(sent_at), data);
            }
        }
        let (mut bytes, mut lateness_sum, mut lateness_max) = (0u64, 0u64, 0u64);
        for frame in &self.sending {
            if frame.len > 0 {
                let lateness = sent_at.saturating_sub(frame.due_ns);
                bytes += u64::from(frame.len);
                lateness_sum += lateness;
                lateness_max = lateness_max.max(lateness);
            }
            self.pool.release(frame.slot);
        }
        self.counters
            .on_sent(count as u64 - failed, bytes, lateness_sum, lateness_max);
        if failed > 0 {
            self.counters.on_local_drop(LocalDrop::SendFailed, failed);
        }
        Ok(())
    }

    /// Flushes the capture file, if any, when the thread stops.
    fn finish_capture(&mut self) -> Result<(), ForwarderError> {
        let Some(capture) = self.capture.take() else {
            return Ok(());
        };
        capture.finish().map_err(|source| ForwarderError::Capture {
            link: self.link,
            direction: self.model.direction(),
            source,
        })
    }

    fn io_error(&self, action: &str, source: io::Error) -> ForwarderError {
        ForwarderError::Io {
            link: self.link,
            direction: self.model.direction(),
            action: action.to_owned(),
            source,
        }
    }
}

/// Errors after which forwarding goes on without the frame.
fn is_transient_send_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENETDOWN | libc::ENXIO | libc::ENOBUFS | libc::EAGAIN | libc::EMSGSIZE)
    )
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Timer slack 1 ns (wake-ups on time, not up to 50 µs late) and SCHED_FIFO
/// at `priority` if given and allowed, while the returned guard is held.
fn tune_thread(priority: Option<i32>) -> Option<FifoPriority> {
    // SAFETY: PR_SET_TIMERSLACK sets a value of the calling thread and takes
    // no pointers.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let granted = priority.and_then(FifoPriority::enter);
    if priority.is_some() && granted.is_none() {
        tracing::info!("forwarder: real-time priority refused, running with normal scheduling");
    }
    granted
}
