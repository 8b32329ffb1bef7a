//! Sorted run files of the on-disk index: immutable, written once and
//! synced, then only read (see `docs/storage-engine.md`, "The on-disk
//! index").
//!
//! ```text
//! run      := block* footer trailer
//! block    := entry* crc:u32                    about 4 KiB; CRC-32 of its entries
//! entry    := key_len:u16 value_len:u16 key value   value_len 0xFFFF: a tombstone
//! footer   := blocks:u32 (offset:u64 len:u32 first_key_len:u16 first_key){blocks}
//!             entries:u64 bloom_bits:u64 bloom_hashes:u32 bloom_bytes
//! trailer  := footer_offset:u64 footer_len:u32 footer_crc:u32 magic "EVIDXRN1"   24 bytes
//! ```
//!
//! Integers are little-endian; keys compare as bytes. The Bloom filter
//! holds the keys of the tables of streams and of event ids (see
//! [`crate::index`]), so that looking up a new stream or a new event id
//! reads no block.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::EmbeddedError;
use crate::vfs::{FileSystem, StorageFile};

/// The magic bytes that end a run.
const RUN_MAGIC: &[u8; 8] = b"EVIDXRN1";
const TRAILER_LEN: u64 = 24;
/// A block is closed once it holds this many bytes.
const BLOCK_BYTES: usize = 4096;
const TOMBSTONE: u16 = u16::MAX;
/// Bloom filter: bits per key and hash functions (about 1 % false
/// positives).
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_HASHES: u32 = 7;
/// Writes go out in pieces of this size.
const WRITE_CHUNK: usize = 1 << 20;

/// A key and its value (`None`: a tombstone).
pub(crate) type Entry = (Vec<u8>, Option<Vec<u8>>);

/// A stable 64-bit hash (FNV-1a, then a finaliser): the filters are
/// stored, so the hash must never change with the compiler.
fn hash64(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A Bloom filter over byte keys.
#[derive(Debug, Clone)]
struct Bloom {
    bits: u64,
    hashes: u32,
    data: Vec<u8>,
}

impl Bloom {
    fn new(keys: u64) -> Self {
        let bits = (keys * BLOOM_BITS_PER_KEY).max(64).next_multiple_of(8);
        Self {
            bits,
            hashes: BLOOM_HASHES,
            data: vec![0; (bits / 8) as usize],
        }
    }

    fn probes(&self, key: &[u8]) -> impl Iterator<Item = u64> + use<> {
        let h = hash64(key);
        let (a, b) = (h, (h >> 32) | 1);
        let bits = self.bits;
        (0..u64::from(self.hashes)).map(move |i| a.wrapping_add(i.wrapping_mul(b)) % bits)
    }

    fn insert(&mut self, key: &[u8]) {
        for p in self.probes(key).collect::<Vec<_>>() {
            self.data[(p / 8) as usize] |= 1 << (p % 8);
        }
    }

    fn may_contain(&self, key: &[u8]) -> bool {
        self.probes(key)
            .all(|p| self.data[(p / 8) as usize] & (1 << (p % 8)) != 0)
    }
}

/// Blocks read from runs, kept up to a number of bytes (oldest out first).
#[derive(Debug)]
pub(crate) struct BlockCache {
    limit: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    blocks: HashMap<(u64, u32), Arc<Vec<u8>>>,
    order: VecDeque<(u64, u32)>,
    bytes: usize,
}

impl BlockCache {
    /// A cache of at most `limit` bytes of blocks.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn get(&self, key: (u64, u32)) -> Option<Arc<Vec<u8>>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.blocks.get(&key).cloned()
    }

    fn put(&self, key: (u64, u32), block: Arc<Vec<u8>>) {
        if block.len() > self.limit {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.blocks.contains_key(&key) {
            return;
        }
        inner.bytes += block.len();
        inner.blocks.insert(key, block);
        inner.order.push_back(key);
        while inner.bytes > self.limit {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.blocks.remove(&old) {
                inner.bytes -= b.len();
            }
        }
    }

    /// Forgets the blocks of a run that is gone.
    pub(crate) fn forget(&self, run: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let CacheInner {
            blocks,
            order,
            bytes,
        } = &mut *inner;
        blocks.retain(|k, b| {
            let keep = k.0 != run;
            if !keep {
                *bytes -= b.len();
            }
            keep
        });
        order.retain(|k| k.0 != run);
    }
}

/// Writes a run from entries given in ascending key order.
pub(crate) struct RunWriter {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    /// Which keys go into the Bloom filter (by their first byte).
    bloom_tags: &'static [u8],
    bloom: Bloom,
    out: Vec<u8>,
    written: u64,
    block: Vec<u8>,
    block_first: Option<Vec<u8>>,
    fences: Vec<(u64, u32, Vec<u8>)>,
    entries: u64,
    last_key: Option<Vec<u8>>,
}

impl RunWriter {
    /// Creates (or empties) the run file at `path`; `bloom_keys` bounds how
    /// many keys starting with one of `bloom_tags` will be added.
    pub(crate) fn create(
        fs: &dyn FileSystem,
        path: &Path,
        bloom_tags: &'static [u8],
        bloom_keys: u64,
    ) -> Result<Self, EmbeddedError> {
        let file = fs
            .open(path, true)
            .and_then(|f| f.set_len(0).map(|()| f))
            .map_err(|e| EmbeddedError::io(format!("creating {}", path.display()), e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            bloom_tags,
            bloom: Bloom::new(bloom_keys),
            out: Vec::with_capacity(WRITE_CHUNK + BLOCK_BYTES),
            written: 0,
            block: Vec::with_capacity(BLOCK_BYTES * 2),
            block_first: None,
            fences: Vec::new(),
            entries: 0,
            last_key: None,
        })
    }

    /// Adds an entry; keys must come in strictly ascending order.
    pub(crate) fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), EmbeddedError> {
        debug_assert!(self.last_key.as_deref().is_none_or(|k| k < key));
        debug_assert!(key.len() < usize::from(u16::MAX));
        if key.first().is_some_and(|t| self.bloom_tags.contains(t)) {
            self.bloom.insert(key);
        }
        if self.block_first.is_none() {
            self.block_first = Some(key.to_vec());
        }
        self.block
            .extend_from_slice(&(key.len() as u16).to_le_bytes());
        let vlen = value.map_or(TOMBSTONE, |v| v.len() as u16);
        self.block.extend_from_slice(&vlen.to_le_bytes());
        self.block.extend_from_slice(key);
        if let Some(v) = value {
            self.block.extend_from_slice(v);
        }
        self.entries += 1;
        if cfg!(debug_assertions) {
            self.last_key = Some(key.to_vec());
        }
        if self.block.len() >= BLOCK_BYTES {
            self.close_block()?;
        }
        Ok(())
    }

    fn close_block(&mut self) -> Result<(), EmbeddedError> {
        let Some(first) = self.block_first.take() else {
            return Ok(());
        };
        let crc = crc32fast::hash(&self.block);
        let offset = self.written + self.out.len() as u64;
        let len = self.block.len() as u32 + 4;
        self.out.extend_from_slice(&self.block);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.block.clear();
        self.fences.push((offset, len, first));
        if self.out.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EmbeddedError> {
        self.file
            .write_all_at(&self.out, self.written)
            .map_err(|e| EmbeddedError::io(format!("writing {}", self.path.display()), e))?;
        self.written += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Writes the footer and syncs the file. Returns the number of entries.
    pub(crate) fn finish(mut self) -> Result<u64, EmbeddedError> {
        self.close_block()?;
        let footer_offset = self.written + self.out.len() as u64;
        let mut footer = Vec::new();
        footer.extend_from_slice(&(self.fences.len() as u32).to_le_bytes());
        for (offset, len, first) in &self.fences {
            footer.extend_from_slice(&offset.to_le_bytes());
            footer.extend_from_slice(&len.to_le_bytes());
            footer.extend_from_slice(&(first.len() as u16).to_le_bytes());
            footer.extend_from_slice(first);
        }
        footer.extend_from_slice(&self.entries.to_le_bytes());
        footer.extend_from_slice(&self.bloom.bits.to_le_bytes());
        footer.extend_from_slice(&self.bloom.hashes.to_le_bytes());
        footer.extend_from_slice(&self.bloom.data);
        self.out.extend_from_slice(&footer);
        self.out.extend_from_slice(&footer_offset.to_le_bytes());
        self.out
            .extend_from_slice(&(footer.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&crc32fast::hash(&footer).to_le_bytes());
        self.out.extend_from_slice(RUN_MAGIC);
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| EmbeddedError::io(format!("syncing {}", self.path.display()), e))?;
        Ok(self.entries)
    }
}

/// An open run: its fences and Bloom filter in memory, its blocks read on
/// demand through the cache.
#[derive(Debug)]
pub(crate) struct Run {
    /// The run's sequence number (its file name).
    pub seq: u64,
    pub path: PathBuf,
    file: Arc<dyn StorageFile>,
    fences: Vec<(u64, u32, Box<[u8]>)>,
    bloom: Bloom,
    pub entries: u64,
    cache: Arc<BlockCache>,
}

fn bad(path: &Path, offset: u64, reason: impl Into<String>) -> EmbeddedError {
    EmbeddedError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

impl Run {
    /// Opens a run and checks its trailer and footer.
    pub(crate) fn open(
        fs: &dyn FileSystem,
        path: &Path,
        seq: u64,
        cache: Arc<BlockCache>,
    ) -> Result<Self, EmbeddedError> {
        let file = fs
            .open(path, false)
            .map_err(|e| EmbeddedError::io(format!("opening {}", path.display()), e))?;
        let len = file
            .len()
            .map_err(|e| EmbeddedError::io(format!("reading the size of {}", path.display()), e))?;
        if len < TRAILER_LEN {
            return Err(bad(path, 0, "shorter than a run's trailer"));
        }
        let mut t = [0u8; TRAILER_LEN as usize];
        file.read_exact_at(&mut t, len - TRAILER_LEN)
            .map_err(|e| EmbeddedError::io(format!("reading {}", path.display()), e))?;
        if &t[16..24] != RUN_MAGIC {
            return Err(bad(path, len - TRAILER_LEN, "no run trailer"));
        }
        let footer_offset = u64::from_le_bytes(t[0..8].try_into().expect("8"));
        let footer_len = u64::from(u32::from_le_bytes(t[8..12].try_into().expect("4")));
        let crc = u32::from_le_bytes(t[12..16].try_into().expect("4"));
        if footer_offset + footer_len + TRAILER_LEN != len {
            return Err(bad(
                path,
                footer_offset,
                "the footer is not where the trailer says",
            ));
        }
        let mut footer = vec![0u8; footer_len as usize];
        file.read_exact_at(&mut footer, footer_offset)
            .map_err(|e| EmbeddedError::io(format!("reading {}", path.display()), e))?;
        if crc32fast::hash(&footer) != crc {
            return Err(bad(
                path,
                footer_offset,
                "the footer's checksum does not match",
            ));
        }
        let parsed = parse_footer(&footer)
            .ok_or_else(|| bad(path, footer_offset, "the footer does not parse"))?;
        let (fences, entries, bloom) = parsed;
        Ok(Self {
            seq,
            path: path.to_path_buf(),
            file,
            fences,
            bloom,
            entries,
            cache,
        })
    }

    /// How many keys its Bloom filter was sized for.
    pub(crate) fn bloom_keys(&self) -> u64 {
        self.bloom.bits / BLOOM_BITS_PER_KEY
    }

    /// The bytes of memory the run keeps (fences and filter).
    pub(crate) fn memory(&self) -> usize {
        self.fences.iter().map(|f| f.2.len() + 32).sum::<usize>() + self.bloom.data.len()
    }

    fn block(&self, i: usize) -> Result<Arc<Vec<u8>>, EmbeddedError> {
        if let Some(b) = self.cache.get((self.seq, i as u32)) {
            return Ok(b);
        }
        let (offset, len, _) = &self.fences[i];
        let mut buf = vec![0u8; *len as usize];
        self.file
            .read_exact_at(&mut buf, *offset)
            .map_err(|e| EmbeddedError::io(format!("reading {}", self.path.display()), e))?;
        let n = buf.len() - 4;
        let crc = u32::from_le_bytes(buf[n..].try_into().expect("4"));
        if crc32fast::hash(&buf[..n]) != crc {
            return Err(bad(
                &self.path,
                *offset,
                "a block's checksum does not match",
            ));
        }
        buf.truncate(n);
        let b = Arc::new(buf);
        self.cache.put((self.seq, i as u32), b.clone());
        Ok(b)
    }

    /// The block that may hold `key`.
    fn block_for(&self, key: &[u8]) -> Option<usize> {
        let i = self.fences.partition_point(|f| &*f.2 <= key);
        i.checked_sub(1)
    }

    /// The entry of `key`: `Some(None)` for a tombstone.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, EmbeddedError> {
        if key
            .first()
            .is_some_and(|t| crate::index::BLOOM_TAGS.contains(t))
            && !self.bloom.may_contain(key)
        {
            return Ok(None);
        }
        let Some(i) = self.block_for(key) else {
            return Ok(None);
        };
        let block = self.block(i)?;
        for (k, v) in BlockEntries::new(&block) {
            match k.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(v.map(<[u8]>::to_vec))),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    /// The entries from `from` on, in key order.
    pub(crate) fn iter_from(self: &Arc<Self>, from: &[u8]) -> RunIter {
        let block = self.block_for(from).unwrap_or(0);
        RunIter {
            run: self.clone(),
            block,
            entries: Vec::new(),
            at: 0,
            from: Some(from.to_vec()),
            error: None,
        }
    }

    /// Every entry, after checking every block's checksum.
    pub(crate) fn verify(self: &Arc<Self>) -> Result<u64, EmbeddedError> {
        let mut n = 0;
        for i in 0..self.fences.len() {
            let mut buf = vec![0u8; self.fences[i].1 as usize];
            self.file
                .read_exact_at(&mut buf, self.fences[i].0)
                .map_err(|e| EmbeddedError::io(format!("reading {}", self.path.display()), e))?;
            let len = buf.len() - 4;
            let crc = u32::from_le_bytes(buf[len..].try_into().expect("4"));
            if crc32fast::hash(&buf[..len]) != crc {
                return Err(bad(
                    &self.path,
                    self.fences[i].0,
                    "a block's checksum does not match",
                ));
            }
            n += BlockEntries::new(&buf[..len]).count() as u64;
        }
        if n != self.entries {
            return Err(bad(
                &self.path,
                0,
                format!("{n} entries, the footer says {}", self.entries),
            ));
        }
        Ok(n)
    }
}

type Fences = Vec<(u64, u32, Box<[u8]>)>;

fn parse_footer(f: &[u8]) -> Option<(Fences, u64, Bloom)> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = f.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let n = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut fences = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let offset = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let klen = u16::from_le_bytes(take(2)?.try_into().ok()?);
        let key: Box<[u8]> = take(klen as usize)?.into();
        if len < 4 {
            return None;
        }
        fences.push((offset, len, key));
    }
    let entries = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let bits = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let hashes = u32::from_le_bytes(take(4)?.try_into().ok()?);
    if bits == 0 || !bits.is_multiple_of(8) {
        return None;
    }
    let data = take((bits / 8) as usize)?.to_vec();
    if at != f.len() {
        return None;
    }
    Some((fences, entries, Bloom { bits, hashes, data }))
}

/// The entries of a block, in order. A block that passed its checksum was
/// written by [`RunWriter`]: a malformed one ends the iteration.
struct BlockEntries<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> BlockEntries<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }
}

impl<'a> Iterator for BlockEntries<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.b;
        let h = b.get(self.at..self.at + 4)?;
        let klen = u16::from_le_bytes([h[0], h[1]]) as usize;
        let vlen = u16::from_le_bytes([h[2], h[3]]);
        let kstart = self.at + 4;
        let key = b.get(kstart..kstart + klen)?;
        let vstart = kstart + klen;
        if vlen == TOMBSTONE {
            self.at = vstart;
            return Some((key, None));
        }
        let value = b.get(vstart..vstart + vlen as usize)?;
        self.at = vstart + vlen as usize;
        Some((key, Some(value)))
    }
}

/// Iterates a run's entries from a key on.
pub(crate) struct RunIter {
    run: Arc<Run>,
    block: usize,
    entries: Vec<Entry>,
    at: usize,
    from: Option<Vec<u8>>,
    /// A read error ends the iteration; the caller asks for it.
    pub error: Option<EmbeddedError>,
}

impl Iterator for RunIter {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if self.at < self.entries.len() {
                self.at += 1;
                return Some(std::mem::take(&mut self.entries[self.at - 1]));
            }
            if self.block >= self.run.fences.len() || self.error.is_some() {
                return None;
            }
            match self.run.block(self.block) {
                Ok(b) => {
                    let from = self.from.take();
                    self.entries = BlockEntries::new(&b)
                        .filter(|(k, _)| from.as_deref().is_none_or(|f| *k >= f))
                        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect();
                    self.at = 0;
                    self.block += 1;
                }
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}

/// Where the run iterators of one merge leave their first read error, so
/// that a merge ended by an unreadable block fails instead of looking like
/// the end of the entries.
#[derive(Default)]
pub(crate) struct ReadErrors(std::cell::RefCell<Option<EmbeddedError>>);

impl ReadErrors {
    /// A run iterator that leaves its read error here.
    pub(crate) fn watch(&self, iter: RunIter) -> Watched<'_> {
        Watched { iter, errors: self }
    }

    /// The first read error of the watched iterators, if any.
    pub(crate) fn check(&self) -> Result<(), EmbeddedError> {
        self.0.borrow_mut().take().map_or(Ok(()), Err)
    }
}

/// A run iterator whose read error goes to a [`ReadErrors`].
pub(crate) struct Watched<'a> {
    iter: RunIter,
    errors: &'a ReadErrors,
}

impl Iterator for Watched<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let next = self.iter.next();
        if next.is_none()
            && let Some(e) = self.iter.error.take()
        {
            self.errors.0.borrow_mut().get_or_insert(e);
        }
        next
    }
}

/// Merges sorted sources into one sorted stream: for a key in several
/// sources the first source (the newest) wins; tombstones are kept (the
/// caller drops them where the oldest layer is included).
pub(crate) struct Merge<I: Iterator<Item = Entry>> {
    sources: Vec<std::iter::Peekable<I>>,
}

impl<I: Iterator<Item = Entry>> Merge<I> {
    /// Sources newest first.
    pub(crate) fn new(sources: Vec<I>) -> Self {
        Self {
            sources: sources.into_iter().map(Iterator::peekable).collect(),
        }
    }
}

impl<I: Iterator<Item = Entry>> Iterator for Merge<I> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let mut best: Option<(usize, Vec<u8>)> = None;
        for i in 0..self.sources.len() {
            if let Some((k, _)) = self.sources[i].peek()
                && best.as_ref().is_none_or(|(_, bk)| k < bk)
            {
                best = Some((i, k.clone()));
            }
        }
        let (b, _) = best?;
        let entry = self.sources[b].next().expect("peeked");
        // Older sources' entries of the same key are superseded.
        for i in b + 1..self.sources.len() {
            while self.sources[i].peek().is_some_and(|(k, _)| *k == entry.0) {
                self.sources[i].next();
            }
        }
        Some(entry)
    }
}
