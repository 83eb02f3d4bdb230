//! Packet captures of one direction of a forwarded link (`circus-lab run
//! --pcap`): a pcapng file Wireshark opens, written by that direction's
//! thread.
//!
//! One file per link and direction, `<link>-up.pcapng` (client to gateway)
//! or `<link>-down.pcapng`, with two interfaces so both sides of the
//! emulator are in one timeline:
//! - interface 0, named after the emu interface the frames arrive on
//!   (`cli<i>` up, `gw<i>` down): every frame that entered the emulator, at
//!   the time the link model saw it. A frame the emulator did not forward
//!   carries the packet comment `dropped by the emulator: <reason>` (the
//!   model's `loss`, `burst-loss`, `queue-full`, `blackhole`, `down`, or the
//!   forwarder's own `oversize`, `no-buffer`); Wireshark shows it under
//!   "Packet comments" and filters it with `frame.comment contains "dropped"`.
//! - interface 1, named after the emu interface frames leave by: every frame
//!   the emulator sent on, duplicates included, at the time it was sent.
//!
//! Timestamps are wall-clock nanoseconds (`if_tsresol` 9). The writer is
//! buffered and reuses its one option list, so capturing allocates nothing
//! per frame; a write error (disk full) ends the capture, not the forwarding,
//! and is returned by [`DirectionCapture::finish`] when the run stops.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgWriter};

use super::FRAME_CAPACITY;
use super::counters::LocalDrop;
use crate::emulator::model::{Direction, DropReason};

/// Buffered bytes per capture file: a few hundred frames between writes,
/// so the forwarder thread makes one `write` call per many batches.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Interface of the frames that entered the emulator.
const ARRIVED: u32 = 0;
/// Interface of the frames the emulator sent on.
const LEFT: u32 = 1;

/// The capture file of `link`'s `direction` in `dir`.
pub fn capture_path(dir: &Path, link: &str, direction: Direction) -> PathBuf {
    let direction = match direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    dir.join(format!("{link}-{direction}.pcapng"))
}

/// Why the emulator did not forward a frame that entered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The link model's verdict.
    Model(DropReason),
    /// The forwarder's own limit.
    Local(LocalDrop),
}

impl DropCause {
    /// The packet comment of a frame dropped for this cause.
    pub fn comment(self) -> &'static str {
        match self {
            DropCause::Model(DropReason::Loss) => "dropped by the emulator: loss",
            DropCause::Model(DropReason::BurstLoss) => "dropped by the emulator: burst-loss",
            DropCause::Model(DropReason::QueueFull) => "dropped by the emulator: queue-full",
            DropCause::Model(DropReason::Blackhole) => "dropped by the emulator: blackhole",
            DropCause::Model(DropReason::Down) => "dropped by the emulator: down",
            DropCause::Local(LocalDrop::Oversize) => "dropped by the emulator: oversize",
            DropCause::Local(LocalDrop::NoBuffer) => "dropped by the emulator: no-buffer",
            DropCause::Local(LocalDrop::SendFailed) => "dropped by the emulator: send-failed",
        }
    }
}

/// A capture that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("packet capture {}: {source}", path.display())]
pub struct CaptureError {
    /// The capture file.
    pub path: PathBuf,
    /// What failed.
    pub source: io::Error,
}

/// The open capture file of one direction.
pub struct DirectionCapture {
    path: PathBuf,
    writer: PcapNgWriter<BufWriter<File>>,
    /// Wall-clock time of the forwarder's time zero, since the Unix epoch.
    epoch: Duration,
    /// The option list of every packet block, emptied and kept between
    /// frames so a dropped frame's comment costs no allocation.
    options: Vec<EnhancedPacketOption<'static>>,
    /// The first write error; nothing is written after it.
    failed: Option<io::Error>,
}

impl DirectionCapture {
    /// Creates `path` (and its directory) for frames arriving on interface
    /// `from` and leaving by `to`; `start` is the forwarder's time zero.
    pub fn create(
        path: &Path,
        from: &str,
        to: &str,
        start: Instant,
    ) -> Result<DirectionCapture, CaptureError> {
        let error = |source| CaptureError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(error)?;
        }
        let file = File::create(path).map_err(error)?;
        let mut writer = PcapNgWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file))
            .map_err(|e| error(into_io(e)))?;
        for (name, description) in [
            (from, "frames that entered the emulator"),
            (to, "frames the emulator sent on"),
        ] {
            let interface = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: FRAME_CAPACITY as u32,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                    InterfaceDescriptionOption::IfDescription(Cow::Borrowed(description)),
                    // pcap-file writes nanoseconds; readers assume micro-
                    // seconds unless told.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            };
            writer
                .write_block(&Block::InterfaceDescription(interface))
                .map_err(|e| error(into_io(e)))?;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(DirectionCapture {
            path: path.to_owned(),
            writer,
            epoch: now.saturating_sub(start.elapsed()),
            options: Vec::with_capacity(1),
            failed: None,
        })
    }

    /// Records a frame that entered the emulator at `at` (since time zero);
    /// `dropped` says why it will not leave, if it will not.
    pub fn arrived(&mut self, at: Duration, frame: &[u8], dropped: Option<DropCause>) {
        self.write(ARRIVED, at, frame, dropped.map(DropCause::comment));
    }

    /// Records a frame the emulator sent on at `at` (since time zero).
    pub fn left(&mut self, at: Duration, frame: &[u8]) {
        self.write(LEFT, at, frame, None);
    }

    /// Flushes the file; returns the first error any write met.
    pub fn finish(mut self) -> Result<(), CaptureError> {
        let flushed = match self.failed.take() {
            Some(error) => Err(error),
            None => self.writer.get_mut().flush(),
        };
        flushed.map_err(|source| CaptureError {
            path: self.path,
            source,
        })
    }

    fn write(&mut self, interface: u32, at: Duration, frame: &[u8], comment: Option<&'static str>) {
        if self.failed.is_some() {
            return;
        }
        let mut options = std::mem::take(&mut self.options);
        options.extend(comment.map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(c))));
        let block = Block::EnhancedPacket(EnhancedPacketBlock {
            interface_id: interface,
            timestamp: self.epoch + at,
            original_len: frame.len() as u32,
            data: Cow::Borrowed(frame),
            options,
        });
        if let Err(e) = self.writer.write_block(&block) {
            tracing::warn!(
                "packet capture {}: {e}; the capture stops here",
                self.path.display()
            );
            self.failed = Some(into_io(e));
        }
        if let Block::EnhancedPacket(written) = block {
            self.options = recycle(written.options);
        }
    }
}

/// The allocation of a used option list, emptied, with the lifetime of the
/// next frame's: collecting an emptied vector into one of the same layout
/// reuses its buffer.
fn recycle(mut options: Vec<EnhancedPacketOption<'_>>) -> Vec<EnhancedPacketOption<'static>> {
    options.clear();
    options.into_iter().map_while(|_| None).collect()
}

fn into_io(error: pcap_file::PcapError) -> io::Error {
    match error {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::PcapNgReader;

    fn comments<'a>(block: &'a EnhancedPacketBlock<'_>) -> Vec<&'a str> {
        block
            .options
            .iter()
            .filter_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.as_ref()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn arrivals_drops_and_departures_read_back_on_their_interfaces() {
        let dir = std::env::temp_dir().join(format!("circus-capture-{}", std::process::id()));
        let path = capture_path(&dir.join("sub"), "wifi", Direction::Up);
        let start = Instant::now();
        let mut capture = DirectionCapture::create(&path, "cli0", "gw0", start).unwrap();
        capture.arrived(Duration::from_millis(1), &[1; 60], None);
        capture.arrived(
            Duration::from_millis(2),
            &[2; 61],
            Some(DropCause::Model(DropReason::Loss)),
        );
        capture.left(Duration::from_millis(3), &[1; 60]);
        capture.finish().unwrap();

        let file = File::open(&path).unwrap();
        let mut reader = PcapNgReader::new(file).unwrap();
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(p) = block.unwrap() {
                packets.push(p.into_owned());
            }
        }
        let interfaces = reader.interfaces();
        assert_eq!(interfaces.len(), 2);
        assert!(
            interfaces[0]
                .options
                .contains(&InterfaceDescriptionOption::IfName("cli0".into()))
        );
        assert!(
            interfaces[1]
                .options
                .contains(&InterfaceDescriptionOption::IfName("gw0".into()))
        );
        assert!(
            interfaces[0]
                .options
                .contains(&InterfaceDescriptionOption::IfTsResol(9))
        );
        let summary: Vec<_> = packets
            .iter()
            .map(|p| (p.interface_id, p.data.len(), comments(p)))
            .collect();
        assert_eq!(
            summary,
            vec![
                (ARRIVED, 60, vec![]),
                (ARRIVED, 61, vec!["dropped by the emulator: loss"]),
                (LEFT, 60, vec![]),
            ]
        );
        // Wall-clock times (within a minute of now), 2 ms apart as written.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let first = packets[0].timestamp;
        assert!(
            now.abs_diff(first) < Duration::from_secs(60),
            "{first:?} vs {now:?}"
        );
        assert_eq!(
            packets[2].timestamp - packets[0].timestamp,
            Duration::from_millis(2)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_named_in_the_error() {
        let path = Path::new("/proc/circus-no-such-dir/wifi-up.pcapng");
        let error = DirectionCapture::create(path, "cli0", "gw0", Instant::now())
            .err()
            .expect("/proc takes no new directories");
        assert!(
            error.to_string().contains("/proc/circus-no-such-dir"),
            "{error}"
        );
    }

    #[test]
    fn a_full_disk_ends_the_capture_and_is_reported_at_the_end() {
        let path = Path::new("/dev/full");
        let mut capture = DirectionCapture::create(path, "cli0", "gw0", Instant::now()).unwrap();
        // Past the write buffer: the failed write is remembered, later
        // frames are skipped, and nothing panics.
        for i in 0..2 * WRITE_BUFFER_BYTES / 100 {
            capture.arrived(Duration::from_micros(i as u64), &[0; 100], None);
        }
        assert!(
            capture.failed.is_some(),
            "the buffer was flushed and failed"
        );
        let error = capture.finish().expect_err("/dev/full takes nothing");
        assert_eq!(error.source.kind(), io::ErrorKind::StorageFull);
        assert!(error.to_string().contains("/dev/full"), "{error}");
    }

    #[test]
    fn recycling_keeps_the_option_list_allocation() {
        // Borrows a local: the recycled list outlives it.
        let text = String::from("dropped");
        let options = vec![EnhancedPacketOption::Comment(Cow::Borrowed(text.as_str()))];
        let before = options.as_ptr() as usize;
        let recycled = recycle(options);
        assert!(recycled.is_empty());
        assert_eq!(recycled.as_ptr() as usize, before, "no new allocation");
    }

    #[test]
    fn every_drop_cause_has_its_own_comment() {
        let causes = [
            DropCause::Model(DropReason::Loss),
            DropCause::Model(DropReason::BurstLoss),
            DropCause::Model(DropReason::QueueFull),
            DropCause::Model(DropReason::Blackhole),
            DropCause::Model(DropReason::Down),
            DropCause::Local(LocalDrop::Oversize),
            DropCause::Local(LocalDrop::NoBuffer),
            DropCause::Local(LocalDrop::SendFailed),
        ];
        let mut comments: Vec<_> = causes.iter().map(|c| c.comment()).collect();
        comments.sort_unstable();
        comments.dedup();
        assert_eq!(comments.len(), causes.len());
        assert!(
            comments
                .iter()
                .all(|c| c.starts_with("dropped by the emulator: "))
        );
    }
}
