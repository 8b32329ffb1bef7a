//! Compares engines for an on-disk index of the event log, the way the
//! store would use one: entries `(stream number, revision) -> (position,
//! log offset)` arrive in log order (streams interleaved) and are flushed
//! in batches (one batch = one index checkpoint); then point look-ups of a
//! random stream's revision and range scans of a page of 100 revisions.
//!
//! ```text
//! cargo run --release -p eventstore-embedded --features index-bench \
//!     --example index_bench -- ENGINE ENTRIES DIR
//! ```
//!
//! ENGINE is `redb`, `fjall` or `table` (sorted run files of our own,
//! merged in tiers, read with positional reads). Run one engine per process
//! so that the resident memory printed is that engine's. With
//! `INDEX_BENCH_EXIT=1` the run ends without closing the engine (as a
//! killed process would); ENTRIES `open` then measures opening what a run
//! left.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Entries per flush (one checkpoint of the index).
const BATCH: usize = 100_000;
/// Cache given to each engine.
const CACHE_BYTES: usize = 64 << 20;
const LOOKUPS: usize = 100_000;
const SCANS: usize = 10_000;
const PAGE: u64 = 100;

type Key = [u8; 12];
type Value = [u8; 16];

fn key(stream: u32, revision: u64) -> Key {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&stream.to_be_bytes());
    k[4..].copy_from_slice(&revision.to_be_bytes());
    k
}

fn value(position: u64) -> Value {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&position.to_le_bytes());
    v[8..].copy_from_slice(&(position * 120).to_le_bytes());
    v
}

/// The index's workload: a realistic mix of stream lengths. 80% of the
/// events go to many short streams (about 5 events each on average), 20%
/// to 100 long streams. Returns each event's stream, in log order, and the
/// final length of every stream.
fn workload(n: usize, rng: &mut fastrand::Rng) -> (Vec<u32>, Vec<u64>) {
    let long = 100u32;
    let short = (n / 5).max(1) as u32;
    let mut lengths = vec![0u64; (long + short) as usize];
    let mut order = Vec::with_capacity(n);
    for _ in 0..n {
        let s = if rng.u32(0..10) < 2 {
            rng.u32(0..long)
        } else {
            long + rng.u32(0..short)
        };
        lengths[s as usize] += 1;
        order.push(s);
    }
    (order, lengths)
}

trait Engine {
    fn insert_batch(&mut self, batch: &[(Key, Value)]);
    fn get(&self, k: &Key) -> Option<Value>;
    /// Up to `limit` entries of `stream` from revision `from`; how many.
    fn scan(&self, stream: u32, from: u64, limit: u64) -> usize;
}

struct Redb {
    db: redb::Database,
}

const TABLE: redb::TableDefinition<&[u8; 12], &[u8; 16]> = redb::TableDefinition::new("revisions");

impl Redb {
    fn new(dir: &Path) -> Self {
        // `create` opens the file when it exists.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("index.redb"))
            .expect("create redb");
        Self { db }
    }
}

impl Engine for Redb {
    fn insert_batch(&mut self, batch: &[(Key, Value)]) {
        let mut tx = self.db.begin_write().expect("begin");
        // Saves the allocator state with the commit, so that opening after
        // a crash does not walk the whole tree.
        tx.set_quick_repair(true);
        {
            let mut t = tx.open_table(TABLE).expect("table");
            for (k, v) in batch {
                t.insert(k, v).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    fn get(&self, k: &Key) -> Option<Value> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("read");
        let t = tx.open_table(TABLE).expect("table");
        t.get(k).expect("get").map(|v| *v.value())
    }
    fn scan(&self, stream: u32, from: u64, limit: u64) -> usize {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read().expect("read");
        let t = tx.open_table(TABLE).expect("table");
        let lo = key(stream, from);
        let hi = key(stream, u64::MAX);
        t.range::<&[u8; 12]>(&lo..=&hi)
            .expect("range")
            .take(limit as usize)
            .map(|e| std::hint::black_box(e.expect("entry").1.value()[0]))
            .fold(0, |n, _| n + 1)
    }
}

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Fjall {
    fn new(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir.join("fjall"))
            .cache_size(CACHE_BYTES as u64)
            .open()
            .expect("open fjall");
        let ks = db
            .keyspace("revisions", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        Self { db, ks }
    }
}

impl Engine for Fjall {
    fn insert_batch(&mut self, batch: &[(Key, Value)]) {
        let mut b = self.db.batch();
        for (k, v) in batch {
            b.insert(&self.ks, k.to_vec(), v.to_vec());
        }
        b.commit().expect("commit");
        // A checkpoint is durable: sync the journal.
        self.db
            .persist(fjall::PersistMode::SyncData)
            .expect("persist");
    }
    fn get(&self, k: &Key) -> Option<Value> {
        self.ks
            .get(k)
            .expect("get")
            .map(|v| v.as_ref().try_into().expect("16 bytes"))
    }
    fn scan(&self, stream: u32, from: u64, limit: u64) -> usize {
        let lo = key(stream, from);
        let hi = key(stream, u64::MAX);
        self.ks
            .range(lo..=hi)
            .take(limit as usize)
            .map(|g| std::hint::black_box(g.into_inner().expect("entry")))
            .fold(0, |n, _| n + 1)
    }
}

/// Our own: immutable sorted run files of fixed 28-byte entries in 4 KiB
/// blocks, the first key of each block kept in memory (the fences). Each
/// flush writes a run; when a tier holds 8 runs they are merged into one
/// of the next tier (a k-way merge, written sequentially).
struct Table {
    dir: PathBuf,
    tiers: Vec<Vec<Run>>,
    next: u64,
}

const ENTRY: usize = 28;
const PER_BLOCK: usize = 4096 / ENTRY;
const FANOUT: usize = 8;

struct Run {
    file: File,
    path: PathBuf,
    len: usize,
    fences: Vec<Key>,
}

impl Run {
    fn write(path: PathBuf, entries: impl Iterator<Item = (Key, Value)>) -> Self {
        let f = File::create(&path).expect("create run");
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut fences = Vec::new();
        let mut len = 0;
        for (k, v) in entries {
            if len % PER_BLOCK == 0 {
                fences.push(k);
            }
            w.write_all(&k)
                .and_then(|()| w.write_all(&v))
                .expect("write");
            len += 1;
        }
        let f = w.into_inner().expect("flush");
        f.sync_data().expect("sync");
        let file = File::open(&path).expect("reopen run");
        Run {
            file,
            path,
            len,
            fences,
        }
    }

    fn block(&self, b: usize) -> Vec<u8> {
        let start = b * PER_BLOCK;
        let n = PER_BLOCK.min(self.len - start);
        let mut buf = vec![0u8; n * ENTRY];
        self.file
            .read_exact_at(&mut buf, (start * ENTRY) as u64)
            .expect("read");
        buf
    }

    fn entry(buf: &[u8], i: usize) -> (Key, Value) {
        let e = &buf[i * ENTRY..(i + 1) * ENTRY];
        (
            e[..12].try_into().expect("key"),
            e[12..].try_into().expect("value"),
        )
    }

    /// The block that would hold `k`.
    fn block_of(&self, k: &Key) -> Option<usize> {
        self.fences.partition_point(|f| f <= k).checked_sub(1)
    }

    fn get(&self, k: &Key) -> Option<Value> {
        let buf = self.block(self.block_of(k)?);
        let n = buf.len() / ENTRY;
        let i = (0..n)
            .collect::<Vec<_>>()
            .partition_point(|&i| Self::entry(&buf, i).0 < *k);
        (i < n && Self::entry(&buf, i).0 == *k).then(|| Self::entry(&buf, i).1)
    }

    fn scan(&self, lo: &Key, hi: &Key, limit: usize, out: &mut Vec<(Key, Value)>) {
        let mut b = self.block_of(lo).unwrap_or(0);
        while b < self.fences.len() && out.len() < limit {
            if self.fences[b] > *hi {
                break;
            }
            let buf = self.block(b);
            for i in 0..buf.len() / ENTRY {
                let (k, v) = Self::entry(&buf, i);
                if k > *hi || out.len() == limit {
                    return;
                }
                if k >= *lo {
                    out.push((k, v));
                }
            }
            b += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (Key, Value)> + '_ {
        let blocks = self.fences.len();
        (0..blocks).flat_map(move |b| {
            let buf = self.block(b);
            (0..buf.len() / ENTRY)
                .map(|i| Self::entry(&buf, i))
                .collect::<Vec<_>>()
        })
    }
}

impl Table {
    /// Opens the run files left in `dir` (one tier: enough for a look-up).
    fn open(dir: &Path) -> Self {
        let dir = dir.join("table");
        let mut runs = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for path in names {
            let file = File::open(&path).expect("open run");
            let len = file.metadata().expect("size").len() as usize / ENTRY;
            let mut fences = Vec::new();
            let mut k = [0u8; 12];
            for b in 0..len.div_ceil(PER_BLOCK) {
                file.read_exact_at(&mut k, (b * PER_BLOCK * ENTRY) as u64)
                    .expect("read fence");
                fences.push(k);
            }
            runs.push(Run {
                file,
                path,
                len,
                fences,
            });
        }
        let next = runs.len() as u64 + 1_000_000;
        Self {
            dir,
            tiers: vec![runs],
            next,
        }
    }

    fn new(dir: &Path) -> Self {
        let dir = dir.join("table");
        std::fs::create_dir_all(&dir).expect("dir");
        Self {
            dir,
            tiers: Vec::new(),
            next: 0,
        }
    }

    fn path(&mut self) -> PathBuf {
        self.next += 1;
        self.dir.join(format!("run-{:08}", self.next))
    }

    fn runs(&self) -> impl Iterator<Item = &Run> {
        // Newest first: a later run wins (the index never rewrites a key,
        // but the order is kept as a real table would need it).
        self.tiers.iter().flat_map(|t| t.iter().rev())
    }
}

impl Engine for Table {
    fn insert_batch(&mut self, batch: &[(Key, Value)]) {
        let mut sorted = batch.to_vec();
        sorted.sort_unstable_by_key(|e| e.0);
        let path = self.path();
        let run = Run::write(path, sorted.into_iter());
        if self.tiers.is_empty() {
            self.tiers.push(Vec::new());
        }
        self.tiers[0].push(run);
        let mut t = 0;
        while self.tiers[t].len() >= FANOUT {
            let runs = std::mem::take(&mut self.tiers[t]);
            let path = self.path();
            let merged = {
                let mut iters: Vec<_> = runs.iter().map(|r| r.iter().peekable()).collect();
                let merge = std::iter::from_fn(|| {
                    let best = iters
                        .iter_mut()
                        .enumerate()
                        .filter_map(|(i, it)| it.peek().map(|e| (e.0, i)))
                        .min()?;
                    iters[best.1].next()
                });
                Run::write(path, merge)
            };
            for r in runs {
                std::fs::remove_file(&r.path).expect("remove run");
            }
            if self.tiers.len() == t + 1 {
                self.tiers.push(Vec::new());
            }
            self.tiers[t + 1].push(merged);
            t += 1;
        }
    }
    fn get(&self, k: &Key) -> Option<Value> {
        self.runs().find_map(|r| r.get(k))
    }
    fn scan(&self, stream: u32, from: u64, limit: u64) -> usize {
        let lo = key(stream, from);
        let hi = key(stream, u64::MAX);
        let mut all = Vec::new();
        for r in self.runs() {
            let mut part = Vec::new();
            r.scan(&lo, &hi, limit as usize, &mut part);
            all.extend(part);
        }
        all.sort_unstable_by_key(|e| e.0);
        all.truncate(limit as usize);
        all.len()
    }
}

fn status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_size(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, engine, n, dir] = &args[..] else {
        eprintln!("usage: index_bench redb|fjall|table ENTRIES DIR");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir).join(engine);
    if n == "open" {
        // Open what an earlier run left (after a clean close, or after
        // `INDEX_BENCH_EXIT=1` left it as a crash would) and look one up.
        let t = Instant::now();
        let e: Box<dyn Engine> = match engine.as_str() {
            "redb" => Box::new(Redb::new(&dir)),
            "fjall" => Box::new(Fjall::new(&dir)),
            "table" => Box::new(Table::open(&dir)),
            other => panic!("unknown engine {other}"),
        };
        let found = e.get(&key(0, 1)).is_some();
        println!(
            "{engine}: open and first look-up {:.1} ms (found: {found}); RSS {:.0} MiB",
            t.elapsed().as_secs_f64() * 1e3,
            status("VmRSS:")
        );
        return;
    }
    let n: usize = n.parse().expect("ENTRIES is a number");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create DIR");
    let mut rng = fastrand::Rng::with_seed(7);
    let (order, lengths) = workload(n, &mut rng);
    let mut e: Box<dyn Engine> = match engine.as_str() {
        "redb" => Box::new(Redb::new(&dir)),
        "fjall" => Box::new(Fjall::new(&dir)),
        "table" => Box::new(Table::new(&dir)),
        other => panic!("unknown engine {other}"),
    };
    let before = status("VmRSS:");

    // Load, in log order, one flush per BATCH entries.
    let mut revs = vec![0u64; lengths.len()];
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut slowest_flush = Duration::ZERO;
    for (i, &s) in order.iter().enumerate() {
        revs[s as usize] += 1;
        batch.push((key(s, revs[s as usize]), value(i as u64 + 1)));
        if batch.len() == BATCH || i + 1 == n {
            let t = Instant::now();
            e.insert_batch(&batch);
            slowest_flush = slowest_flush.max(t.elapsed());
            batch.clear();
        }
    }
    let load = started.elapsed();
    drop(order);

    // Point look-ups of a random stream's random revision.
    let streams = lengths.len() as u32;
    let mut times = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let s = rng.u32(0..streams);
        if lengths[s as usize] == 0 {
            continue;
        }
        let r = rng.u64(1..=lengths[s as usize]);
        let t = Instant::now();
        let v = e.get(&key(s, r));
        times.push(t.elapsed());
        assert!(v.is_some(), "entry {s}/{r} missing");
    }
    times.sort();
    let (get50, get99) = (pct(&times, 0.5), pct(&times, 0.99));

    // Pages of 100 revisions of a random stream from a random revision;
    // the long streams are asked as often as the short ones.
    let mut times = Vec::with_capacity(SCANS);
    let mut entries = 0;
    let scan_started = Instant::now();
    for i in 0..SCANS {
        let s = if i % 2 == 0 {
            rng.u32(0..100)
        } else {
            rng.u32(0..streams)
        };
        let len = lengths[s as usize];
        if len == 0 {
            continue;
        }
        let from = rng.u64(1..=len);
        let t = Instant::now();
        let got = e.scan(s, from, PAGE);
        times.push(t.elapsed());
        assert_eq!(got as u64, (len - from + 1).min(PAGE), "scan of {s}");
        entries += got;
    }
    let scan_rate = entries as f64 / scan_started.elapsed().as_secs_f64();
    times.sort();
    let (scan50, scan99) = (pct(&times, 0.5), pct(&times, 0.99));
    let rss = status("VmRSS:");
    let hwm = status("VmHWM:");
    if std::env::var_os("INDEX_BENCH_EXIT").is_some() {
        // Leave the files as a killed process would (no clean shutdown).
        println!("{engine}: loaded {n} entries; exiting without closing");
        std::process::exit(0);
    }
    drop(e);
    let size = dir_size(&dir);
    println!(
        "{engine}: {n} entries in {} streams; load {:.0} entries/s ({:.1} s, slowest flush of {BATCH} {:.0} ms); \
         get p50 {get50:.1} µs p99 {get99:.1} µs; page of {PAGE} p50 {scan50:.1} µs p99 {scan99:.1} µs, \
         {scan_rate:.0} entries/s; RSS {rss:.0} MiB (before load {before:.0}, peak {hwm:.0}); files {:.0} MiB",
        lengths.iter().filter(|&&l| l > 0).count(),
        n as f64 / load.as_secs_f64(),
        load.as_secs_f64(),
        slowest_flush.as_secs_f64() * 1e3,
        size as f64 / f64::from(1 << 20),
    );
}
