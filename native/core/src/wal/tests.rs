//! WAL cases: round trips, segment cuts, release, torn tails repaired, mid-log corruption refused.
use std::os::unix::fs::FileExt;

use super::*;

fn opts() -> WalOptions {
    WalOptions { fsync: false, segment_size: 4096 }
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

fn save_range(w: &mut Wal, from: u64, to: u64) {
    for i in from..=to {
        let e = entry(i);
        let hs = format!("hs-{i}").into_bytes();
        w.save(Some(&hs), &[(i, &e)]).unwrap();
    }
}

fn indexes(rr: &ReadResult) -> Vec<u64> {
    rr.entries.iter().map(|(i, _)| *i).collect()
}

#[test]
fn round_trip_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"meta", opts()).unwrap();
    w.save_snapshot(WalSnapshot { index: 0, term: 0 }, b"cs0").unwrap();
    save_range(&mut w, 1, 200);
    assert!(w.segment_paths().len() > 1, "4 KiB segments must have been cut");
    drop(w);
    let (w, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(rr.metadata, b"meta");
    assert_eq!(indexes(&rr), (1..=200).collect::<Vec<_>>());
    assert_eq!(rr.entries[41].1, entry(42));
    assert_eq!(rr.hard_state.as_deref(), Some(&b"hs-200"[..]));
    assert_eq!(rr.conf_state, b"cs0");
    assert_eq!(w.last_index(), 200);
}

#[test]
fn appends_after_reopen_continue_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", opts()).unwrap();
    save_range(&mut w, 1, 10);
    drop(w);
    let (mut w, _) = Wal::open(dir.path(), opts()).unwrap();
    save_range(&mut w, 11, 150);
    drop(w);
    let (_, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(indexes(&rr), (1..=150).collect::<Vec<_>>());
}

#[test]
fn overwritten_tail_replaces_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", opts()).unwrap();
    save_range(&mut w, 1, 5);
    w.save(None, &[(3, b"new-3"), (4, b"new-4")]).unwrap();
    drop(w);
    let (_, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(indexes(&rr), vec![1, 2, 3, 4]);
    assert_eq!(rr.entries[2].1, b"new-3");
}

#[test]
fn snapshot_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", opts()).unwrap();
    save_range(&mut w, 1, 300);
    w.save_snapshot(WalSnapshot { index: 250, term: 7 }, b"cs").unwrap();
    let before = w.segment_paths().len();
    w.release_lock_to(240).unwrap();
    let after = w.segment_paths().len();
    assert!(after < before, "release must remove old segments ({before} -> {after})");
    save_range(&mut w, 301, 320);
    drop(w);
    let (_, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(rr.snapshot, WalSnapshot { index: 250, term: 7 });
    assert_eq!(rr.conf_state, b"cs");
    assert_eq!(indexes(&rr), (251..=320).collect::<Vec<_>>());
}

fn tail_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let (w, _) = Wal::open(dir, opts()).unwrap();
    w.segment_paths().last().unwrap().clone()
}

/// Offset where the last record of the tail segment begins, and where the data ends.
fn last_record_span(path: &std::path::Path) -> (usize, usize) {
    let buf = std::fs::read(path).unwrap();
    let (mut pos, mut last) = (0, 0);
    let mut crc = 0;
    while let Ok(r) = record::decode(&buf, pos, crc) {
        crc = r.crc;
        last = pos;
        pos = r.next;
    }
    (last, pos)
}

#[test]
fn torn_tail_is_truncated_and_appends_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", WalOptions { fsync: false, segment_size: 1 << 20 }).unwrap();
    save_range(&mut w, 1, 20);
    drop(w);
    let path = tail_segment(dir.path());
    let (start, end) = last_record_span(&path);
    // The crash cut the last record (the HardState of entry 20) halfway: zero its second half.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mid = start + (end - start) / 2;
    f.write_all_at(&vec![0u8; end - mid], mid as u64).unwrap();
    drop(f);
    let (mut w, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(indexes(&rr), (1..=20).collect::<Vec<_>>());
    assert_eq!(rr.hard_state.as_deref(), Some(&b"hs-19"[..]), "the torn HardState is dropped");
    save_range(&mut w, 21, 25);
    drop(w);
    let (_, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(indexes(&rr), (1..=25).collect::<Vec<_>>());
}

#[test]
fn torn_tail_with_garbage_length_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", WalOptions { fsync: false, segment_size: 1 << 20 }).unwrap();
    save_range(&mut w, 1, 3);
    drop(w);
    let path = tail_segment(dir.path());
    let (_, end) = last_record_span(&path);
    // A header whose length runs past the file: only the first bytes of a write reached the disk.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0xff, 0xff, 0xff, 0x0f, 2, 0, 0, 0, 1, 2, 3, 4], end as u64).unwrap();
    drop(f);
    let (_, rr) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(indexes(&rr), vec![1, 2, 3]);
}

#[test]
fn mid_log_corruption_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", WalOptions { fsync: false, segment_size: 1 << 20 }).unwrap();
    save_range(&mut w, 1, 20);
    drop(w);
    let path = tail_segment(dir.path());
    // Flip one byte inside an early record's data: valid records follow it, so this is not a torn write.
    let buf = std::fs::read(&path).unwrap();
    let at = buf.windows(7).position(|x| x == b"entry-5").unwrap() + 3;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[buf[at] ^ 0x55], at as u64).unwrap();
    drop(f);
    let err = Wal::open(dir.path(), opts()).err().expect("must refuse");
    let msg = err.to_string();
    assert!(msg.contains("crc mismatch"), "{msg}");
    assert!(msg.contains(".wal"), "the error names the file: {msg}");
}

#[test]
fn corruption_in_an_older_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wal::create(dir.path(), b"m", opts()).unwrap();
    save_range(&mut w, 1, 200);
    let first = w.segment_paths()[0].clone();
    drop(w);
    let (_, end) = last_record_span(&first);
    let f = std::fs::OpenOptions::new().write(true).open(&first).unwrap();
    // Cut the older segment's last record short: only the tail of the last segment may be torn.
    f.write_all_at(&[0u8; 8], (end - 8) as u64).unwrap();
    drop(f);
    assert!(Wal::open(dir.path(), opts()).is_err());
}

#[test]
fn create_refuses_an_existing_wal() {
    let dir = tempfile::tempdir().unwrap();
    drop(Wal::create(dir.path(), b"m", opts()).unwrap());
    assert!(Wal::exists(dir.path()));
    assert!(Wal::create(dir.path(), b"m", opts()).is_err());
}

/// A WAL of entries 1..=20 in one 1 MiB segment whose entry-5 frame gets `len(old length)` as its length
/// field; returns the segment's path and its bytes before the damage.
fn wal_with_entry_5_length(dir: &std::path::Path, len: impl Fn(u32) -> u32) -> (std::path::PathBuf, Vec<u8>) {
    let mut w = Wal::create(dir, b"m", WalOptions { fsync: false, segment_size: 1 << 20 }).unwrap();
    save_range(&mut w, 1, 20);
    drop(w);
    let path = tail_segment(dir);
    let buf = std::fs::read(&path).unwrap();
    // The frame of entry 5 starts 12 header bytes and the 8-byte index before its data.
    let at = buf.windows(7).position(|x| x == b"entry-5").unwrap() - 8 - record::HEADER_LEN;
    let old = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&len(old).to_le_bytes(), at as u64).unwrap();
    (path, buf)
}

/// A damaged length field in the middle of the log makes its frame run past the end of the file; the valid
/// records after it show that this is no torn write, so the WAL must refuse to open rather than drop them
/// (issue 21: a frame past EOF was taken for a torn tail without looking at what follows).
#[test]
fn a_length_past_the_end_with_records_after_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, buf) = wal_with_entry_5_length(dir.path(), |_| 0x0fff_ffff);
    let err = Wal::open(dir.path(), opts()).err().expect("must refuse: 15 valid entries follow the damage");
    assert!(err.to_string().contains("runs past the end"), "{err}");
    let after = std::fs::read(&path).unwrap();
    assert_eq!(after.len(), buf.len(), "nothing is repaired away");
    assert!(after.windows(8).any(|x| x == b"entry-20"), "nothing is repaired away");
}

/// The same damage with a length that still fits in the preallocated segment: the frame's claimed end lands in
/// the zero tail, which alone looks like a torn write; the chained records after it say otherwise.
#[test]
fn a_damaged_length_inside_the_file_with_records_after_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    wal_with_entry_5_length(dir.path(), |len| len + 64 * 1024);
    let err = Wal::open(dir.path(), opts()).err().expect("must refuse: valid entries follow the damage");
    assert!(err.to_string().contains("a valid record follows"), "{err}");
}

/// Records that claim an absurd raft index (valid CRCs: written through the API, as a forged file could be)
/// make `open` refuse the WAL with an error, never panic or overflow.
#[test]
fn records_with_a_huge_index_are_refused() {
    for huge in [u64::MAX, u64::MAX / 2 + 7] {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::create(dir.path(), b"m", opts()).unwrap();
        save_range(&mut w, 1, 3);
        w.save(None, &[(huge, b"forged")]).unwrap();
        drop(w);
        let err = Wal::open(dir.path(), opts()).err().expect("a huge entry index must be refused");
        assert!(err.to_string().contains("out of range"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::create(dir.path(), b"m", opts()).unwrap();
        save_range(&mut w, 1, 3);
        w.save_snapshot(WalSnapshot { index: huge, term: 1 }, b"cs").unwrap();
        drop(w);
        assert!(Wal::open(dir.path(), opts()).is_err(), "a huge snapshot index must be refused");
    }
}
