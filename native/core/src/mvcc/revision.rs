//! Revisions and their backend key encoding.
//!
//! A revision is `main.sub`: `main` counts write requests (one per put, delete or writing txn), `sub`
//! numbers the operations inside that request. The backend's `key` bucket is keyed by the revision so
//! that byte order is revision order:
//!
//! ```text
//!   main (8 bytes, big endian) | '_' | sub (8 bytes, big endian) [| 't' if the row is a tombstone]
//!   rev 5.1   → 00 00 00 00 00 00 00 05 5f 00 00 00 00 00 00 00 01
//!   del at 6  → 00 00 00 00 00 00 00 06 5f 00 00 00 00 00 00 00 00 74
//! ```
//!
//! This is etcd's `revToBytes` layout, so a data directory's keys sort the same way etcd's do. Revisions
//! are never negative, which is what makes the big-endian bytes of the `i64`s order like the numbers.

/// One point in the store's history. The derived order (main, then sub) is etcd's `GreaterThan`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// The byte etcd appends to a revision key whose row records a deletion (`markTombstone`).
const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    /// Length of an unmarked backend key (etcd's `revBytesLen`).
    pub const BYTES_LEN: usize = 17;

    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The backend key of a live row.
    pub fn to_bytes(&self) -> [u8; 17] {
        let mut b = [0u8; Self::BYTES_LEN];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    /// The backend key of a tombstone row: the plain key plus the `'t'` mark.
    pub fn to_bytes_tombstone(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::BYTES_LEN + 1);
        b.extend_from_slice(&self.to_bytes());
        b.push(TOMBSTONE_MARK);
        b
    }

    /// Decodes a backend key, marked or not; the mark, if any, is ignored (see [`Self::is_tombstone_key`]).
    ///
    /// # Panics
    /// If `b` is shorter than [`Self::BYTES_LEN`]: the `key` bucket holds nothing else, so a short key
    /// is a corrupt data directory.
    pub fn from_bytes(b: &[u8]) -> Revision {
        assert!(b.len() >= Self::BYTES_LEN, "mvcc: revision key of {} bytes, want 17 or 18", b.len());
        let mut main = [0u8; 8];
        let mut sub = [0u8; 8];
        main.copy_from_slice(&b[..8]);
        sub.copy_from_slice(&b[9..17]);
        Revision { main: i64::from_be_bytes(main), sub: i64::from_be_bytes(sub) }
    }

    /// Whether a backend key carries the tombstone mark (etcd's `isTombstone`).
    pub fn is_tombstone_key(b: &[u8]) -> bool {
        b.len() == Self::BYTES_LEN + 1 && b[Self::BYTES_LEN] == TOMBSTONE_MARK
    }
}

impl std::fmt::Display for Revision {
    /// `main.sub`, the notation of the data-driven tests and of the module docs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::Revision;

    #[test]
    fn bytes_layout() {
        let b = Revision::new(5, 1).to_bytes();
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 1]);
        let t = Revision::new(6, 0).to_bytes_tombstone();
        assert_eq!(t.len(), 18);
        assert_eq!(&t[..17], &Revision::new(6, 0).to_bytes());
        assert_eq!(t[17], b't');
    }

    #[test]
    fn bytes_round_trip() {
        for r in [Revision::new(0, 0), Revision::new(1, 0), Revision::new(300, 7), Revision::new(i64::MAX, i64::MAX)] {
            assert_eq!(Revision::from_bytes(&r.to_bytes()), r);
            assert_eq!(Revision::from_bytes(&r.to_bytes_tombstone()), r);
        }
    }

    #[test]
    fn tombstone_mark() {
        let r = Revision::new(9, 2);
        assert!(!Revision::is_tombstone_key(&r.to_bytes()));
        assert!(Revision::is_tombstone_key(&r.to_bytes_tombstone()));
        let mut other = r.to_bytes().to_vec();
        other.push(b'x');
        assert!(!Revision::is_tombstone_key(&other));
        assert!(!Revision::is_tombstone_key(b"t"));
    }

    /// The backend scans revision keys in byte order; that must be revision order, including across the
    /// 255 → 256 carry and between sub revisions of one main revision.
    #[test]
    fn byte_order_is_revision_order() {
        let mut revs = vec![
            Revision::new(256, 0),
            Revision::new(2, 1),
            Revision::new(255, 0),
            Revision::new(2, 0),
            Revision::new(1 << 40, 0),
            Revision::new(3, 0),
            Revision::new(2, 256),
            Revision::new(1, i64::MAX),
        ];
        let mut by_bytes = revs.clone();
        by_bytes.sort_by_key(|r| r.to_bytes());
        revs.sort();
        assert_eq!(by_bytes, revs);
        // A tombstone key sorts right after the plain key of the same revision and before the next one.
        let r = Revision::new(7, 0);
        assert!(r.to_bytes().as_slice() < r.to_bytes_tombstone().as_slice());
        assert!(r.to_bytes_tombstone().as_slice() < Revision::new(7, 1).to_bytes().as_slice());
    }

    #[test]
    #[should_panic(expected = "revision key")]
    fn short_key_panics() {
        Revision::from_bytes(&[0; 16]);
    }
}
