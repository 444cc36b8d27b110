//! The record frame: encoding, and decoding with the chained CRC (see the format in the module doc).
use super::WalError;

pub const HEADER_LEN: usize = 12;

/// Record types. 0 is never written: a zero header is the end of a segment's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    Metadata = 1,
    Entry = 2,
    State = 3,
    Crc = 4,
    Snapshot = 5,
}

impl RecordType {
    fn from_u8(t: u8) -> Option<RecordType> {
        Some(match t {
            1 => RecordType::Metadata,
            2 => RecordType::Entry,
            3 => RecordType::State,
            4 => RecordType::Crc,
            5 => RecordType::Snapshot,
            _ => return None,
        })
    }
}

/// Frame length of a record with `data_len` bytes of data: header + data, padded to 8 bytes.
pub fn frame_len(data_len: usize) -> usize {
    (HEADER_LEN + data_len).div_ceil(8) * 8
}

/// Appends one framed record to `buf` and returns the new running CRC.
pub fn encode(buf: &mut Vec<u8>, prev_crc: u32, t: RecordType, data: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(crc32c::crc32c_append(prev_crc, &[t as u8]), data);
    let start = buf.len();
    buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[t as u8, 0, 0, 0]);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(data);
    buf.resize(start + frame_len(data.len()), 0);
    crc
}

/// One decoded record, borrowing its data from the segment's bytes.
pub struct Record<'a> {
    pub t: RecordType,
    pub crc: u32,
    pub data: &'a [u8],
    /// Offset of the next frame.
    pub next: usize,
}

/// Why decoding stopped before a valid record.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// A zero header or the end of the file: the segment's data ends here.
    End,
    /// A frame that runs past the file or fails its CRC, with nothing but zeros after it: a write that was
    /// cut by a crash. Only legal at the tail of the last segment.
    Torn,
    /// A bad frame followed by more data: the log is damaged in the middle.
    Corrupt(String),
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Decodes the frame at `pos`. `prev_crc` is the running CRC; a CRC record restarts the chain from the
/// value it carries, so its own CRC is checked against that value.
pub fn decode(buf: &[u8], pos: usize, prev_crc: u32) -> Result<Record<'_>, Stop> {
    if pos + HEADER_LEN > buf.len() {
        return if all_zero(&buf[pos.min(buf.len())..]) { Err(Stop::End) } else { Err(Stop::Torn) };
    }
    let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
    let tbyte = buf[pos + 4];
    let crc = u32::from_le_bytes(buf[pos + 8..pos + 12].try_into().unwrap());
    if len == 0 && tbyte == 0 && crc == 0 {
        return if all_zero(&buf[pos..]) {
            Err(Stop::End)
        } else {
            Err(Stop::Corrupt(format!("zero frame header at offset {pos} followed by data")))
        };
    }
    let next = pos.saturating_add(frame_len(len));
    let bad = |why: String| {
        let rest = if next <= buf.len() { &buf[next..] } else { &[][..] };
        if !all_zero(rest) {
            return Stop::Corrupt(why);
        }
        // Zeros after the frame's claimed end prove nothing when the length itself is damaged: a valid record
        // chained from this one's stored CRC, further on, shows the damage is mid-log.
        match chained_record_after(buf, pos + HEADER_LEN, crc) {
            Some(at) => Stop::Corrupt(format!("{why}, yet a valid record follows at offset {at}")),
            None => Stop::Torn,
        }
    };
    let Some(t) = RecordType::from_u8(tbyte) else {
        return Err(bad(format!("unknown record type {tbyte} at offset {pos}")));
    };
    if next > buf.len() {
        // A write cut by a crash leaves nothing decodable after it; a damaged length field in the middle of
        // the log does: the next record chains from this one's stored CRC.
        if let Some(at) = chained_record_after(buf, pos + HEADER_LEN, crc) {
            return Err(Stop::Corrupt(format!(
                "record at offset {pos} runs past the end of the file (length {len}), yet a valid record \
                 follows at offset {at}"
            )));
        }
        return Err(Stop::Torn);
    }
    let data = &buf[pos + HEADER_LEN..pos + HEADER_LEN + len];
    let chain = if t == RecordType::Crc {
        if data.len() != 4 {
            return Err(bad(format!("crc record of {} bytes at offset {pos}", data.len())));
        }
        u32::from_le_bytes(data.try_into().unwrap())
    } else {
        prev_crc
    };
    let want = crc32c::crc32c_append(crc32c::crc32c_append(chain, &[tbyte]), data);
    if want != crc {
        return Err(bad(format!("crc mismatch at offset {pos}: stored {crc:08x}, computed {want:08x}")));
    }
    Ok(Record { t, crc, data, next })
}

/// The offset of the first frame at or after `from` (frames are 8-byte aligned) that decodes with `chain` as
/// the running CRC, if any. Only recovery's error path calls it.
fn chained_record_after(buf: &[u8], from: usize, chain: u32) -> Option<usize> {
    let mut at = from.div_ceil(8) * 8;
    while at + HEADER_LEN <= buf.len() {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        let t = buf[at + 4];
        let fits = at + HEADER_LEN + len <= buf.len();
        if RecordType::from_u8(t).is_some() && buf[at + 5..at + 8] == [0, 0, 0] && fits {
            let data = &buf[at + HEADER_LEN..at + HEADER_LEN + len];
            let prev = if t == RecordType::Crc as u8 && len == 4 {
                u32::from_le_bytes(data.try_into().unwrap())
            } else {
                chain
            };
            let crc = u32::from_le_bytes(buf[at + 8..at + 12].try_into().unwrap());
            if crc == crc32c::crc32c_append(crc32c::crc32c_append(prev, &[t]), data) {
                return Some(at);
            }
        }
        at += 8;
    }
    None
}

pub fn get_u64(b: &[u8], at: usize) -> Result<u64, WalError> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| WalError::Corrupt("short record".into()))
}
