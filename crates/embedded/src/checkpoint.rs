//! The on-disk index's files and checkpoints: `index/MANIFEST` (the live
//! runs and the checkpoint, replaced whole), `index/run-N.idx` (sorted
//! runs, see [`crate::run`]) and `index/feed.idx` (position → record
//! location). See `docs/storage-engine.md`, "The on-disk index".
//!
//! ```text
//! MANIFEST := "EVIDXMF1" | version u32 = 3 | last_position u64 | log_end u64
//!             | last_frame u64 | commit_start u64 | last_time i64 (i64::MIN: none)
//!             | next_stream u32 | next_run u64 | runs u32 | (seq u64, tier u32){runs}
//!             | crc u32 (CRC-32 of everything before it)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventstore_core::Timestamp;

use crate::EmbeddedError;
use crate::index::{BLOOM_TAGS, Delta, FEED_ENTRY_LEN, Index};
use crate::run::{BlockCache, Merge, Run, RunWriter};
use crate::vfs::{FileSystem, StorageFile};

const MANIFEST_MAGIC: &[u8; 8] = b"EVIDXMF1";
/// 3: runs of version 2 (`EVIDXRN2`, fences and filter read on first
/// use). A MANIFEST of an older version does not decode, and open rebuilds
/// the index.
const MANIFEST_VERSION: u32 = 3;
/// Runs of one tier merged into one of the next.
pub(crate) const FANOUT: usize = 8;

/// The directory of the index inside the data directory.
pub(crate) const INDEX_DIR: &str = "index";
const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
const FEED: &str = "feed.idx";

/// What a checkpoint covers: the log up to `log_end`, positions up to
/// `last_position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub last_position: u64,
    /// The end of the last frame covered (the log's header length when
    /// none).
    pub log_end: u64,
    /// The offset of the last frame covered (0: none).
    pub last_frame: u64,
    /// Where that frame's group commit starts.
    pub commit_start: u64,
    pub last_time: Option<Timestamp>,
    pub next_stream: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunMeta {
    pub seq: u64,
    pub tier: u32,
}

/// The index's files as the last MANIFEST written names them.
#[derive(Debug)]
pub(crate) struct IndexFiles {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    pub feed: Arc<dyn StorageFile>,
    pub runs: Vec<RunMeta>,
    pub next_run: u64,
    pub checkpoint: Checkpoint,
    pub cache: Arc<BlockCache>,
}

pub(crate) fn io(what: String) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    move |e| EmbeddedError::io(what, e)
}

/// The whole content of a small file (a MANIFEST, a mark, a journal).
pub(crate) fn read_whole(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u8>, EmbeddedError> {
    let f = fs
        .open(path, false)
        .map_err(io(format!("opening {}", path.display())))?;
    let len = f
        .len()
        .map_err(io(format!("reading the size of {}", path.display())))?;
    let mut bytes = vec![0u8; len as usize];
    f.read_exact_at(&mut bytes, 0)
        .map_err(io(format!("reading {}", path.display())))?;
    Ok(bytes)
}

pub(crate) fn run_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("run-{seq:08}.idx"))
}

fn encode_manifest(runs: &[RunMeta], next_run: u64, c: &Checkpoint) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MANIFEST_MAGIC);
    out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
    out.extend_from_slice(&c.last_position.to_le_bytes());
    out.extend_from_slice(&c.log_end.to_le_bytes());
    out.extend_from_slice(&c.last_frame.to_le_bytes());
    out.extend_from_slice(&c.commit_start.to_le_bytes());
    out.extend_from_slice(
        &c.last_time
            .map_or(i64::MIN, |t| t.as_micros())
            .to_le_bytes(),
    );
    out.extend_from_slice(&c.next_stream.to_le_bytes());
    out.extend_from_slice(&next_run.to_le_bytes());
    out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    for r in runs {
        out.extend_from_slice(&r.seq.to_le_bytes());
        out.extend_from_slice(&r.tier.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_manifest(b: &[u8]) -> Option<(Vec<RunMeta>, u64, Checkpoint)> {
    if b.len() < 4 {
        return None;
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = body.get(at..at + n)?;
        at += n;
        Some(s)
    };
    if take(8)? != MANIFEST_MAGIC {
        return None;
    }
    let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4"));
    let u64_ = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8"));
    if u32_(take(4)?) != MANIFEST_VERSION {
        return None;
    }
    let last_position = u64_(take(8)?);
    let log_end = u64_(take(8)?);
    let last_frame = u64_(take(8)?);
    let commit_start = u64_(take(8)?);
    let t = u64_(take(8)?) as i64;
    let next_stream = u32_(take(4)?);
    let next_run = u64_(take(8)?);
    let n = u32_(take(4)?);
    let mut runs = Vec::new();
    for _ in 0..n {
        let seq = u64_(take(8)?);
        let tier = u32_(take(4)?);
        runs.push(RunMeta { seq, tier });
    }
    if at != body.len() {
        return None;
    }
    Some((
        runs,
        next_run,
        Checkpoint {
            last_position,
            log_end,
            last_frame,
            commit_start,
            last_time: (t != i64::MIN).then(|| Timestamp::from_micros(t)),
            next_stream,
        },
    ))
}

impl IndexFiles {
    /// Replaces the MANIFEST with one naming `runs` and `checkpoint`:
    /// written beside it, synced, renamed over it, the directory synced.
    fn write_manifest(
        &self,
        runs: &[RunMeta],
        next_run: u64,
        c: &Checkpoint,
    ) -> Result<(), EmbeddedError> {
        let tmp = self.dir.join(MANIFEST_TMP);
        let bytes = encode_manifest(runs, next_run, c);
        let f = self
            .fs
            .open(&tmp, true)
            .map_err(io(format!("creating {}", tmp.display())))?;
        f.set_len(0)
            .and_then(|()| f.write_all_at(&bytes, 0))
            .and_then(|()| f.sync_data())
            .map_err(io(format!("writing {}", tmp.display())))?;
        let to = self.dir.join(MANIFEST);
        self.fs.rename(&tmp, &to).map_err(io(format!(
            "renaming {} to {}",
            tmp.display(),
            to.display()
        )))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(io(format!("syncing the directory {}", self.dir.display())))
    }

    /// Writes the frozen delta as a run and its feed entries to `feed.idx`,
    /// then a MANIFEST that names the run and `at`. Returns the run, open.
    pub(crate) fn checkpoint(
        &mut self,
        frozen: &Delta,
        at: Checkpoint,
    ) -> Result<Arc<Run>, EmbeddedError> {
        let seq = self.next_run;
        let path = run_path(&self.dir, seq);
        let mut w = RunWriter::create(&*self.fs, &path, BLOOM_TAGS, frozen.bloom_keys())?;
        for (k, v) in frozen.entries() {
            w.add(&k, v.as_deref())?;
        }
        w.finish()?;
        let mut feed = Vec::with_capacity(frozen.feed().len() * FEED_ENTRY_LEN as usize);
        for (i, f) in frozen.feed().iter().enumerate() {
            f.encode(frozen.first_position() + i as u64, &mut feed);
        }
        let feed_path = self.dir.join(FEED);
        self.feed
            .write_all_at(&feed, (frozen.first_position() - 1) * FEED_ENTRY_LEN)
            .and_then(|()| self.feed.sync_data())
            .map_err(io(format!("writing {}", feed_path.display())))?;
        // The run's directory entry is durable before a MANIFEST names it.
        self.fs
            .sync_dir(&self.dir)
            .map_err(io(format!("syncing the directory {}", self.dir.display())))?;
        // Opened before the MANIFEST names it: once the MANIFEST is
        // written nothing can fail, so a failure leaves this state (and
        // the index the caller installs the run in) as they were, and the
        // checkpoint can be tried again.
        let run = self.open_warm(&path, seq)?;
        let mut runs = self.runs.clone();
        runs.push(RunMeta { seq, tier: 0 });
        if let Err(e) = self.write_manifest(&runs, seq + 1, &at) {
            self.cache.forget(seq);
            return Err(e);
        }
        self.runs = runs;
        self.next_run = seq + 1;
        self.checkpoint = at;
        Ok(run)
    }

    /// Opens a run this thread just wrote, its fences and filter read:
    /// the writer's next look-ups must not read them (a merged run's
    /// filter can take tens of MiB).
    fn open_warm(&self, path: &Path, seq: u64) -> Result<Arc<Run>, EmbeddedError> {
        let run = Run::open(&*self.fs, path, seq, self.cache.clone())?;
        run.warm()?;
        Ok(Arc::new(run))
    }

    /// The newest runs to merge, when their tier is full: the last
    /// [`FANOUT`] runs if they share a tier.
    pub(crate) fn merge_candidates(&self) -> Option<(usize, u32)> {
        let tier = self.runs.last()?.tier;
        let n = self
            .runs
            .iter()
            .rev()
            .take_while(|r| r.tier == tier)
            .count();
        (n >= FANOUT).then(|| (self.runs.len() - n, tier))
    }

    /// Merges `inputs` (the runs from index `from` on, oldest first) into
    /// one run of the next tier, names it in a new MANIFEST, and returns it
    /// with the sequence numbers it replaced. Tombstones are dropped when
    /// the oldest run takes part.
    pub(crate) fn merge(
        &mut self,
        from: usize,
        tier: u32,
        inputs: &[Arc<Run>],
    ) -> Result<(Arc<Run>, Vec<u64>), EmbeddedError> {
        let replaced: Vec<u64> = self.runs[from..].iter().map(|r| r.seq).collect();
        debug_assert_eq!(replaced, inputs.iter().map(|r| r.seq).collect::<Vec<_>>());
        let seq = self.next_run;
        let path = run_path(&self.dir, seq);
        let ids: u64 = inputs.iter().map(|r| r.bloom_keys()).sum();
        let mut w = RunWriter::create(&*self.fs, &path, BLOOM_TAGS, ids)?;
        let drop_tombstones = from == 0;
        let mut iters: Vec<_> = inputs.iter().rev().map(|r| r.iter_from(&[])).collect();
        let mut error = None;
        {
            let merged = Merge::new(iters.iter_mut().map(|i| i.by_ref()).collect());
            for (k, v) in merged {
                if v.is_none() && drop_tombstones {
                    continue;
                }
                w.add(&k, v.as_deref())?;
            }
        }
        for it in &mut iters {
            if let Some(e) = it.error.take() {
                error = Some(e);
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        w.finish()?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(io(format!("syncing the directory {}", self.dir.display())))?;
        // As in `checkpoint`: nothing fails after the MANIFEST.
        let run = self.open_warm(&path, seq)?;
        let mut runs = self.runs[..from].to_vec();
        runs.push(RunMeta {
            seq,
            tier: tier + 1,
        });
        if let Err(e) = self.write_manifest(&runs, seq + 1, &self.checkpoint) {
            self.cache.forget(seq);
            return Err(e);
        }
        self.runs = runs;
        self.next_run = seq + 1;
        Ok((run, replaced))
    }

    /// Deletes run files no longer named (after the MANIFEST that dropped
    /// them is durable). A failure leaves an orphan that open deletes.
    pub(crate) fn delete_runs(&self, seqs: &[u64]) {
        for &seq in seqs {
            self.cache.forget(seq);
            let path = run_path(&self.dir, seq);
            if let Err(e) = self.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a merged run");
            }
        }
    }
}

/// How the index was found at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A MANIFEST whose checkpoint matches the log.
    Checkpoint,
    /// No MANIFEST: a new store, or one of an older version.
    Missing,
    /// A MANIFEST that does not match the log or whose files are damaged:
    /// the index is rebuilt.
    Mismatch,
}

/// What open takes from the index directory.
pub(crate) struct Loaded {
    pub index: Index,
    pub files: IndexFiles,
    pub found: Found,
    /// Why the index was not used, when it was not.
    pub reason: Option<String>,
}

/// The last position held by the intact frame at `offset` and its end,
/// when there is one.
pub(crate) type FrameProbe<'a> = &'a dyn Fn(u64) -> Option<(u64, u64)>;

/// Opens the index of the data directory `data`: reads the MANIFEST, checks
/// its checkpoint against the log (`probe`: the intact frame at an offset,
/// its end and last position; `log_len`), opens the runs and cuts
/// `feed.idx` back to the checkpoint. Anything that does not match is
/// discarded: the MANIFEST first (durably), then every index file, and
/// the index starts empty (to be rebuilt by the replay of the whole log).
pub(crate) fn load(
    fs: &Arc<dyn FileSystem>,
    data: &Path,
    dir: &Path,
    cache_bytes: usize,
    log_len: u64,
    probe: FrameProbe<'_>,
    read_only: bool,
) -> Result<Loaded, EmbeddedError> {
    let dir = dir.to_path_buf();
    let new_dir =
        !fs.exists(&dir.join(MANIFEST)) && fs.list_dir(&dir).map(|l| l.is_empty()).unwrap_or(true);
    fs.create_dir_all(&dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    if new_dir {
        // The index directory's own entry.
        fs.sync_dir(data)
            .map_err(io(format!("syncing the directory {}", data.display())))?;
    }
    let cache = Arc::new(BlockCache::new(cache_bytes));
    let feed_path = dir.join(FEED);
    let manifest_path = dir.join(MANIFEST);
    let mut reason = None;
    let mut found = Found::Missing;
    if fs.exists(&manifest_path) {
        found = Found::Mismatch;
        match try_load(fs, &dir, &cache, log_len, probe, read_only) {
            Ok(Ok((index, files))) if read_only => {
                return Ok(Loaded {
                    index,
                    files,
                    found: Found::Checkpoint,
                    reason: None,
                });
            }
            Ok(Ok((index, files))) => {
                // Orphans: runs no MANIFEST names (a checkpoint or merge
                // cut short, inputs of a merge not yet deleted).
                for p in fs
                    .list_dir(&dir)
                    .map_err(io(format!("listing {}", dir.display())))?
                {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let named = files.runs.iter().any(|r| run_path(&dir, r.seq) == p);
                    if name != MANIFEST && name != FEED && !named {
                        fs.remove_file(&p)
                            .map_err(io(format!("deleting {}", p.display())))?;
                    }
                }
                return Ok(Loaded {
                    index,
                    files,
                    found: Found::Checkpoint,
                    reason: None,
                });
            }
            Ok(Err(why)) => reason = Some(why),
            Err(e) => reason = Some(e.to_string()),
        }
        if read_only {
            return Err(EmbeddedError::Corrupt {
                path: manifest_path,
                offset: 0,
                reason: reason.unwrap_or_default(),
            });
        }
        tracing::warn!(
            reason = reason.as_deref().unwrap_or(""),
            "the index does not match the log; rebuilding it from the log"
        );
        fs.remove_file(&manifest_path)
            .map_err(io(format!("deleting {}", manifest_path.display())))?;
        fs.sync_dir(&dir)
            .map_err(io(format!("syncing the directory {}", dir.display())))?;
    }
    for p in fs
        .list_dir(&dir)
        .map_err(io(format!("listing {}", dir.display())))?
    {
        if p != feed_path {
            fs.remove_file(&p)
                .map_err(io(format!("deleting {}", p.display())))?;
        }
    }
    let feed = fs
        .open(&feed_path, true)
        .map_err(io(format!("opening {}", feed_path.display())))?;
    feed.set_len(0)
        .and_then(|()| feed.sync_data())
        .map_err(io(format!("emptying {}", feed_path.display())))?;
    fs.sync_dir(&dir)
        .map_err(io(format!("syncing the directory {}", dir.display())))?;
    let checkpoint = Checkpoint {
        log_end: crate::format::FILE_HEADER_LEN,
        ..Checkpoint::default()
    };
    // The rebuilt index numbers its runs from 1 again: blocks the failed
    // load cached under those numbers are of the discarded runs, and must
    // never be served for the new ones.
    let cache = Arc::new(BlockCache::new(cache_bytes));
    Ok(Loaded {
        index: Index::with_base(Vec::new(), Some(feed.clone()), 0, 0, None),
        files: IndexFiles {
            fs: fs.clone(),
            dir,
            feed,
            runs: Vec::new(),
            next_run: 1,
            checkpoint,
            cache,
        },
        found,
        reason,
    })
}

type TryLoaded = Result<(Index, IndexFiles), String>;

fn try_load(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    cache: &Arc<BlockCache>,
    log_len: u64,
    probe: FrameProbe<'_>,
    read_only: bool,
) -> Result<TryLoaded, EmbeddedError> {
    let bytes = read_whole(&**fs, &dir.join(MANIFEST))?;
    let Some((runs, next_run, c)) = decode_manifest(&bytes) else {
        return Ok(Err(
            "the MANIFEST does not parse or its checksum does not match".into(),
        ));
    };
    // The checkpoint against the log.
    if c.log_end > log_len {
        return Ok(Err(format!(
            "the checkpoint covers the log up to byte {}, the log has {log_len} bytes",
            c.log_end
        )));
    }
    if c.last_frame == 0 {
        if c.log_end != crate::format::FILE_HEADER_LEN || c.last_position != 0 {
            return Ok(Err(
                "the checkpoint names no frame but covers positions".into()
            ));
        }
    } else {
        match probe(c.last_frame) {
            Some((end, last)) if end == c.log_end && last == c.last_position => {}
            Some((end, last)) => {
                return Ok(Err(format!(
                    "the checkpoint's last frame (byte {}) ends at byte {end} with position {last}, not at byte {} with position {}",
                    c.last_frame, c.log_end, c.last_position
                )));
            }
            None => {
                return Ok(Err(format!(
                    "the log holds no intact frame at byte {}, where the checkpoint's last frame was",
                    c.last_frame
                )));
            }
        }
    }
    let feed_path = dir.join(FEED);
    let Ok(feed) = fs.open(&feed_path, false) else {
        return Ok(Err("feed.idx is missing".into()));
    };
    let flen = feed
        .len()
        .map_err(io(format!("reading {}", feed_path.display())))?;
    let covered = c.last_position * FEED_ENTRY_LEN;
    if flen < covered {
        return Ok(Err(format!(
            "feed.idx holds {} positions, the checkpoint covers {}",
            flen / FEED_ENTRY_LEN,
            c.last_position
        )));
    }
    if c.last_position > 0 {
        let mut e = [0u8; FEED_ENTRY_LEN as usize];
        feed.read_exact_at(&mut e, covered - FEED_ENTRY_LEN)
            .map_err(io(format!("reading {}", feed_path.display())))?;
        let Some(f) = crate::index::FeedEntry::decode(&e, c.last_position) else {
            return Ok(Err(format!(
                "feed.idx's entry of position {} does not match its CRC",
                c.last_position
            )));
        };
        let within = f.stream == crate::index::LOST
            || (f.span.offset > c.last_frame && f.span.offset + u64::from(f.span.len) <= c.log_end);
        if !within {
            return Ok(Err(format!(
                "feed.idx says position {} lies at byte {}, outside the checkpoint's last frame",
                c.last_position, f.span.offset
            )));
        }
    }
    let mut open = Vec::with_capacity(runs.len());
    for r in &runs {
        match Run::open(&**fs, &run_path(dir, r.seq), r.seq, cache.clone()) {
            Ok(run) => open.push(Arc::new(run)),
            Err(e) => return Ok(Err(format!("run {}: {e}", r.seq))),
        }
    }
    if flen > covered && !read_only {
        // Entries of a checkpoint whose MANIFEST was never written.
        feed.set_len(covered)
            .and_then(|()| feed.sync_data())
            .map_err(io(format!("truncating {}", feed_path.display())))?;
    }
    let mut index = Index::with_base(
        open,
        Some(feed.clone()),
        c.last_position,
        c.next_stream,
        c.last_time,
    );
    // A removals table that does not read: open rebuilds the index (a
    // deleted stream must not come back); `check` (read only) goes on and
    // finds the damaged run by its checksums.
    if let Err(e) = index.load_removals()
        && !read_only
    {
        return Ok(Err(format!("the removals table: {e}")));
    }
    Ok(Ok((
        index,
        IndexFiles {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            feed,
            runs,
            next_run,
            checkpoint: c,
            cache: cache.clone(),
        },
    )))
}

/// Runs a checkpoint of `index`'s active delta now, in this thread, and
/// the merges it makes due (open's replay, which owns the index).
pub(crate) fn checkpoint_now(
    files: &mut IndexFiles,
    index: &mut Index,
    at: Checkpoint,
) -> Result<(), EmbeddedError> {
    let frozen = index.freeze();
    let run = files.checkpoint(&frozen, at)?;
    index.install(run, files.feed.clone());
    while let Some((from, tier)) = files.merge_candidates() {
        let inputs = index.runs()[from..].to_vec();
        let (run, replaced) = files.merge(from, tier, &inputs)?;
        index.replace_runs(&replaced, run);
        drop(inputs);
        files.delete_runs(&replaced);
    }
    Ok(())
}

/// The longest pause before a failed checkpoint is tried again (the
/// first is `EmbeddedOptions::checkpoint_retry`; it doubles with every
/// failure).
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// One checkpoint for the checkpoint thread: the frozen delta and what it
/// covers.
struct Job {
    frozen: Arc<Delta>,
    at: Checkpoint,
}

/// The checkpoint thread's handle, held by the writer.
pub(crate) struct Checkpointer {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A checkpoint (and its merges) is in progress.
    busy: Arc<std::sync::atomic::AtomicBool>,
    /// Why the checkpoint in progress failed, while it is tried again
    /// (the deltas stay in memory meanwhile; the log is the truth, and an
    /// open replays it from the last checkpoint that was written whole).
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

impl Checkpointer {
    /// Starts the thread; `index` is the shared index it installs runs in.
    pub(crate) fn start(
        mut files: IndexFiles,
        index: Arc<std::sync::RwLock<Index>>,
        failed: Arc<std::sync::Mutex<Option<String>>>,
        busy: Arc<std::sync::atomic::AtomicBool>,
        retry: std::time::Duration,
    ) -> Result<Self, EmbeddedError> {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (b, f) = (busy.clone(), failed.clone());
        crate::metrics::checkpoint_failed(false);
        let thread = std::thread::Builder::new()
            .name("eventstore-checkpoint".into())
            .spawn(move || {
                let write = || index.write().unwrap_or_else(|e| e.into_inner());
                let read = || index.read().unwrap_or_else(|e| e.into_inner());
                // Open read only the runs' trailers: read their fences and
                // filters now, beside the first requests, rather than in
                // the first look-ups. A part that does not read is left
                // for the look-ups that need it to fail on.
                let runs = read().runs().to_vec();
                for run in &runs {
                    if let Err(e) = run.warm() {
                        tracing::warn!(error = %e, "reading an index run's fences and filter");
                    }
                }
                crate::metrics::index_size(runs.len(), runs.iter().map(|r| r.memory()).sum());
                drop(runs);
                // Jobs that arrived while one was being tried again (the
                // writer waits for each to finish, so none should).
                let mut queued = std::collections::VecDeque::new();
                while let Some(job) = queued.pop_front().or_else(|| rx.recv().ok()) {
                    let started = std::time::Instant::now();
                    let mut installed = false;
                    let mut pause = retry.min(RETRY_MAX);
                    loop {
                        // A failure changes neither the files' state nor the
                        // index (see `IndexFiles::checkpoint`), so the same
                        // job is tried again from the step that failed.
                        let result = (|| -> Result<(), EmbeddedError> {
                            if !installed {
                                let run = files.checkpoint(&job.frozen, job.at)?;
                                write().install(run, files.feed.clone());
                                installed = true;
                                crate::metrics::checkpointed(
                                    job.frozen.positions(),
                                    started.elapsed(),
                                );
                            }
                            while let Some((from, tier)) = files.merge_candidates() {
                                let started = std::time::Instant::now();
                                let inputs = read().runs()[from..].to_vec();
                                let (run, replaced) = files.merge(from, tier, &inputs)?;
                                write().replace_runs(&replaced, run);
                                drop(inputs);
                                files.delete_runs(&replaced);
                                crate::metrics::merged(started.elapsed());
                            }
                            Ok(())
                        })();
                        let Err(e) = result else {
                            let mut failed = f.lock().unwrap_or_else(|e| e.into_inner());
                            if failed.take().is_some() {
                                tracing::info!("the index is written again");
                                crate::metrics::checkpoint_failed(false);
                            }
                            break;
                        };
                        tracing::error!(error = %e, retry_in_s = pause.as_secs_f64(), "writing the index failed; appends and reads go on, the index's deltas stay in memory until it is written (the log is intact, and an open replays it)");
                        *f.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                        crate::metrics::checkpoint_failed(true);
                        // The writer sends nothing while this job is in
                        // progress; the channel closes when the store stops.
                        match rx.recv_timeout(pause) {
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                                pause = (pause * 2).min(RETRY_MAX);
                            }
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                                b.store(false, Ordering::SeqCst);
                                return;
                            }
                            Ok(later) => queued.push_back(later),
                        }
                    }
                    let r = read();
                    crate::metrics::index_size(r.runs().len(), r.run_memory());
                    drop(r);
                    if queued.is_empty() {
                        b.store(false, Ordering::SeqCst);
                    }
                }
            })
            .map_err(|e| EmbeddedError::io("starting the checkpoint thread", e))?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
            busy,
            failed,
        })
    }

    /// Whether a new checkpoint may start: none is in progress (or being
    /// tried again after a failure).
    pub(crate) fn idle(&self) -> bool {
        !self.busy.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn failing(&self) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Hands a frozen delta to the thread.
    pub(crate) fn submit(&self, frozen: Arc<Delta>, at: Checkpoint) {
        self.busy.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(tx) = &self.jobs
            && tx.send(Job { frozen, at }).is_err()
        {
            self.busy.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Waits for the checkpoint in progress (and its merges) to finish, or
    /// to fail (it is then tried again until the store stops).
    pub(crate) fn wait_idle(&self) {
        while self.busy.load(std::sync::atomic::Ordering::SeqCst) && !self.failing() {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Lets the thread finish its jobs and stops it.
    pub(crate) fn stop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Discards the index in `dir`: the MANIFEST first (durably), then every
/// other file. The next open rebuilds it from the log.
pub(crate) fn discard(fs: &dyn FileSystem, dir: &Path) -> Result<(), EmbeddedError> {
    let manifest = dir.join(MANIFEST);
    if fs.exists(&manifest) {
        fs.remove_file(&manifest)
            .map_err(io(format!("deleting {}", manifest.display())))?;
        fs.sync_dir(dir)
            .map_err(io(format!("syncing the directory {}", dir.display())))?;
    }
    for p in fs
        .list_dir(dir)
        .map_err(io(format!("listing {}", dir.display())))?
    {
        fs.remove_file(&p)
            .map_err(io(format!("deleting {}", p.display())))?;
    }
    Ok(())
}
