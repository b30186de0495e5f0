//! Printing an error with its causes, each once.
//!
//! The crate's error types follow one rule: a cause is either part of the
//! message or returned by `source()`, never both. Whoever prints an error
//! prints the chain ([`chain`], or anyhow's `{:#}` at the binary's edge), so
//! every cause appears exactly once.

use std::error::Error;
use std::fmt;

/// `error: cause: cause's cause`, as one line.
pub struct Chain<'a>(&'a (dyn Error + 'static));

/// The error and every `source()` below it, joined by `: ` (for log fields
/// and messages built from a library error).
pub fn chain<'a>(e: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain(e)
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn each_cause_once() {
        let e = Outer("/x", std::io::Error::other("gone"));
        assert_eq!(super::chain(&e).to_string(), "cannot read /x: gone");
    }
}
