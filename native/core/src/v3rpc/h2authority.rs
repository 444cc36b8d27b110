//! Accepting etcd clients' URL-shaped `:authority`.
//!
//! etcd 3.4's clientv3 dials a single endpoint given with a scheme (what `etcdctl endpoint status --cluster`
//! and `endpoint hashkv --cluster` do with the client URLs from MemberList, and `--endpoints=http://...` for
//! the endpoint commands) with gRPC's passthrough resolver, so every request carries
//! `:authority: http://host:port`. Go's server ignores it; the `h2` crate refuses the stream as malformed.
//! [`AuthorityShim`] mends it on the way in. A connection's first HTTP/2 header block is decoded (HPACK);
//! grpc-go sends one authority per connection, so that block decides:
//! - a plain `host:port` (every other client): the block goes through as it came and so does the rest of the
//!   connection, read straight into the caller's buffer (decoding every block costs a fifth of the edge's CPU);
//! - a URL: this block and every later one is decoded against the client's dynamic table and written again as
//!   literal fields with the `:authority` reduced to `host:port`. Only HEADERS and CONTINUATION frames are
//!   rewritten; frame bodies are read straight through.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The server's SETTINGS_MAX_FRAME_SIZE (the HTTP/2 default; we do not raise it).
const MAX_FRAME: usize = 16384;
/// A header block (HEADERS and its CONTINUATIONs) larger than this ends the connection: a CONTINUATION flood
/// must not grow memory (h2 itself would refuse a header list this large).
const MAX_BLOCK: usize = 1 << 20;
/// The HPACK dynamic table size the server allows (SETTINGS_HEADER_TABLE_SIZE, HTTP/2's default).
const MAX_TABLE: usize = 4096;

enum Mode {
    /// Not enough bytes yet to tell HTTP/2 from HTTP/1.
    Start,
    /// Bytes go through untouched: HTTP/1, or HTTP/2 whose first header block had a plain authority.
    Plain,
    /// HTTP/2 whose header blocks are being rewritten (or the first one is awaited).
    Http2,
}

/// A header block being collected over HEADERS and CONTINUATION frames.
struct Block {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

pub struct AuthorityShim<S> {
    inner: S,
    mode: Mode,
    raw: BytesMut,
    out: BytesMut,
    /// Payload bytes of the current non-header frame still to pass through.
    passing: usize,
    block: Option<Block>,
    /// The client's HPACK state: every header block is decoded against it in order.
    decoder: hpack::Decoder<'static>,
    /// Set once the first header block showed a URL-shaped authority.
    rewriting: bool,
    /// Set when the client broke the limits above: the connection ends with an error.
    failed: bool,
}

impl<S> AuthorityShim<S> {
    pub fn new(inner: S) -> AuthorityShim<S> {
        AuthorityShim {
            inner,
            mode: Mode::Start,
            raw: BytesMut::with_capacity(16 << 10),
            out: BytesMut::new(),
            passing: 0,
            block: None,
            decoder: hpack::Decoder::new(),
            rewriting: false,
            failed: false,
        }
    }

    /// Moves what can be decided from `raw` to `out`.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Start => {
                    let n = self.raw.len().min(PREFACE.len());
                    if self.raw[..n] != PREFACE[..n] {
                        self.mode = Mode::Plain;
                    } else if n == PREFACE.len() {
                        self.out.extend_from_slice(&self.raw.split_to(n));
                        self.mode = Mode::Http2;
                    } else {
                        return;
                    }
                }
                Mode::Plain => {
                    let all = self.raw.split();
                    self.out.extend_from_slice(&all);
                    return;
                }
                Mode::Http2 => {
                    if self.passing > 0 {
                        let n = self.passing.min(self.raw.len());
                        if n == 0 {
                            return;
                        }
                        self.out.extend_from_slice(&self.raw.split_to(n));
                        self.passing -= n;
                        continue;
                    }
                    if self.raw.len() < 9 {
                        return;
                    }
                    let len = u32::from_be_bytes([0, self.raw[0], self.raw[1], self.raw[2]]) as usize;
                    let (kind, flags) = (self.raw[3], self.raw[4]);
                    let stream = u32::from_be_bytes(self.raw[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    let is_block = kind == FRAME_HEADERS || (kind == FRAME_CONTINUATION && self.block.is_some());
                    if !is_block {
                        self.out.extend_from_slice(&self.raw.split_to(9));
                        self.passing = len;
                        continue;
                    }
                    if len > MAX_FRAME {
                        self.failed = true; // a frame past SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR in h2
                        return;
                    }
                    if self.raw.len() < 9 + len {
                        return;
                    }
                    self.raw.advance(9);
                    let payload = self.raw.split_to(len);
                    self.header_frame(kind, flags, stream, &payload);
                }
            }
        }
    }

    fn header_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        if kind == FRAME_HEADERS {
            let mut p = payload;
            let mut end = p.len();
            if flags & FLAG_PADDED != 0 && !p.is_empty() {
                let pad = p[0] as usize;
                end = end.saturating_sub(pad);
                p = &p[1.min(end)..end];
            }
            let mut priority = None;
            if flags & FLAG_PRIORITY != 0 && p.len() >= 5 {
                priority = Some(p[..5].try_into().unwrap());
                p = &p[5..];
            }
            self.block = Some(Block { stream, flags, priority, fragment: p.to_vec() });
        } else if let Some(b) = self.block.as_mut() {
            b.fragment.extend_from_slice(payload);
        }
        if self.block.as_ref().is_some_and(|b| b.fragment.len() > MAX_BLOCK) {
            self.failed = true;
            self.block = None;
            return;
        }
        if flags & FLAG_END_HEADERS != 0 {
            if let Some(b) = self.block.take() {
                self.emit(b);
            }
        }
    }

    /// Writes a collected header block back as HEADERS (+ CONTINUATION) frames, `:authority` renamed.
    fn emit(&mut self, b: Block) {
        let block = match reencode(&mut self.decoder, &b.fragment) {
            Some((block, true)) => {
                self.rewriting = true;
                block
            }
            _ if self.rewriting => b.fragment,
            _ => {
                // The first block needs nothing: from here on the connection goes straight through.
                self.mode = Mode::Plain;
                b.fragment
            }
        };
        let mut first = Vec::with_capacity(block.len() + 5);
        let mut flags = b.flags & FLAG_END_STREAM;
        if let Some(p) = b.priority {
            first.extend_from_slice(&p);
            flags |= FLAG_PRIORITY;
        }
        let room = MAX_FRAME - first.len();
        let (head, mut rest) = block.split_at(block.len().min(room));
        first.extend_from_slice(head);
        if rest.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        self.frame(first.len(), FRAME_HEADERS, flags, b.stream);
        self.out.extend_from_slice(&first);
        while !rest.is_empty() {
            let (chunk, more) = rest.split_at(rest.len().min(MAX_FRAME));
            let f = if more.is_empty() { FLAG_END_HEADERS } else { 0 };
            self.frame(chunk.len(), FRAME_CONTINUATION, f, b.stream);
            self.out.extend_from_slice(chunk);
            rest = more;
        }
    }

    fn frame(&mut self, len: usize, kind: u8, flags: u8, stream: u32) {
        self.out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        self.out.extend_from_slice(&[kind, flags]);
        self.out.extend_from_slice(&stream.to_be_bytes());
    }
}

/// An HPACK integer with an `n`-bit prefix and the first byte's high bits `flags`.
fn write_int(out: &mut Vec<u8>, flags: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    write_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// `http://host:port[/...]` → `host:port`; anything else as it is.
fn authority_of(v: &[u8]) -> &[u8] {
    let Some(at) = v.windows(3).position(|w| w == b"://") else {
        return v;
    };
    let rest = &v[at + 3..];
    let end = rest.iter().position(|c| *c == b'/').unwrap_or(rest.len());
    &rest[..end]
}

/// Decodes a header block against the client's table and writes it again with every field a literal
/// without indexing (so the server's table stays empty and cannot drift), `:authority` reduced to its
/// host and port; with whether the authority changed. None if the block does not decode (it then goes
/// through as it came, for h2 to judge).
fn reencode(decoder: &mut hpack::Decoder<'static>, block: &[u8]) -> Option<(Vec<u8>, bool)> {
    if !well_formed(block) {
        return None;
    }
    let mut out = Vec::with_capacity(block.len() * 4 + 64);
    let mut changed = false;
    decoder
        .decode_with_cb(block, |name, value| {
            let value = if &name[..] == b":authority" {
                let a = authority_of(&value);
                changed |= a.len() != value.len();
                a
            } else {
                &value[..]
            };
            out.push(0x00);
            write_string(&mut out, &name);
            write_string(&mut out, value);
        })
        .ok()?;
    Some((out, changed))
}

/// An HPACK integer with an `n`-bit prefix at `b[0]`: (value, bytes used); None if cut short or past 2^28.
fn read_int(b: &[u8], n: u32) -> Option<(usize, usize)> {
    let max = (1usize << n) - 1;
    let mut v = (*b.first()? as usize) & max;
    if v < max {
        return Some((v, 1));
    }
    for (i, &c) in b.iter().enumerate().skip(1).take(4) {
        v += ((c & 0x7f) as usize) << (7 * (i - 1));
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Whether `block` is a sequence of well-formed HPACK representations, with any table size update at most
/// [`MAX_TABLE`]: checked before the `hpack` crate sees it, which panics on a cut-short size update (a
/// block ending in 0x3f) and would let a client grow its dynamic table without bound.
fn well_formed(block: &[u8]) -> bool {
    let mut b = block;
    while let Some(&first) = b.first() {
        let (prefix, strings) = match first {
            f if f & 0x80 != 0 => (7, 0),
            f if f & 0xc0 == 0x40 => (6, 1),
            f if f & 0xe0 == 0x20 => (5, 0),
            _ => (4, 1),
        };
        let Some((v, used)) = read_int(b, prefix) else { return false };
        if prefix == 5 && v > MAX_TABLE {
            return false;
        }
        b = &b[used..];
        // A literal with a new name (index 0) carries a name string before its value.
        let count = if strings == 1 && v == 0 { 2 } else { strings };
        for _ in 0..count {
            let Some((len, used)) = read_int(b, 7) else { return false };
            if b.len() < used + len {
                return false;
            }
            b = &b[used + len..];
        }
    }
    true
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityShim<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "http2: header block over the limits")));
        }
        // HTTP/1 bytes and HTTP/2 frame bodies need no rewriting: with nothing buffered, read them straight
        // into the caller's buffer.
        if this.out.is_empty() && this.raw.is_empty() {
            let direct = match this.mode {
                Mode::Plain => buf.remaining(),
                Mode::Http2 => this.passing.min(buf.remaining()),
                Mode::Start => 0,
            };
            if direct > 0 {
                let mut part = buf.take(direct);
                match Pin::new(&mut this.inner).poll_read(cx, &mut part) {
                    Poll::Ready(Ok(())) => {
                        let n = part.filled().len();
                        // SAFETY: the inner reader initialized these `n` bytes of `buf`'s unfilled part.
                        unsafe { buf.assume_init(n) };
                        buf.advance(n);
                        if matches!(this.mode, Mode::Http2) {
                            this.passing -= n;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    other => return other,
                }
            }
        }
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out.split_to(n));
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 16 << 10];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        // EOF: whatever could not be framed goes through as it is.
                        let rest = this.raw.split();
                        this.out.extend_from_slice(&rest);
                        if this.out.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    this.raw.extend_from_slice(rb.filled());
                    this.process();
                    if this.failed {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "http2: header block over the limits",
                        )));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityShim<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_loses_its_scheme_and_fields_keep_order() {
        let mut enc = hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.KV/Range"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b"content-type", b"application/grpc"),
        ];
        let mut dec = hpack::Decoder::new();
        for _ in 0..2 {
            // The second block refers to the first's dynamic-table entries.
            let block = enc.encode(headers.iter().copied());
            let (out, changed) = reencode(&mut dec, &block).unwrap();
            assert!(changed);
            let got = hpack::Decoder::new().decode(&out).unwrap();
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = headers.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            want[3].1 = b"127.0.0.1:2379".to_vec();
            assert_eq!(got, want);
        }
    }

    /// Why `well_formed` exists: the crate unwraps a size update's integer (this is the request that, before
    /// the check, ended the whole member through the fail-stop panic hook).
    #[test]
    #[should_panic]
    fn the_hpack_crate_panics_on_a_cut_short_size_update() {
        let _ = hpack::Decoder::new().decode(&[0x3f]);
    }

    #[test]
    fn malformed_blocks_are_refused_before_the_decoder_sees_them() {
        let mut dec = hpack::Decoder::new();
        // A size update cut short (the hpack crate unwraps it and panics), one past the table size, a string
        // longer than the block, an integer that never ends.
        for block in
            [&[0x3f][..], &[0x3f, 0xe2, 0x1f], &[0x3f, 0xff, 0xff, 0xff, 0x7f], &[0x40, 0x05, b'a'], &[0xff, 0xff]]
        {
            assert!(!well_formed(block), "{block:?}");
            assert!(reencode(&mut dec, block).is_none());
        }
        assert!(well_formed(&[0x3f, 0xe1, 0x1f])); // a size update to exactly 4096
        assert!(well_formed(&[0x20, 0x82, 0x86]));
        assert!(well_formed(&hpack::Encoder::new().encode([(&b":authority"[..], &b"http://a:1"[..])])));
    }

    #[test]
    fn long_strings_use_multi_byte_lengths() {
        let long = vec![b'a'; 300];
        let mut out = Vec::new();
        write_string(&mut out, &long);
        assert_eq!(&out[..3], &[0x7f, 0xad, 0x01]);
        assert_eq!(authority_of(b"h:1"), b"h:1");
        assert_eq!(authority_of(b"https://h:1/x"), b"h:1");
    }
}
