//! Inputs the fuzzers found to fail, kept as tests: each runs its target's
//! checks on the saved input (`crates/fuzz/regressions/`), named after what
//! it guards.

use eventstore_fuzz::engine::Target;
use eventstore_fuzz::targets;

fn replay(target: &Target, file: &str) {
    let path = format!("{}/regressions/{file}", env!("CARGO_MANIFEST_DIR"));
    let input = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    (target.check)(&input);
}

/// A checksummed frame claiming a first position 5.4 × 10^18 after
/// position 4: repair wrote that gap as one lost range, which the index
/// refuses (more than 2^40 positions), so the repaired log did not open.
/// Repair now calls the frame invalid and drops it.
#[test]
fn repair_drops_a_frame_whose_positions_leap_instead_of_recording_the_gap() {
    replay(
        &targets::embedded_log::TARGET,
        "embedded_log-repair-of-a-frame-leaping-positions",
    );
}

/// The first false alarm of the embedded target's model: a resealed frame
/// with a changed event id. The model reads the log's own intact frames,
/// so such an event is legitimate.
#[test]
fn an_intact_frame_with_an_event_id_never_written_by_the_store_is_served_as_written() {
    replay(
        &targets::embedded_log::TARGET,
        "embedded_log-resealed-frame-with-another-event-id",
    );
}

/// A checksummed frame whose header says its group commit starts at byte
/// 0: open refused the log (not where a commit starts), while check
/// called it intact. Check now applies open's rule and calls it invalid.
#[test]
fn check_refuses_a_frame_whose_commit_start_open_refuses() {
    replay(
        &targets::embedded_log::TARGET,
        "embedded_log-check-calls-intact-a-frame-whose-commit-start-open-refuses",
    );
}

/// Checksummed frames whose positions skip from 1 to 5 with no damage
/// between them: open refused the gap, check called the log intact (and
/// repair would have recorded it silently). Check now reports the gap as
/// damage, and repair records it as lost.
#[test]
fn check_reports_a_position_gap_that_open_refuses() {
    replay(
        &targets::embedded_log::TARGET,
        "embedded_log-check-calls-intact-a-position-gap-open-refuses",
    );
}
