//! A small mutation fuzzer that runs on stable Rust.
//!
//! It is not coverage-guided (that needs libFuzzer or AFL instrumentation,
//! which this project's one stable toolchain does not offer): it starts
//! from each target's valid seed inputs and applies random stacks of byte
//! mutations (flips, interesting values, inserts, deletions, copies,
//! splices between seeds, dictionary tokens), plus a target-specific
//! structure-aware fix-up (for the embedded log: recomputing checksums so
//! that mutated frames reach the decoder). Every input is run under
//! `catch_unwind`; a panic is a crash.
//!
//! The budget comes from the environment:
//!
//! - `FUZZ_ITERS=N`: inputs per target (default: the target's own bound,
//!   chosen so the whole bounded run takes seconds in a debug build);
//! - `FUZZ_SECONDS=S`: run each target for `S` seconds instead;
//! - `FUZZ_SEED=N`: the random seed (default: from the clock; always
//!   printed, so a run can be repeated);
//! - `FUZZ_REPLAY=FILE`: run the target on that one input only;
//! - `FUZZ_CRASH_DIR=DIR`: where crashing inputs are written (default
//!   `target/fuzz-crashes`); `TARGET/last-input` there is the input that
//!   was running when the process died, if it aborted.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One fuzz target.
pub struct Target {
    /// Its name (also the folder of its crash files).
    pub name: &'static str,
    /// Valid inputs to start mutating from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens worth inserting whole (keywords, separators, odd numbers).
    pub dictionary: &'static [&'static [u8]],
    /// A fix-up applied after some mutations (for checksummed formats).
    pub fixup: Option<fn(&mut [u8])>,
    /// Runs one input; panics when the code under test misbehaves.
    pub check: fn(&[u8]),
    /// Inputs of a bounded run.
    pub default_iters: u64,
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Inputs run.
    pub inputs: u64,
    /// The seed of the random choices.
    pub seed: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {text:?}")),
    )
}

fn crash_dir(target: &str) -> PathBuf {
    let base = std::env::var_os("FUZZ_CRASH_DIR").map_or_else(
        || {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            manifest.join("../../target/fuzz-crashes")
        },
        PathBuf::from,
    );
    base.join(target)
}

/// Runs `target` within the budget the environment gives (see the module
/// documentation). Panics, naming the seed and the crash file, when an
/// input makes the target panic.
pub fn fuzz(target: &Target) -> Summary {
    if let Some(path) = std::env::var_os("FUZZ_REPLAY") {
        let input = std::fs::read(&path).expect("reading FUZZ_REPLAY");
        (target.check)(&input);
        return Summary { inputs: 1, seed: 0 };
    }
    let seed = env_u64("FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let deadline = env_u64("FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let iters = match deadline {
        Some(_) => u64::MAX,
        None => env_u64("FUZZ_ITERS").unwrap_or(target.default_iters),
    };
    eprintln!(
        "fuzz target {}: seed {seed} (FUZZ_SEED={seed} repeats the run)",
        target.name
    );
    // The input being run, for a crash that aborts the process (an
    // allocation failure, a stack overflow) instead of panicking.
    let dir = crash_dir(target.name);
    let _ = std::fs::create_dir_all(&dir);
    let last = dir.join("last-input");
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty(), "{}: no seeds", target.name);
    // The seeds themselves first: they must pass.
    for s in &seeds {
        run_one(target, s, seed, 0);
    }
    let mut m = Mutator {
        rng: fastrand::Rng::with_seed(seed),
        seeds: &seeds,
        dictionary: target.dictionary,
    };
    let mut inputs = seeds.len() as u64;
    let mut i = 0u64;
    while i < iters {
        if deadline.is_some_and(|d| i.is_multiple_of(64) && Instant::now() >= d) {
            break;
        }
        i += 1;
        let mut input = m.next_input();
        if let Some(fix) = target.fixup
            && m.rng.u8(..) < 192
        {
            fix(&mut input);
        }
        let _ = std::fs::write(&last, &input);
        run_one(target, &input, seed, i);
        inputs += 1;
    }
    let _ = std::fs::remove_file(&last);
    eprintln!("fuzz target {}: {inputs} inputs, no failure", target.name);
    Summary { inputs, seed }
}

fn run_one(target: &Target, input: &[u8], seed: u64, iteration: u64) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.check)(input))) {
        let dir = crash_dir(target.name);
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("crash-{seed}-{iteration}"));
        let saved = std::fs::write(&file, input).is_ok();
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        panic!(
            "fuzz target {} failed on input {iteration} of seed {seed}: {what}\n\
             input ({} bytes){}: {}\n\
             replay: FUZZ_REPLAY={} cargo test -p eventstore-fuzz --test fuzz {}",
            target.name,
            input.len(),
            if saved { " saved" } else { " (not saved)" },
            preview(input),
            file.display(),
            target.name,
        );
    }
}

fn preview(input: &[u8]) -> String {
    let shown = &input[..input.len().min(256)];
    let mut text = String::from_utf8_lossy(shown).escape_debug().to_string();
    if input.len() > shown.len() {
        text.push('…');
    }
    text
}

/// Byte values that often sit on a boundary.
const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, 0xfe, b'0', b'9', b'"', b'\\', b'%'];

struct Mutator<'a> {
    rng: fastrand::Rng,
    seeds: &'a [Vec<u8>],
    dictionary: &'static [&'static [u8]],
}

impl Mutator<'_> {
    fn next_input(&mut self) -> Vec<u8> {
        // Now and then pure noise, otherwise a mutated seed.
        if self.rng.u8(..) < 8 {
            let len = self.rng.usize(0..64);
            return (0..len).map(|_| self.rng.u8(..)).collect();
        }
        let mut input = self.seeds[self.rng.usize(..self.seeds.len())].clone();
        let stack = 1 << self.rng.u32(0..4);
        for _ in 0..stack {
            self.mutate(&mut input);
        }
        input
    }

    fn pos(&mut self, input: &[u8]) -> usize {
        self.rng.usize(..=input.len())
    }

    fn mutate(&mut self, input: &mut Vec<u8>) {
        match self.rng.u8(0..10) {
            0 if !input.is_empty() => {
                let i = self.rng.usize(..input.len());
                input[i] ^= 1 << self.rng.u8(0..8);
            }
            1 if !input.is_empty() => {
                let i = self.rng.usize(..input.len());
                input[i] = INTERESTING[self.rng.usize(..INTERESTING.len())];
            }
            2 if !input.is_empty() => {
                let i = self.rng.usize(..input.len());
                input[i] = self.rng.u8(..);
            }
            3 => {
                let at = self.pos(input);
                let n = self.rng.usize(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.u8(..)).collect();
                input.splice(at..at, bytes);
            }
            4 if !input.is_empty() => {
                let at = self.rng.usize(..input.len());
                let n = self.rng.usize(1..=(input.len() - at).min(64));
                input.drain(at..at + n);
            }
            5 if !input.is_empty() => {
                // Copy a stretch of the input elsewhere (repeats frames,
                // fields, path segments).
                let from = self.rng.usize(..input.len());
                let n = self.rng.usize(1..=(input.len() - from).min(256));
                let chunk = input[from..from + n].to_vec();
                let at = self.pos(input);
                input.splice(at..at, chunk);
            }
            6 => {
                // Splice: a stretch of another seed.
                let other = &self.seeds[self.rng.usize(..self.seeds.len())];
                if !other.is_empty() {
                    let from = self.rng.usize(..other.len());
                    let n = self.rng.usize(1..=(other.len() - from).min(512));
                    let chunk = other[from..from + n].to_vec();
                    let at = self.pos(input);
                    if self.rng.bool() {
                        input.splice(at..at, chunk);
                    } else {
                        let end = (at + chunk.len()).min(input.len());
                        input.splice(at..end, chunk);
                    }
                }
            }
            7 if !self.dictionary.is_empty() => {
                let token = self.dictionary[self.rng.usize(..self.dictionary.len())];
                let at = self.pos(input);
                if self.rng.bool() {
                    input.splice(at..at, token.iter().copied());
                } else {
                    let end = (at + token.len()).min(input.len());
                    input.splice(at..end, token.iter().copied());
                }
            }
            8 => {
                let at = self.pos(input);
                input.truncate(at);
            }
            _ if input.len() >= 4 => {
                // A 32-bit little- or big-endian field set to an edge value.
                let at = self.rng.usize(..=input.len() - 4);
                let v: u32 = match self.rng.u8(0..6) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => 0x8000_0000,
                    3 => self.rng.u32(0..300),
                    4 => u32::from_le_bytes(input[at..at + 4].try_into().expect("4"))
                        .wrapping_add(self.rng.u32(0..8))
                        .wrapping_sub(4),
                    _ => self.rng.u32(..),
                };
                let bytes = if self.rng.bool() {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                input[at..at + 4].copy_from_slice(&bytes);
            }
            _ => {}
        }
    }
}
