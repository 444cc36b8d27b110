//! Recovery: replay every segment, repair a torn tail, refuse damage anywhere else.
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::record::{self, RecordType, Stop};
use super::{io_err, list_segments, ReadResult, Result, Wal, WalError, WalOptions, WalSnapshot};

pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, ReadResult)> {
    let segments = list_segments(dir)?;
    if segments.is_empty() {
        return Err(WalError::Corrupt(format!("no WAL segments in {}", dir.display())));
    }
    let mut rr = ReadResult::default();
    let mut metadata: Option<Vec<u8>> = None;
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut crc = 0u32;
    let mut tail_offset = 0usize;
    let mut tail_torn_end = 0usize;
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        let buf = std::fs::read(&seg.path).map_err(io_err(format!("read {}", seg.path.display())))?;
        let name = seg.path.display();
        let mut pos = 0usize;
        let mut first = true;
        loop {
            let rec = match record::decode(&buf, pos, crc) {
                Ok(r) => r,
                Err(Stop::End) => break,
                Err(Stop::Torn) if i == last => {
                    tail_torn_end = buf.len() - buf.iter().rev().take_while(|&&b| b == 0).count();
                    break;
                }
                Err(Stop::Torn) => {
                    return Err(WalError::Corrupt(format!("{name}: record at offset {pos} is cut short")));
                }
                Err(Stop::Corrupt(why)) => return Err(WalError::Corrupt(format!("{name}: {why}"))),
            };
            if first {
                if rec.t != RecordType::Crc {
                    return Err(WalError::Corrupt(format!("{name}: segment does not open with a crc record")));
                }
                let carried = u32::from_le_bytes(rec.data.try_into().unwrap());
                if i > 0 && carried != crc {
                    return Err(WalError::Corrupt(format!(
                        "{name}: crc chain broken between segments (carried {carried:08x}, expected {crc:08x})"
                    )));
                }
                first = false;
            }
            crc = rec.crc;
            match rec.t {
                RecordType::Crc => {}
                RecordType::Metadata => {
                    if metadata.as_deref().is_some_and(|m| m != rec.data) {
                        return Err(WalError::Corrupt(format!("{name}: metadata differs from earlier segments")));
                    }
                    metadata = Some(rec.data.to_vec());
                }
                RecordType::Entry => {
                    let index = checked_index(record::get_u64(rec.data, 0)?, &name)?;
                    // A rewritten tail: drop what this entry and its successors replace.
                    let keep = entries.partition_point(|(i, _)| *i < index);
                    entries.truncate(keep);
                    entries.push((index, rec.data[8..].to_vec()));
                }
                RecordType::State => rr.hard_state = Some(rec.data.to_vec()),
                RecordType::Snapshot => {
                    let index = checked_index(record::get_u64(rec.data, 0)?, &name)?;
                    let term = record::get_u64(rec.data, 8)?;
                    if index >= rr.snapshot.index {
                        rr.snapshot = WalSnapshot { index, term };
                        rr.conf_state = rec.data[16..].to_vec();
                    }
                }
            }
            pos = rec.next;
        }
        if i == last {
            tail_offset = pos;
        }
    }
    let tail = &segments[last];
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tail.path)
        .map_err(io_err(format!("open {}", tail.path.display())))?;
    if tail_torn_end > tail_offset {
        // Zero the torn frame so the next append cannot be mistaken for its continuation.
        let zeros = vec![0u8; tail_torn_end - tail_offset];
        file.write_all_at(&zeros, tail_offset as u64).map_err(io_err(format!("repair {}", tail.path.display())))?;
        file.sync_data().map_err(io_err(format!("sync {}", tail.path.display())))?;
    }
    let metadata = metadata.ok_or_else(|| WalError::Corrupt("no metadata record".into()))?;
    let snap = rr.snapshot;
    entries.retain(|(i, _)| *i > snap.index);
    for (expect, (i, _)) in (snap.index + 1..).zip(entries.iter()) {
        if *i != expect {
            return Err(WalError::Corrupt(format!("entries are not contiguous: expected index {expect}, found {i}")));
        }
    }
    let last_index = entries.last().map_or(snap.index, |(i, _)| *i);
    let wal = Wal {
        dir: dir.to_path_buf(),
        opts,
        metadata: metadata.clone(),
        segments,
        file,
        offset: tail_offset as u64,
        crc,
        last_index,
        snapshot: snap,
        conf_state: rr.conf_state.clone(),
        hard_state: rr.hard_state.clone(),
        buf: Vec::with_capacity(1 << 16),
    };
    rr.metadata = metadata;
    rr.entries = entries;
    Ok((wal, rr))
}

/// Raft indexes this far are no log's: a record claiming one is damage (or forged), refused before any
/// arithmetic on it can overflow.
const MAX_INDEX: u64 = i64::MAX as u64;

fn checked_index(index: u64, name: &impl std::fmt::Display) -> Result<u64> {
    if index > MAX_INDEX {
        return Err(WalError::Corrupt(format!("{name}: record index {index} is out of range")));
    }
    Ok(index)
}
