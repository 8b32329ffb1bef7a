//! `event-store check` and `event-store repair`: verify and repair the
//! embedded store's data directory while no server has it open.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Exit codes of `check` and `repair`.
pub const STORAGE_EXIT_CODES: &str = "Exit codes:
  0  the store is intact (check), or was repaired or needed nothing (repair)
  1  the data directory could not be read (missing, locked by a running server, not a log)
  2  the store is damaged (check); run `event-store repair`";

/// Options of `check` and `repair`.
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
