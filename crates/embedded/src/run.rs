//! Sorted run files of the on-disk index: immutable, written once and
//! synced, then only read (see `docs/storage-engine.md`, "The on-disk
//! index").
//!
//! ```text
//! run      := block* fences bloom tables trailer
//! block    := entry* crc:u32                    about 4 KiB; CRC-32 of its entries
//! entry    := key_len:u16 value_len:u16 key value   value_len 0xFFFF: a tombstone
//! fences   := (offset:u64 len:u32 first_key_len:u16 first_key){blocks}
//! bloom    := bloom_bits / 8 bytes
//! tables   := (tag:u8 first_len:u16 first_key last_len:u16 last_key){tables}
//! trailer  := fences_offset:u64 fences_len:u32 fences_crc:u32 blocks:u32
//!             bloom_bits:u64 bloom_hashes:u32 bloom_crc:u32
//!             tables_len:u32 tables_crc:u32 entries:u64
//!             trailer_crc:u32 magic "EVIDXRN2"            64 bytes
//! ```
//!
//! Integers are little-endian; keys compare as bytes. A table is the keys
//! that share a first byte (see [`crate::index`]); `tables` holds the first
//! and the last key of each. The Bloom filter holds the keys of the tables
//! of streams and of event ids, so that looking up a new stream or a new
//! event id reads no block.
//!
//! Opening a run reads only its trailer and its tables (a few hundred
//! bytes), each checked against its CRC. The fences and the Bloom filter
//! are read, and checked against their own CRCs, the first time a look-up
//! needs them, and kept from then on; a look-up of a key outside the
//! bounds of its table needs neither. (Version 1, `EVIDXRN1`, read the
//! fences and the filter at open under one CRC; an index of that version
//! is rebuilt at open, see [`crate::checkpoint`].)

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::EmbeddedError;
use crate::vfs::{FileSystem, StorageFile};

/// The magic bytes that end a run.
const RUN_MAGIC: &[u8; 8] = b"EVIDXRN2";
const TRAILER_LEN: u64 = 64;
/// The bytes of the trailer its CRC covers.
const TRAILER_CRC_COVERS: usize = 52;
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

/// A block read from a run and checked against its CRC: its entries'
/// bytes and where each entry starts, so that a look-up bisects it.
#[derive(Debug)]
pub(crate) struct Block {
    bytes: Vec<u8>,
    starts: Vec<u32>,
}

impl Block {
    /// The entries of a block whose CRC held.
    fn new(bytes: Vec<u8>) -> Self {
        // Index entries take 20–40 bytes.
        let mut starts = Vec::with_capacity(bytes.len() / 20);
        let mut it = BlockEntries::new(&bytes);
        loop {
            let at = it.at;
            if it.next().is_none() {
                break;
            }
            starts.push(at as u32);
        }
        Self { bytes, starts }
    }

    /// Bytes of memory it takes.
    fn size(&self) -> usize {
        self.bytes.len() + self.starts.len() * 4
    }

    fn entry(&self, i: usize) -> (&[u8], Option<&[u8]>) {
        self.entry_at(self.starts[i])
    }

    /// The entry of `key`, bisecting: `Some(None)` for a tombstone.
    fn find(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        let i = self.starts.partition_point(|&at| self.entry_at(at).0 < key);
        let (k, v) = (i < self.starts.len()).then(|| self.entry(i))?;
        (k == key).then_some(v)
    }

    /// Its entries from the first not below `from` on, copied.
    fn entries_from(&self, from: Option<&[u8]>) -> Vec<Entry> {
        let first = from.map_or(0, |f| {
            self.starts.partition_point(|&at| self.entry_at(at).0 < f)
        });
        (first..self.starts.len())
            .map(|i| {
                let (k, v) = self.entry(i);
                (k.to_vec(), v.map(<[u8]>::to_vec))
            })
            .collect()
    }

    fn entry_at(&self, at: u32) -> (&[u8], Option<&[u8]>) {
        let mut it = BlockEntries::new(&self.bytes);
        it.at = at as usize;
        it.next().expect("an entry found when the block was read")
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
    blocks: HashMap<(u64, u32), Arc<Block>>,
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

    fn get(&self, key: (u64, u32)) -> Option<Arc<Block>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.blocks.get(&key).cloned()
    }

    fn put(&self, key: (u64, u32), block: Arc<Block>) {
        if block.size() > self.limit {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.blocks.contains_key(&key) {
            return;
        }
        inner.bytes += block.size();
        inner.blocks.insert(key, block);
        inner.order.push_back(key);
        while inner.bytes > self.limit {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.blocks.remove(&old) {
                inner.bytes -= b.size();
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
                *bytes -= b.size();
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
    /// Per table (first byte of the keys), its first and last key so far.
    tables: Vec<(u8, Vec<u8>, Vec<u8>)>,
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
            tables: Vec::new(),
        })
    }

    /// Adds an entry; keys must come in strictly ascending order.
    pub(crate) fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), EmbeddedError> {
        debug_assert!(self.tables.last().is_none_or(|(_, _, k)| &k[..] < key));
        debug_assert!(key.len() < usize::from(u16::MAX));
        let tag = key.first().copied().unwrap_or(0);
        if self.bloom_tags.contains(&tag) && !key.is_empty() {
            self.bloom.insert(key);
        }
        match self.tables.last_mut() {
            Some((t, _, last)) if *t == tag => {
                last.clear();
                last.extend_from_slice(key);
            }
            _ => self.tables.push((tag, key.to_vec(), key.to_vec())),
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

    /// Writes the fences, the Bloom filter, the tables and the trailer, and
    /// syncs the file. Returns the number of entries.
    pub(crate) fn finish(mut self) -> Result<u64, EmbeddedError> {
        self.close_block()?;
        let fences_offset = self.written + self.out.len() as u64;
        let mut fences = Vec::new();
        for (offset, len, first) in &self.fences {
            fences.extend_from_slice(&offset.to_le_bytes());
            fences.extend_from_slice(&len.to_le_bytes());
            fences.extend_from_slice(&(first.len() as u16).to_le_bytes());
            fences.extend_from_slice(first);
        }
        let mut tables = Vec::new();
        for (tag, first, last) in &self.tables {
            tables.push(*tag);
            for k in [first, last] {
                tables.extend_from_slice(&(k.len() as u16).to_le_bytes());
                tables.extend_from_slice(k);
            }
        }
        let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
        trailer.extend_from_slice(&fences_offset.to_le_bytes());
        trailer.extend_from_slice(&(fences.len() as u32).to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&fences).to_le_bytes());
        trailer.extend_from_slice(&(self.fences.len() as u32).to_le_bytes());
        trailer.extend_from_slice(&self.bloom.bits.to_le_bytes());
        trailer.extend_from_slice(&self.bloom.hashes.to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&self.bloom.data).to_le_bytes());
        trailer.extend_from_slice(&(tables.len() as u32).to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&tables).to_le_bytes());
        trailer.extend_from_slice(&self.entries.to_le_bytes());
        debug_assert_eq!(trailer.len(), TRAILER_CRC_COVERS);
        let crc = crc32fast::hash(&trailer);
        trailer.extend_from_slice(&crc.to_le_bytes());
        trailer.extend_from_slice(RUN_MAGIC);
        debug_assert_eq!(trailer.len() as u64, TRAILER_LEN);
        let bloom = std::mem::take(&mut self.bloom.data);
        for part in [&fences, &bloom, &tables, &trailer] {
            self.out.extend_from_slice(part);
            if self.out.len() >= WRITE_CHUNK {
                self.flush()?;
            }
        }
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| EmbeddedError::io(format!("syncing {}", self.path.display()), e))?;
        Ok(self.entries)
    }
}

/// The first key of each block and where the block lies, as written
/// (`offset:u64 len:u32 first_key_len:u16 first_key` each), with where
/// each block's fence starts: one allocation per run rather than one per
/// block.
#[derive(Debug)]
struct Fences {
    bytes: Box<[u8]>,
    starts: Box<[u32]>,
}

impl Fences {
    /// Parses the fences of `blocks` blocks, which must all lie before
    /// `end` and fill `bytes` exactly.
    fn parse(bytes: Box<[u8]>, blocks: u32, end: u64) -> Option<Self> {
        if blocks as usize > bytes.len() / 14 {
            return None;
        }
        let mut starts = Vec::with_capacity(blocks as usize);
        let mut at = 0usize;
        for _ in 0..blocks {
            let h = bytes.get(at..at + 14)?;
            let offset = u64::from_le_bytes(h[0..8].try_into().ok()?);
            let len = u32::from_le_bytes(h[8..12].try_into().ok()?);
            let klen = u16::from_le_bytes(h[12..14].try_into().ok()?) as usize;
            if len < 4 || offset.checked_add(u64::from(len))? > end {
                return None;
            }
            bytes.get(at + 14..at + 14 + klen)?;
            starts.push(u32::try_from(at).ok()?);
            at += 14 + klen;
        }
        (at == bytes.len()).then(|| Self {
            bytes,
            starts: starts.into_boxed_slice(),
        })
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    /// Block `i`'s offset and length (its CRC included).
    fn place(&self, i: usize) -> (u64, u32) {
        let at = self.starts[i] as usize;
        let b = &self.bytes[at..at + 12];
        (
            u64::from_le_bytes(b[0..8].try_into().expect("8")),
            u32::from_le_bytes(b[8..12].try_into().expect("4")),
        )
    }

    /// Block `i`'s first key.
    fn key(&self, i: usize) -> &[u8] {
        let at = self.starts[i] as usize;
        let klen = u16::from_le_bytes([self.bytes[at + 12], self.bytes[at + 13]]) as usize;
        &self.bytes[at + 14..at + 14 + klen]
    }

    /// The block that may hold `key`.
    fn block_for(&self, key: &[u8]) -> Option<usize> {
        let mut lo = 0;
        let mut hi = self.len();
        // The number of blocks whose first key is not above `key`.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn memory(&self) -> usize {
        self.bytes.len() + self.starts.len() * 4
    }
}

/// Where a run's parts lie, from its trailer.
#[derive(Debug, Clone, Copy)]
struct Trailer {
    fences_offset: u64,
    fences_len: u32,
    fences_crc: u32,
    blocks: u32,
    bloom_bits: u64,
    bloom_hashes: u32,
    bloom_crc: u32,
    tables_len: u32,
    tables_crc: u32,
    entries: u64,
}

impl Trailer {
    fn decode(t: &[u8; TRAILER_LEN as usize]) -> Option<Self> {
        if &t[56..64] != RUN_MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes(t[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(t[at..at + 8].try_into().expect("8"));
        if crc32fast::hash(&t[..TRAILER_CRC_COVERS]) != u32_at(52) {
            return None;
        }
        Some(Self {
            fences_offset: u64_at(0),
            fences_len: u32_at(8),
            fences_crc: u32_at(12),
            blocks: u32_at(16),
            bloom_bits: u64_at(20),
            bloom_hashes: u32_at(28),
            bloom_crc: u32_at(32),
            tables_len: u32_at(36),
            tables_crc: u32_at(40),
            entries: u64_at(44),
        })
    }

    fn bloom_offset(&self) -> u64 {
        self.fences_offset + u64::from(self.fences_len)
    }

    fn tables_offset(&self) -> u64 {
        self.bloom_offset() + self.bloom_bits / 8
    }
}

/// Per table (first byte of the keys), its first and last key.
type Tables = Vec<(u8, Box<[u8]>, Box<[u8]>)>;

fn parse_tables(b: &[u8]) -> Option<Tables> {
    let mut out: Tables = Vec::new();
    let mut at = 0usize;
    let key = |at: &mut usize| -> Option<Box<[u8]>> {
        let n = u16::from_le_bytes(b.get(*at..*at + 2)?.try_into().ok()?) as usize;
        let k = b.get(*at + 2..*at + 2 + n)?;
        *at += 2 + n;
        Some(k.into())
    };
    while at < b.len() {
        let tag = b[at];
        at += 1;
        let first = key(&mut at)?;
        let last = key(&mut at)?;
        if first > last || out.last().is_some_and(|(t, _, _)| *t >= tag) {
            return None;
        }
        out.push((tag, first, last));
    }
    Some(out)
}

/// An open run: its trailer and tables in memory; its fences and Bloom
/// filter read on first use and kept; its blocks read on demand through
/// the cache.
#[derive(Debug)]
pub(crate) struct Run {
    /// The run's sequence number (its file name).
    pub seq: u64,
    pub path: PathBuf,
    file: Arc<dyn StorageFile>,
    trailer: Trailer,
    tables: Tables,
    fences: OnceLock<Fences>,
    bloom: OnceLock<Bloom>,
    /// Held while the fences or the filter are read, so that they are read
    /// once.
    loading: Mutex<()>,
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
    /// Opens a run: reads and checks its trailer and its tables.
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
        let trailer = Trailer::decode(&t).ok_or_else(|| {
            bad(
                path,
                len - TRAILER_LEN,
                "no run trailer, or its checksum does not match",
            )
        })?;
        let fits = trailer.bloom_bits >= 64
            && trailer.bloom_bits.is_multiple_of(8)
            && (1..=64).contains(&trailer.bloom_hashes)
            && trailer
                .tables_offset()
                .checked_add(u64::from(trailer.tables_len) + TRAILER_LEN)
                == Some(len);
        if !fits {
            return Err(bad(
                path,
                len - TRAILER_LEN,
                "the parts are not where the trailer says",
            ));
        }
        let mut tables = vec![0u8; trailer.tables_len as usize];
        file.read_exact_at(&mut tables, trailer.tables_offset())
            .map_err(|e| EmbeddedError::io(format!("reading {}", path.display()), e))?;
        if crc32fast::hash(&tables) != trailer.tables_crc {
            return Err(bad(
                path,
                trailer.tables_offset(),
                "the tables' checksum does not match",
            ));
        }
        let tables = parse_tables(&tables)
            .ok_or_else(|| bad(path, trailer.tables_offset(), "the tables do not parse"))?;
        Ok(Self {
            seq,
            path: path.to_path_buf(),
            file,
            trailer,
            tables,
            fences: OnceLock::new(),
            bloom: OnceLock::new(),
            loading: Mutex::new(()),
            entries: trailer.entries,
            cache,
        })
    }

    /// How many keys its Bloom filter was sized for.
    pub(crate) fn bloom_keys(&self) -> u64 {
        self.trailer.bloom_bits / BLOOM_BITS_PER_KEY
    }

    /// The bytes of memory the run keeps (tables, and the fences and the
    /// filter once read).
    pub(crate) fn memory(&self) -> usize {
        self.tables
            .iter()
            .map(|(_, a, b)| a.len() + b.len() + 40)
            .sum::<usize>()
            + self.fences.get().map_or(0, Fences::memory)
            + self.bloom.get().map_or(0, |b| b.data.len())
    }

    /// Whether it holds a key of table `tag`.
    pub(crate) fn has_table(&self, tag: u8) -> bool {
        self.tables.iter().any(|(t, _, _)| *t == tag)
    }

    /// Whether `key` lies within the first and last key of its table here:
    /// when not, the run does not hold it.
    fn in_bounds(&self, key: &[u8]) -> bool {
        let tag = key.first().copied().unwrap_or(0);
        self.tables
            .iter()
            .find(|(t, _, _)| *t == tag)
            .is_some_and(|(_, first, last)| &**first <= key && key <= &**last)
    }

    /// Reads `len` bytes at `offset` and checks them against `crc`.
    fn read_part(
        &self,
        offset: u64,
        len: u64,
        crc: u32,
        what: &str,
    ) -> Result<Vec<u8>, EmbeddedError> {
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| EmbeddedError::io(format!("reading {}", self.path.display()), e))?;
        if crc32fast::hash(&buf) != crc {
            return Err(bad(
                &self.path,
                offset,
                format!("{what}'s checksum does not match: run `event-store check`"),
            ));
        }
        Ok(buf)
    }

    /// The fences, read and checked on first use. An error is not kept:
    /// the next use reads again.
    fn fences(&self) -> Result<&Fences, EmbeddedError> {
        if let Some(f) = self.fences.get() {
            return Ok(f);
        }
        let _one = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = self.fences.get() {
            return Ok(f);
        }
        let t = &self.trailer;
        let bytes = self.read_part(
            t.fences_offset,
            u64::from(t.fences_len),
            t.fences_crc,
            "the fences",
        )?;
        let fences = Fences::parse(bytes.into_boxed_slice(), t.blocks, t.fences_offset)
            .ok_or_else(|| bad(&self.path, t.fences_offset, "the fences do not parse"))?;
        Ok(self.fences.get_or_init(|| fences))
    }

    /// The Bloom filter, read and checked on first use. An error is not
    /// kept: the next use reads again.
    fn bloom(&self) -> Result<&Bloom, EmbeddedError> {
        if let Some(b) = self.bloom.get() {
            return Ok(b);
        }
        let _one = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = self.bloom.get() {
            return Ok(b);
        }
        let t = &self.trailer;
        let data = self.read_part(
            t.bloom_offset(),
            t.bloom_bits / 8,
            t.bloom_crc,
            "the Bloom filter",
        )?;
        Ok(self.bloom.get_or_init(|| Bloom {
            bits: t.bloom_bits,
            hashes: t.bloom_hashes,
            data,
        }))
    }

    /// Reads the fences and the Bloom filter now, if not yet read (after
    /// open, so that the first look-ups do not wait for them).
    pub(crate) fn warm(&self) -> Result<(), EmbeddedError> {
        self.fences()?;
        self.bloom()?;
        Ok(())
    }

    fn block(&self, i: usize) -> Result<Arc<Block>, EmbeddedError> {
        if let Some(b) = self.cache.get((self.seq, i as u32)) {
            return Ok(b);
        }
        let (offset, len) = self.fences()?.place(i);
        let mut buf = self.read_block(offset, len)?;
        buf.truncate(buf.len() - 4);
        let b = Arc::new(Block::new(buf));
        self.cache.put((self.seq, i as u32), b.clone());
        Ok(b)
    }

    /// Block bytes at `offset`, with their CRC (checked).
    fn read_block(&self, offset: u64, len: u32) -> Result<Vec<u8>, EmbeddedError> {
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| EmbeddedError::io(format!("reading {}", self.path.display()), e))?;
        let n = buf.len() - 4;
        let crc = u32::from_le_bytes(buf[n..].try_into().expect("4"));
        if crc32fast::hash(&buf[..n]) != crc {
            return Err(bad(&self.path, offset, "a block's checksum does not match"));
        }
        Ok(buf)
    }

    /// The entry of `key`: `Some(None)` for a tombstone.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, EmbeddedError> {
        if !self.in_bounds(key) {
            return Ok(None);
        }
        if key
            .first()
            .is_some_and(|t| crate::index::BLOOM_TAGS.contains(t))
            && !self.bloom()?.may_contain(key)
        {
            return Ok(None);
        }
        let Some(i) = self.fences()?.block_for(key) else {
            return Ok(None);
        };
        let block = self.block(i)?;
        Ok(block.find(key).map(|v| v.map(<[u8]>::to_vec)))
    }

    /// The entries from `from` on, in key order.
    pub(crate) fn iter_from(self: &Arc<Self>, from: &[u8]) -> RunIter {
        RunIter {
            run: self.clone(),
            block: None,
            entries: Vec::new(),
            at: 0,
            from: Some(from.to_vec()),
            error: None,
        }
    }

    /// Every entry, after checking every block's checksum, the fences',
    /// the Bloom filter's, and that the tables name the first and last key
    /// of each table.
    pub(crate) fn verify(self: &Arc<Self>) -> Result<u64, EmbeddedError> {
        let fences = self.fences()?;
        self.bloom()?;
        let mut n = 0;
        let mut tables: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
        for i in 0..fences.len() {
            let (offset, len) = fences.place(i);
            let buf = self.read_block(offset, len)?;
            for (k, _) in BlockEntries::new(&buf[..buf.len() - 4]) {
                n += 1;
                let tag = k.first().copied().unwrap_or(0);
                match tables.last_mut() {
                    Some((t, _, last)) if *t == tag => *last = k.to_vec(),
                    _ => tables.push((tag, k.to_vec(), k.to_vec())),
                }
            }
        }
        if n != self.entries {
            return Err(bad(
                &self.path,
                0,
                format!("{n} entries, the trailer says {}", self.entries),
            ));
        }
        let same = tables.len() == self.tables.len()
            && tables
                .iter()
                .zip(&self.tables)
                .all(|(a, b)| a.0 == b.0 && a.1[..] == b.1[..] && a.2[..] == b.2[..]);
        if !same {
            return Err(bad(
                &self.path,
                self.trailer.tables_offset(),
                "the tables do not name the first and last keys of the entries",
            ));
        }
        Ok(n)
    }
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
    /// The next block to read; `None` before the first.
    block: Option<usize>,
    entries: Vec<Entry>,
    at: usize,
    from: Option<Vec<u8>>,
    /// A read error ends the iteration; the caller asks for it.
    pub error: Option<EmbeddedError>,
}

impl RunIter {
    /// The next block's entries (from `from` on); `None` at the end.
    fn next_block(&mut self) -> Result<Option<Vec<Entry>>, EmbeddedError> {
        let fences = self.run.fences()?;
        let i = match self.block {
            Some(i) => i,
            None => self
                .from
                .as_deref()
                .and_then(|f| fences.block_for(f))
                .unwrap_or(0),
        };
        if i >= fences.len() {
            return Ok(None);
        }
        let b = self.run.block(i)?;
        self.block = Some(i + 1);
        Ok(Some(b.entries_from(self.from.take().as_deref())))
    }
}

impl Iterator for RunIter {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if self.at < self.entries.len() {
                self.at += 1;
                return Some(std::mem::take(&mut self.entries[self.at - 1]));
            }
            if self.error.is_some() {
                return None;
            }
            match self.next_block() {
                Ok(Some(entries)) => {
                    self.entries = entries;
                    self.at = 0;
                }
                Ok(None) => return None,
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
