//! Uvicorn access lines (`<client> - "<METHOD> <path> HTTP/<v>" <status>`),
//! parsed without a regex: they are the most common literal hits of a busy
//! proxy.

/// A Uvicorn access-line condition, checked without a regex because access
/// lines are the most common lines of a busy proxy.
#[derive(Debug)]
pub(super) struct AccessFilter {
    /// First digit of the status class (`b'2'` for "2xx").
    pub(super) status_class: u8,
    /// Path prefixes that do not count (probes, metrics).
    pub(super) skip_paths: Vec<Vec<u8>>,
}

impl AccessFilter {
    pub(super) fn accepts(&self, line: &[u8]) -> bool {
        match parse_access_line(line) {
            Some(access) => {
                access.status[0] == self.status_class
                    && !self
                        .skip_paths
                        .iter()
                        .any(|skip| access.path.starts_with(skip))
            }
            None => false,
        }
    }
}

/// The parts of a Uvicorn access line the rules look at.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AccessLine<'a> {
    pub(super) path: &'a [u8],
    pub(super) status: [u8; 3],
}

/// Parses `<client> - "<METHOD> <path> HTTP/<v>" <status>[ <reason>]`
/// anywhere in the line (text mode has an `INFO:     ` prefix, JSON mode not).
pub(super) fn parse_access_line(line: &[u8]) -> Option<AccessLine<'_>> {
    let open = memchr::memmem::find(line, b" - \"")?;
    let rest = &line[open + 4..];
    let method_len = rest.iter().position(|&b| !b.is_ascii_uppercase())?;
    if method_len == 0 {
        return None;
    }
    let rest = rest[method_len..].strip_prefix(b" ")?;
    let path_len = memchr::memchr(b' ', rest)?;
    let (path, rest) = rest.split_at(path_len);
    let rest = rest.strip_prefix(b" HTTP/")?;
    let close = memchr::memchr(b'"', rest)?;
    let rest = rest[close + 1..].strip_prefix(b" ")?;
    let (status, after) = rest.split_at_checked(3)?;
    if !status.iter().all(u8::is_ascii_digit) || !(after.is_empty() || after[0] == b' ') {
        return None;
    }
    Some(AccessLine {
        path,
        status: [status[0], status[1], status[2]],
    })
}
