//! The pure decision whether an append is new, a retry, or a conflict.
//!
//! Every backend gathers the same facts (the stream's current revision and
//! where, if anywhere, the request's event ids already sit in the stream) and
//! calls [`decide`]; no backend re-implements the rule.

use crate::expectation::Expectation;
use crate::ids::{EventId, Revision};
use crate::store::StoreError;

/// What to do with an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write the events at `current + 1 ..= current + n`.
    Write,
    /// The very same events already sit at `first ..= last`: answer with
    /// them and write nothing.
    AlreadyAppended {
        /// Revision of the request's first event.
        first: Revision,
        /// Revision of the request's last event.
        last: Revision,
    },
}

/// Decides an append.
///
/// - `current`: the stream's revision (0 if it does not exist).
/// - `request_ids`: the request's event ids in order (no duplicates; the
///   request constructor guarantees it).
/// - `found`: for each request id, its revision in the stream if it is
///   already there (same length and order as `request_ids`).
///
/// A retry is recognised when every id is present at consecutive revisions
/// right after the pinned expectation (integer or no-stream), or, for
/// `Any`/`Exists`, at consecutive revisions wherever they sit — however
/// many appends came after it, a retry is never stored twice. Any other
/// presence of a request id is a duplicate. With no id present, the
/// expectation decides.
pub fn decide(
    expectation: Expectation,
    current: Revision,
    request_ids: &[EventId],
    found: &[Option<Revision>],
) -> Result<Decision, StoreError> {
    debug_assert_eq!(request_ids.len(), found.len());
    let n = request_ids.len() as u64;
    let Some(first_present) = found.iter().position(Option::is_some) else {
        expectation.check(current)?;
        return Ok(Decision::Write);
    };
    let base = match expectation.pinned() {
        Some(base) => Some(base),
        None => found[0].map(|first| Revision::new(first.get() - 1)),
    };
    if let Some(base) = base {
        let consecutive = found
            .iter()
            .enumerate()
            .all(|(i, r)| *r == Some(Revision::new(base.get() + i as u64 + 1)));
        if consecutive {
            return Ok(Decision::AlreadyAppended {
                first: Revision::new(base.get() + 1),
                last: Revision::new(base.get() + n),
            });
        }
    }
    Err(StoreError::DuplicateEvent {
        event_id: request_ids[first_present],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<EventId> {
        (0..n).map(|_| EventId::generate()).collect()
    }

    fn r(n: u64) -> Revision {
        Revision::new(n)
    }

    #[test]
    fn fresh_events_follow_the_expectation() {
        let ids = ids(2);
        assert_eq!(
            decide(Expectation::Exact(r(3)), r(3), &ids, &[None, None]).unwrap(),
            Decision::Write
        );
        assert!(matches!(
            decide(Expectation::Exact(r(2)), r(3), &ids, &[None, None]),
            Err(StoreError::WrongExpectedRevision(_))
        ));
    }

    #[test]
    fn exact_retry_is_recognised_even_after_later_appends() {
        let ids = ids(2);
        let d = decide(
            Expectation::Exact(r(3)),
            r(9),
            &ids,
            &[Some(r(4)), Some(r(5))],
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::AlreadyAppended {
                first: r(4),
                last: r(5)
            }
        );
        let d = decide(Expectation::NoStream, r(9), &ids, &[Some(r(1)), Some(r(2))]).unwrap();
        assert_eq!(
            d,
            Decision::AlreadyAppended {
                first: r(1),
                last: r(2)
            }
        );
    }

    #[test]
    fn any_retry_matches_wherever_its_events_sit() {
        let ids = ids(2);
        for current in [5, 6, 100] {
            for e in [Expectation::Any, Expectation::Exists] {
                let d = decide(e, r(current), &ids, &[Some(r(4)), Some(r(5))]).unwrap();
                assert_eq!(
                    d,
                    Decision::AlreadyAppended {
                        first: r(4),
                        last: r(5)
                    },
                    "a retry after {current} events is still a retry"
                );
            }
        }
        assert!(matches!(
            decide(Expectation::Any, r(6), &ids, &[Some(r(4)), Some(r(6))]),
            Err(StoreError::DuplicateEvent { .. })
        ));
    }

    #[test]
    fn partial_or_shifted_presence_is_a_duplicate() {
        let ids = ids(2);
        assert!(matches!(
            decide(Expectation::Exact(r(3)), r(4), &ids, &[Some(r(4)), None]),
            Err(StoreError::DuplicateEvent { .. })
        ));
        assert!(matches!(
            decide(
                Expectation::Exact(r(2)),
                r(5),
                &ids,
                &[Some(r(4)), Some(r(5))]
            ),
            Err(StoreError::DuplicateEvent { .. })
        ));
        assert!(matches!(
            decide(
                Expectation::Exact(r(3)),
                r(5),
                &ids,
                &[Some(r(5)), Some(r(4))]
            ),
            Err(StoreError::DuplicateEvent { .. })
        ));
    }
}
