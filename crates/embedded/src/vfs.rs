//! The file layer under the store: the real file system ([`OsFs`]) and a
//! simulated one ([`SimFs`]) that keeps unsynced writes in a volatile buffer,
//! can lose them in a simulated power cut, and fails any call on demand.
//!
//! The store does every file operation through [`FileSystem`] and
//! [`StorageFile`], so the fault tests run the real engine — the same
//! writer, recovery, check and repair code — over the simulated layer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// One open file of the store.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` past the
    /// end).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file's length.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A held directory lock; dropping it releases the lock.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// The directory operations the store needs.
pub trait FileSystem: Send + Sync + fmt::Debug + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file for reading and writing, creating it when `create`.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether a file exists.
    fn exists(&self, path: &Path) -> bool;
    /// Makes the directory's entries (created, renamed files) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames a file (atomically replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Takes the exclusive lock of a data directory through its lock file;
    /// `WouldBlock` when someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>>;
    /// Removes a file (durable once its directory is synced).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The files directly inside a directory (an empty list when it does
    /// not exist).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// The layer as this process sees it, when that differs from `self`: a
    /// simulated layer binds it to the running "process", so that the
    /// threads of a process that died never act on the files again.
    fn for_this_process(&self) -> Option<Arc<dyn FileSystem>> {
        None
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl StorageFile for OsFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

#[derive(Debug)]
struct OsLock(#[allow(dead_code)] File);
impl DirLock for OsLock {}

impl FileSystem for OsFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Box::new(OsLock(f))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The kinds of call the simulated layer can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// [`StorageFile::write_all_at`].
    Write,
    /// [`StorageFile::sync_data`].
    Sync,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::open`] with `create` of a file that does not exist.
    Create,
    /// [`StorageFile::read_exact_at`].
    Read,
    /// [`FileSystem::remove_file`].
    Remove,
}

/// What a simulated power cut keeps of the writes not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCut {
    /// Nothing: the files are as of their last successful sync.
    DropUnsynced,
    /// A random prefix of the unsynced writes, in order, the last one cut at
    /// a random byte.
    TornPrefix,
    /// Each 512-byte sector of the unsynced writes independently, with the
    /// files' new lengths kept (sectors not kept read as zeroes).
    TornSectors,
}

/// The sector size the simulated disk writes atomically.
pub const SECTOR: u64 = 512;

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    /// What reads see (the page cache).
    current: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Operations since the last sync, in order.
    pending: Vec<Pending>,
}

fn apply(data: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, bytes } => {
            let end = *offset as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*offset as usize..end].copy_from_slice(bytes);
        }
        Pending::SetLen(len) => data.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    /// Files whose directory entry is durable.
    durable_entries: HashSet<PathBuf>,
    /// Renames not yet made durable: (from, to, what `to` was before).
    pending_renames: Vec<(PathBuf, PathBuf, Option<SimFile>)>,
    /// Removals not yet made durable: the file as it was.
    pending_removes: Vec<(PathBuf, SimFile)>,
    /// Held locks, with the token of their holder.
    locks: HashMap<PathBuf, u64>,
    next_token: u64,
    /// Calls made so far, by kind.
    counts: HashMap<Op, u64>,
    /// Calls to fail: (kind, 0-based call number of that kind) -> errno.
    fail_at: HashMap<(Op, u64), i32>,
    /// Every call of these kinds fails with the errno.
    fail_all: HashMap<Op, i32>,
    /// Calls at which the process dies: (kind, 0-based call number).
    kill_at: HashSet<(Op, u64)>,
    /// The files whose sync failed, in order.
    failed_syncs: Vec<PathBuf>,
    /// After this many calls in all, every call fails (the process died).
    dead: bool,
    /// Bumped each time the simulated process dies (a kill or a power
    /// cut): a handle opened by an earlier process never acts again, even
    /// after [`SimFs::heal`] starts a new one (a dead process's threads
    /// cannot sync or write on behalf of its successor).
    generation: u64,
    /// The largest single write so far, in bytes.
    largest_write: u64,
    rng: u64,
}

impl SimState {
    fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic from the seed, good enough for choices.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Counts a call and fails it when the plan says so.
    fn call(&mut self, op: Op) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("the simulated process is dead"));
        }
        let n = self.counts.entry(op).or_insert(0);
        let k = *n;
        *n += 1;
        if self.kill_at.contains(&(op, k)) {
            self.dead = true;
            self.generation += 1;
            self.locks.clear();
            return Err(io::Error::other("the simulated process died in this call"));
        }
        if let Some(&errno) = self.fail_at.get(&(op, k)).or(self.fail_all.get(&op)) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(())
    }
}

/// A simulated file system in memory: reads see every write at once, but
/// only synced writes survive [`SimFs::power_cut`]. A failed sync behaves
/// as Linux does: the unsynced writes reach the disk in part or not at all,
/// and are then forgotten (a later sync does not retry them), while reads
/// still see them until the power is cut. Directory entries of new or
/// renamed files are durable only after [`FileSystem::sync_dir`].
///
/// Every call of a given [`Op`] kind can be made to fail with an errno
/// ([`SimFs::fail_nth`], [`SimFs::fail_every`]), and the whole layer can
/// "die" ([`SimFs::kill`]) so that every later call fails, as when the
/// process is killed in the middle of a commit.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
    /// The process this view belongs to (see
    /// [`FileSystem::for_this_process`]); `None`: the test's own view.
    bound: Option<u64>,
    /// While true, syncs wait (see [`SimFs::hold_syncs`]).
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl SimFs {
    /// An empty file system whose random choices follow `seed`.
    pub fn new(seed: u64) -> Self {
        let fs = Self::default();
        fs.lock_state().rng = seed | 1;
        fs
    }

    fn lock_state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, when this view's process is the running one.
    fn live_state(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let s = self.lock_state();
        if self.bound.is_some_and(|g| g != s.generation) {
            return Err(io::Error::other(
                "the simulated process of this view is dead",
            ));
        }
        Ok(s)
    }

    /// Fails the `n`-th (0-based) call of kind `op` from now on counting
    /// from the start, with `errno` (e.g. `libc` `EIO` = 5, `ENOSPC` = 28).
    pub fn fail_nth(&self, op: Op, n: u64, errno: i32) {
        self.lock_state().fail_at.insert((op, n), errno);
    }

    /// Fails every call of kind `op` with `errno` until [`SimFs::heal`].
    pub fn fail_every(&self, op: Op, errno: i32) {
        self.lock_state().fail_all.insert(op, errno);
    }

    /// Kills the layer (see [`SimFs::kill`]) at the `n`-th (0-based) call
    /// of kind `op`, counting from the start; that call does nothing.
    pub fn kill_at(&self, op: Op, n: u64) {
        self.lock_state().kill_at.insert((op, n));
    }

    /// Kills the layer at the next call of kind `op`, whichever thread
    /// makes it (the count is read and the death planned at once).
    pub fn kill_at_next(&self, op: Op) {
        let mut s = self.lock_state();
        let n = s.counts.get(&op).copied().unwrap_or(0);
        s.kill_at.insert((op, n));
    }

    /// Removes every planned failure and brings a killed layer back.
    pub fn heal(&self) {
        let mut s = self.lock_state();
        s.fail_at.clear();
        s.fail_all.clear();
        s.kill_at.clear();
        s.dead = false;
    }

    /// The files whose sync failed (with an errno, not a death), in order.
    pub fn failed_syncs(&self) -> Vec<PathBuf> {
        self.lock_state().failed_syncs.clone()
    }

    /// How many calls of kind `op` were made.
    pub fn count(&self, op: Op) -> u64 {
        self.lock_state().counts.get(&op).copied().unwrap_or(0)
    }

    /// Makes every later call fail, as if the process had died now. The
    /// page cache (what reads see) stays as it is, as after a real process
    /// crash; [`SimFs::heal`] starts a "new process" over the same files.
    pub fn kill(&self) {
        let mut s = self.lock_state();
        s.dead = true;
        s.generation += 1;
        // The dead process's locks go with it.
        s.locks.clear();
    }

    /// Cuts the power: every file goes back to its durable content, plus
    /// what `mode` keeps of the unsynced writes; unsynced directory entries
    /// are lost. Locks are released and the layer is healed.
    pub fn power_cut(&self, mode: PowerCut) {
        let mut s = self.lock_state();
        // The power takes the running process with it.
        s.generation += 1;
        let paths: Vec<PathBuf> = s.files.keys().cloned().collect();
        for path in paths {
            let mut f = s.files.remove(&path).expect("listed");
            let mut after = f.durable.clone();
            match mode {
                PowerCut::DropUnsynced => {}
                PowerCut::TornPrefix => {
                    let total: usize = f
                        .pending
                        .iter()
                        .map(|p| match p {
                            Pending::Write { bytes, .. } => bytes.len(),
                            Pending::SetLen(_) => 1,
                        })
                        .sum();
                    let mut keep = if total == 0 {
                        0
                    } else {
                        (s.next_random() % (total as u64 + 1)) as usize
                    };
                    for op in &f.pending {
                        if keep == 0 {
                            break;
                        }
                        match op {
                            Pending::Write { offset, bytes } => {
                                let n = keep.min(bytes.len());
                                apply(
                                    &mut after,
                                    &Pending::Write {
                                        offset: *offset,
                                        bytes: bytes[..n].to_vec(),
                                    },
                                );
                                keep -= n;
                            }
                            Pending::SetLen(_) => {
                                apply(&mut after, op);
                                keep -= 1;
                            }
                        }
                    }
                }
                PowerCut::TornSectors => {
                    // The sizes of the new state, with each sector of the
                    // written data kept or not.
                    let mut full = f.durable.clone();
                    for op in &f.pending {
                        apply(&mut full, op);
                    }
                    after.resize(full.len(), 0);
                    let sectors = full.len().div_ceil(SECTOR as usize);
                    for i in 0..sectors {
                        let a = i * SECTOR as usize;
                        let b = (a + SECTOR as usize).min(full.len());
                        if after[a..b] != full[a..b] && s.next_random().is_multiple_of(2) {
                            after[a..b].copy_from_slice(&full[a..b]);
                        }
                    }
                }
            }
            f.current = after.clone();
            f.durable = after;
            f.pending.clear();
            let entry_durable = s.durable_entries.contains(&path);
            if entry_durable {
                s.files.insert(path, f);
            }
        }
        // Undo removals that were not made durable (of files whose entry
        // was), newest first.
        let removes = std::mem::take(&mut s.pending_removes);
        for (path, mut f) in removes.into_iter().rev() {
            if s.durable_entries.contains(&path) && !s.files.contains_key(&path) {
                f.current = f.durable.clone();
                f.pending.clear();
                s.files.insert(path, f);
            }
        }
        // Undo renames that were not made durable, newest first.
        let renames = std::mem::take(&mut s.pending_renames);
        for (from, to, before) in renames.into_iter().rev() {
            if let Some(f) = s.files.remove(&to) {
                s.files.insert(from.clone(), f);
                s.durable_entries.insert(from);
            }
            if let Some(b) = before {
                s.files.insert(to, b);
            } else {
                s.durable_entries.remove(&to);
            }
        }
        s.locks.clear();
        s.fail_at.clear();
        s.fail_all.clear();
        s.kill_at.clear();
        s.dead = false;
    }

    /// While `hold` is true, every sync waits before it runs, as on a very
    /// slow disk; `false` lets them go.
    pub fn hold_syncs(&self, hold: bool) {
        let (lock, cvar) = &*self.gate;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = hold;
        cvar.notify_all();
    }

    fn wait_gate(&self) {
        let (lock, cvar) = &*self.gate;
        let mut held = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *held {
            held = cvar.wait(held).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The largest single write made so far, in bytes.
    pub fn largest_write(&self) -> u64 {
        self.lock_state().largest_write
    }

    /// Whether the layer was killed.
    pub fn is_dead(&self) -> bool {
        self.lock_state().dead
    }

    /// What reads of `path` see now, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.lock_state().files.get(path).map(|f| f.current.clone())
    }

    /// Replaces the content of `path` as if written and synced (for
    /// damaging a file in tests). Creates it, durably, when missing.
    pub fn set_contents(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = self.lock_state();
        s.durable_entries.insert(path.to_path_buf());
        let f = s.files.entry(path.to_path_buf()).or_default();
        f.current = bytes.clone();
        f.durable = bytes;
        f.pending.clear();
    }

    /// The files that exist now.
    pub fn list(&self) -> Vec<PathBuf> {
        self.lock_state().files.keys().cloned().collect()
    }
}

#[derive(Debug)]
struct SimHandle {
    fs: SimFs,
    path: PathBuf,
    /// The process that opened it (see `SimState::generation`).
    generation: u64,
}

impl SimHandle {
    fn with<T>(&self, op: Op, f: impl FnOnce(&mut SimState) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.fs.lock_state();
        if s.generation != self.generation {
            return Err(io::Error::other(
                "the simulated process that opened this file is dead",
            ));
        }
        s.call(op)?;
        f(&mut s)
    }
}

fn missing() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such simulated file")
}

impl StorageFile for SimHandle {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(Op::Read, |s| {
            let f = s.files.get(&self.path).ok_or_else(missing)?;
            let end = offset as usize + buf.len();
            if end > f.current.len() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.copy_from_slice(&f.current[offset as usize..end]);
            Ok(())
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(Op::Write, |s| {
            let f = s.files.get_mut(&self.path).ok_or_else(missing)?;
            let op = Pending::Write {
                offset,
                bytes: buf.to_vec(),
            };
            apply(&mut f.current, &op);
            f.pending.push(op);
            s.largest_write = s.largest_write.max(buf.len() as u64);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fs.wait_gate();
        let mut s = self.fs.lock_state();
        if s.generation != self.generation {
            return Err(io::Error::other(
                "the simulated process that opened this file is dead",
            ));
        }
        let result = s.call(Op::Sync);
        let partial = result.is_err() && !s.dead;
        if partial {
            s.failed_syncs.push(self.path.clone());
        }
        let r = if partial { s.next_random() } else { 0 };
        let f = s.files.get_mut(&self.path).ok_or_else(missing)?;
        let pending = std::mem::take(&mut f.pending);
        let keep = if result.is_ok() {
            pending.len()
        } else if partial {
            // Linux: some of the dirty pages may have reached the disk;
            // all of them are now marked clean and never retried.
            (r % (pending.len() as u64 + 1)) as usize
        } else {
            // A dead process's call never ran.
            f.pending = pending;
            return result;
        };
        for op in &pending[..keep] {
            apply(&mut f.durable, op);
        }
        result
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(Op::SetLen, |s| {
            let f = s.files.get_mut(&self.path).ok_or_else(missing)?;
            let op = Pending::SetLen(len);
            apply(&mut f.current, &op);
            f.pending.push(op);
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        let s = self.fs.lock_state();
        if s.dead || s.generation != self.generation {
            return Err(io::Error::other("the simulated process is dead"));
        }
        let f = s.files.get(&self.path).ok_or_else(missing)?;
        Ok(f.current.len() as u64)
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
    token: u64,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.fs.lock_state();
        if s.locks.get(&self.path) == Some(&self.token) {
            s.locks.remove(&self.path);
        }
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.live_state()?;
        if !s.files.contains_key(path) {
            if !create {
                return Err(missing());
            }
            s.call(Op::Create)?;
            s.files.insert(path.to_path_buf(), SimFile::default());
        } else if s.dead {
            return Err(io::Error::other("the simulated process is dead"));
        }
        let generation = s.generation;
        Ok(Arc::new(SimHandle {
            fs: self.clone(),
            path: path.to_path_buf(),
            generation,
        }))
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock_state().files.contains_key(path)
    }

    fn for_this_process(&self) -> Option<Arc<dyn FileSystem>> {
        let generation = self.lock_state().generation;
        Some(Arc::new(SimFs {
            bound: Some(generation),
            ..self.clone()
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.live_state()?;
        s.call(Op::SyncDir)?;
        let in_dir: Vec<PathBuf> = s
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        s.durable_entries.retain(|p| p.parent() != Some(dir));
        s.durable_entries.extend(in_dir);
        s.pending_renames
            .retain(|(_, to, _)| to.parent() != Some(dir));
        s.pending_removes.retain(|(p, _)| p.parent() != Some(dir));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.live_state()?;
        s.call(Op::Remove)?;
        let f = s.files.remove(path).ok_or_else(missing)?;
        s.pending_removes.push((path.to_path_buf(), f));
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let s = self.live_state()?;
        if s.dead {
            return Err(io::Error::other("the simulated process is dead"));
        }
        Ok(s.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.live_state()?;
        s.call(Op::Rename)?;
        let f = s.files.remove(from).ok_or_else(missing)?;
        let before = s.files.insert(to.to_path_buf(), f);
        s.pending_renames
            .push((from.to_path_buf(), to.to_path_buf(), before));
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut s = self.live_state()?;
        if s.dead {
            return Err(io::Error::other("the simulated process is dead"));
        }
        if s.locks.contains_key(path) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        s.next_token += 1;
        let token = s.next_token;
        s.locks.insert(path.to_path_buf(), token);
        Ok(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_path_buf(),
            token,
        }))
    }
}
