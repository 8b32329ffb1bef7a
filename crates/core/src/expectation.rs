//! The append expectation and the one function that decides it.

use std::fmt;

use crate::ids::Revision;

/// What an append expects of the stream's current revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expectation {
    /// The stream's revision must be exactly this (0: the stream must not exist).
    Exact(Revision),
    /// The stream must not exist (same as `Exact(0)`).
    NoStream,
    /// The stream must exist (revision >= 1).
    Exists,
    /// No expectation.
    Any,
}

/// An expectation that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected revision {expected}, but the stream is at revision {actual}")]
pub struct ExpectationFailed {
    /// What the append expected.
    pub expected: Expectation,
    /// The stream's revision at the time of the check.
    pub actual: Revision,
}

impl Expectation {
    /// Decides whether an append may go ahead on a stream at revision
    /// `current` (0 when the stream does not exist). Every backend calls this
    /// or encodes exactly this rule.
    ///
    /// ```
    /// use eventstore_core::{Expectation, Revision};
    /// assert!(Expectation::Exact(Revision::new(2)).check(Revision::new(2)).is_ok());
    /// assert!(Expectation::NoStream.check(Revision::new(1)).is_err());
    /// assert!(Expectation::Exists.check(Revision::ZERO).is_err());
    /// assert!(Expectation::Any.check(Revision::new(7)).is_ok());
    /// ```
    pub fn check(self, current: Revision) -> Result<(), ExpectationFailed> {
        let holds = match self {
            Expectation::Exact(expected) => expected == current,
            Expectation::NoStream => current == Revision::ZERO,
            Expectation::Exists => current > Revision::ZERO,
            Expectation::Any => true,
        };
        if holds {
            Ok(())
        } else {
            Err(ExpectationFailed {
                expected: self,
                actual: current,
            })
        }
    }

    /// The exact revision this expectation pins, if it pins one
    /// (`NoStream` pins 0).
    pub fn pinned(self) -> Option<Revision> {
        match self {
            Expectation::Exact(r) => Some(r),
            Expectation::NoStream => Some(Revision::ZERO),
            Expectation::Exists | Expectation::Any => None,
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Exact(r) => write!(f, "{r}"),
            Expectation::NoStream => f.write_str("no-stream"),
            Expectation::Exists => f.write_str("exists"),
            Expectation::Any => f.write_str("any"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn exact_holds_only_on_equality(e in 0u64..1000, c in 0u64..1000) {
            prop_assert_eq!(Expectation::Exact(Revision::new(e)).check(Revision::new(c)).is_ok(), e == c);
        }

        #[test]
        fn no_stream_is_exact_zero(c in 0u64..1000) {
            let r = Revision::new(c);
            prop_assert_eq!(Expectation::NoStream.check(r).is_ok(), Expectation::Exact(Revision::ZERO).check(r).is_ok());
            prop_assert_eq!(Expectation::Exists.check(r).is_ok(), c > 0);
            prop_assert!(Expectation::Any.check(r).is_ok());
        }
    }

    #[test]
    fn failure_reports_actual() {
        let err = Expectation::Exact(Revision::new(3))
            .check(Revision::new(5))
            .unwrap_err();
        assert_eq!(err.actual, Revision::new(5));
    }
}
