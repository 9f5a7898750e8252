//! One error type for the whole crate. Each operation keeps its own precise
//! error ([`ConfigError`], [`WalkError`], [`FindError`], [`ReportError`]),
//! and every one converts into [`Error`], so a caller that does several
//! things can use `?` throughout and match on the kind where it cares.

use crate::config::ConfigError;
use crate::pipeline::FindError;
use crate::report::read::ReportError;
use crate::walk::WalkError;

/// Any error this crate returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value that cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A walk that could not start.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A search for duplicates that could not start or go on.
    #[error(transparent)]
    Find(#[from] FindError),
    /// A saved report that could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Input or output that failed (writing a report).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_converts_and_keeps_its_message() {
        fn find() -> Result<(), Error> {
            let finder = crate::Finder::builder(std::sync::Arc::default()).build();
            finder.run(&["/nonexistent/dedupe-test-root"], |_| {})?;
            Ok(())
        }
        let e = find().unwrap_err();
        assert!(matches!(
            e,
            Error::Find(FindError::Walk(WalkError::Root { .. }))
        ));
        assert!(
            e.to_string().contains("/nonexistent/dedupe-test-root"),
            "{e}"
        );
        let e: Error = ConfigError::NoPaths.into();
        assert_eq!(e.to_string(), ConfigError::NoPaths.to_string());
    }
}
