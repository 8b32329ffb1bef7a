//! Exit codes and how failures map to them.

use std::process::ExitCode;

use eventstore_client::Error;

/// The exit codes, as shown in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other error (server error, I/O error, ...)
  2  usage: bad arguments or input, or input the store rejected as invalid (400)
  3  conflict: wrong expected revision or duplicate event id (409)
  4  not found (404)
  5  transport: the store cannot be reached, or timed out
  6  unauthorized: missing or wrong API key or AWS credentials, or a key that may not do this (401/403)
  7  gone: the stream was deleted (410)";

/// A mistake in the command line or its input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A conflict found by the command itself (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConflictError(pub String);

/// Shorthand for a conflict.
pub fn conflict(message: impl Into<String>) -> anyhow::Error {
    ConflictError(message.into()).into()
}

/// Shorthand for a usage error.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        return 2;
    }
    if err.downcast_ref::<ConflictError>().is_some() {
        return 3;
    }
    match err.downcast_ref::<Error>() {
        Some(Error::InvalidInput { .. }) => 2,
        Some(Error::WrongExpectedRevision { .. } | Error::DuplicateEvent { .. }) => 3,
        Some(Error::NotFound { .. }) => 4,
        Some(Error::Transport(_)) => 5,
        Some(Error::Unauthorized { .. } | Error::Forbidden { .. } | Error::Signing(_)) => 6,
        Some(Error::StreamDeleted { .. }) => 7,
        _ => 1,
    }
}

/// Prints the error (if any) on stderr and picks the exit code.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = code_of(&err);
            eprintln!("error: {err:#}");
            if let Some(id) = err.downcast_ref::<Error>().and_then(Error::request_id) {
                eprintln!("(request id {id})");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_documented_codes() {
        let nf = Error::NotFound {
            message: "m".into(),
            request_id: None,
        };
        assert_eq!(code_of(&anyhow::Error::from(nf).context("reading")), 4);
        assert_eq!(code_of(&usage("bad")), 2);
        let conflict = Error::WrongExpectedRevision {
            expected: None,
            actual: None,
            message: "m".into(),
            request_id: None,
        };
        assert_eq!(code_of(&conflict.into()), 3);
        let unauthorized = Error::Unauthorized {
            message: "m".into(),
            request_id: None,
        };
        assert_eq!(code_of(&unauthorized.into()), 6);
        assert_eq!(code_of(&anyhow::anyhow!("disk full")), 1);
        for code in 0..=7 {
            assert!(EXIT_CODES.contains(&format!("  {code}  ")));
        }
    }
}
