//! Writing a backend snapshot as a bbolt file, the format etcd's snapshots are in, so `etcdctl snapshot
//! status` (and other bbolt readers) can open what the Snapshot RPC streams.
//!
//! The file is written once, bottom-up, never updated: two meta pages, an empty freelist, then each bucket's
//! B+tree (leaf pages of sorted pairs, and a branch page over them when there is more than one leaf), then
//! the root bucket's leaf listing the buckets. A page whose contents pass the page size spans following
//! pages (bbolt's `overflow`).
//!
//! ```text
//! page header (16 B): id u64 | flags u16 | count u16 | overflow u32        flags: 1 branch 2 leaf 4 meta 16 freelist
//! leaf element (16 B): flags u32 | pos u32 | ksize u32 | vsize u32          pos: from the element to its key
//! branch element (16 B): pos u32 | ksize u32 | pgid u64
//! meta (after the header): magic u32 | version u32 | page size u32 | flags u32 | root {pgid u64, seq u64}
//!                          | freelist pgid u64 | high-water pgid u64 | txid u64 | checksum u64 (FNV-1a 64)
//! ```
//! All integers are little-endian (the byte order of the machines bbolt runs on here).

const PAGE_SIZE: usize = 4096;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const FREELIST: u16 = 0x10;
const BUCKET_LEAF_FLAG: u32 = 0x01;
/// Pairs per leaf page: small enough that `count` (u16) never overflows and pages stay near the page size
/// for small values.
const LEAF_MAX_PAIRS: usize = 64;

/// One bucket: its name and its pairs, sorted by key.
pub struct Bucket {
    pub name: Vec<u8>,
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn next_pgid(&self) -> u64 {
        (self.out.len() / PAGE_SIZE) as u64
    }

    /// Appends a page (with overflow pages as needed) whose body is `body`; returns its id.
    fn page(&mut self, flags: u16, count: usize, body: &[u8]) -> u64 {
        let id = self.next_pgid();
        let pages = (HEADER + body.len()).div_ceil(PAGE_SIZE).max(1);
        let start = self.out.len();
        self.out.extend_from_slice(&id.to_le_bytes());
        self.out.extend_from_slice(&flags.to_le_bytes());
        self.out.extend_from_slice(&(count as u16).to_le_bytes());
        self.out.extend_from_slice(&((pages - 1) as u32).to_le_bytes());
        self.out.extend_from_slice(body);
        self.out.resize(start + pages * PAGE_SIZE, 0);
        id
    }

    fn leaf(&mut self, pairs: &[(&[u8], &[u8], u32)]) -> u64 {
        let mut elems = Vec::with_capacity(pairs.len() * ELEMENT);
        let mut data = Vec::new();
        for (i, (k, v, flags)) in pairs.iter().enumerate() {
            let pos = (pairs.len() - i) * ELEMENT + data.len();
            elems.extend_from_slice(&flags.to_le_bytes());
            elems.extend_from_slice(&(pos as u32).to_le_bytes());
            elems.extend_from_slice(&(k.len() as u32).to_le_bytes());
            elems.extend_from_slice(&(v.len() as u32).to_le_bytes());
            data.extend_from_slice(k);
            data.extend_from_slice(v);
        }
        elems.extend_from_slice(&data);
        self.page(LEAF, pairs.len(), &elems)
    }

    fn branch(&mut self, children: &[(&[u8], u64)]) -> u64 {
        let mut elems = Vec::with_capacity(children.len() * ELEMENT);
        let mut data = Vec::new();
        for (i, (k, pgid)) in children.iter().enumerate() {
            let pos = (children.len() - i) * ELEMENT + data.len();
            elems.extend_from_slice(&(pos as u32).to_le_bytes());
            elems.extend_from_slice(&(k.len() as u32).to_le_bytes());
            elems.extend_from_slice(&pgid.to_le_bytes());
            data.extend_from_slice(k);
        }
        elems.extend_from_slice(&data);
        self.page(BRANCH, children.len(), &elems)
    }

    /// Writes a bucket's tree; returns its root page.
    fn tree(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> u64 {
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        for chunk in pairs.chunks(LEAF_MAX_PAIRS) {
            let items: Vec<(&[u8], &[u8], u32)> = chunk.iter().map(|(k, v)| (&k[..], &v[..], 0)).collect();
            level.push((chunk[0].0.clone(), self.leaf(&items)));
        }
        if level.is_empty() {
            return self.leaf(&[]);
        }
        while level.len() > 1 {
            let mut up = Vec::new();
            for chunk in level.chunks(LEAF_MAX_PAIRS * 16) {
                let items: Vec<(&[u8], u64)> = chunk.iter().map(|(k, p)| (&k[..], *p)).collect();
                up.push((chunk[0].0.clone(), self.branch(&items)));
            }
            level = up;
        }
        level[0].1
    }
}

fn meta_page(id: u64, root: u64, freelist: u64, high_water: u64, txid: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(&MAGIC.to_le_bytes());
    m.extend_from_slice(&VERSION.to_le_bytes());
    m.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&root.to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes()); // root bucket sequence
    m.extend_from_slice(&freelist.to_le_bytes());
    m.extend_from_slice(&high_water.to_le_bytes());
    m.extend_from_slice(&txid.to_le_bytes());
    let sum = fnv1a64(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    let mut page = Vec::with_capacity(PAGE_SIZE);
    page.extend_from_slice(&id.to_le_bytes());
    page.extend_from_slice(&META.to_le_bytes());
    page.extend_from_slice(&0u16.to_le_bytes());
    page.extend_from_slice(&0u32.to_le_bytes());
    page.extend_from_slice(&m);
    page.resize(PAGE_SIZE, 0);
    page
}

fn fnv1a64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bbolt file holding `buckets` (each bucket's pairs sorted by key; buckets sorted by name).
pub fn write(buckets: &[Bucket]) -> Vec<u8> {
    let mut w = Writer { out: vec![0u8; 2 * PAGE_SIZE] };
    let freelist = w.page(FREELIST, 0, &[]);
    let roots: Vec<(Vec<u8>, Vec<u8>)> = buckets
        .iter()
        .map(|b| {
            let root = w.tree(&b.pairs);
            let mut header = root.to_le_bytes().to_vec();
            header.extend_from_slice(&0u64.to_le_bytes()); // sequence
            (b.name.clone(), header)
        })
        .collect();
    let items: Vec<(&[u8], &[u8], u32)> = roots.iter().map(|(k, v)| (&k[..], &v[..], BUCKET_LEAF_FLAG)).collect();
    let root = w.leaf(&items);
    let high_water = w.next_pgid();
    w.out[..PAGE_SIZE].copy_from_slice(&meta_page(0, root, freelist, high_water, 0));
    w.out[PAGE_SIZE..2 * PAGE_SIZE].copy_from_slice(&meta_page(1, root, freelist, high_water, 1));
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_a_small_file() {
        let b = Bucket { name: b"key".to_vec(), pairs: vec![(b"a".to_vec(), b"1".to_vec())] };
        let f = write(&[b]);
        assert_eq!(f.len() % PAGE_SIZE, 0);
        // meta 0 and 1, freelist, the bucket's leaf, the root leaf.
        assert_eq!(f.len() / PAGE_SIZE, 5);
        assert_eq!(u32::from_le_bytes(f[16..20].try_into().unwrap()), MAGIC);
        let m = &f[PAGE_SIZE + 16..PAGE_SIZE + 16 + 64];
        assert_eq!(u64::from_le_bytes(m[56..64].try_into().unwrap()), fnv1a64(&m[..56]));
        assert_eq!(u64::from_le_bytes(m[16..24].try_into().unwrap()), 4, "root bucket page");
    }

    #[test]
    fn many_pairs_get_a_branch_root() {
        let pairs = (0..1000u32).map(|i| (i.to_be_bytes().to_vec(), vec![7u8; 100])).collect();
        let f = write(&[Bucket { name: b"key".to_vec(), pairs }]);
        let root_leaf = u64::from_le_bytes(f[PAGE_SIZE + 32..PAGE_SIZE + 40].try_into().unwrap()) as usize;
        let p = &f[root_leaf * PAGE_SIZE..];
        let pos = u32::from_le_bytes(p[20..24].try_into().unwrap()) as usize;
        let vstart = HEADER + pos + 3; // "key"
        let bucket_root = u64::from_le_bytes(p[vstart..vstart + 8].try_into().unwrap()) as usize;
        let flags =
            u16::from_le_bytes(f[bucket_root * PAGE_SIZE + 8..bucket_root * PAGE_SIZE + 10].try_into().unwrap());
        assert_eq!(flags, BRANCH);
    }
}
