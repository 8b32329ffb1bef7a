//! `event-store check`, `event-store repair` and `event-store compact`:
//! verify, repair and erase in the embedded store's data directory while no
//! server has it open.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Exit codes of `check` and `repair`.
pub const STORAGE_EXIT_CODES: &str = "Exit codes:
  0  the store is intact (check), or was repaired or needed nothing (repair)
  1  the data directory could not be read (missing, locked by a running server, not a log)
  2  the store is damaged (check); run `event-store repair`";

/// Exit codes of `compact`.
pub const COMPACT_EXIT_CODES: &str = "Exit codes:
  0  every event removed by a deletion or truncation is erased from the files
  1  the data directory could not be opened (missing, locked by a running server, damaged),
     or erasing failed (the next open finishes it)";

/// Options of `check`, `repair` and `compact`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// The data directory of the embedded store.
    #[arg(long, env = "EVENT_STORE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

/// Verifies every frame of the log and the index built from them; prints a
/// report.
pub fn check(args: StorageArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir;
    let report = tokio::task::block_in_place(|| eventstore_embedded::check(&dir));
    match report {
        Ok(report) => {
            println!("{report}");
            Ok(if report.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Err(e) => {
            eprintln!("event-store check: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Repairs a damaged store: keeps every intact frame, moves the damaged
/// original aside and prints exactly what was lost.
pub fn repair(args: StorageArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir;
    match tokio::task::block_in_place(|| eventstore_embedded::repair(&dir)) {
        Ok(report) => {
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("event-store repair: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Opens the store (which finishes an erasure a crash interrupted and
/// queues the deletions and truncations not yet erased), waits until
/// nothing is left to erase, and closes it.
pub async fn compact(args: StorageArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir;
    let store = match tokio::task::block_in_place(|| eventstore_embedded::EmbeddedStore::open(&dir))
    {
        Ok(store) => store,
        Err(e) => {
            eprintln!("event-store compact: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let pending = store.pending_erasures();
    let started = std::time::Instant::now();
    let result = store.compact().await;
    store.close().await;
    match result {
        Ok(()) => {
            println!(
                "erased the events of {pending} deletion(s) and truncation(s) in {:.3} s; nothing is left to erase in {}",
                started.elapsed().as_secs_f64(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("event-store compact: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
