//! What `report` reads: files, directories and stdin (`-`), and the
//! `kubectl logs --prefix` lines that name their own pod.
//!
//! Lines (and blocks of lines) are delivered with the byte offset where
//! they start in their source (after decompression for `.gz`), so the loss
//! ledger can point at a line without ever copying its text.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use memchr::memchr;

use super::ReportError;
use crate::tail::lines::{LineHandler, LineSplitter};

/// One input as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `-`: standard input.
    Stdin,
    /// A file or a directory to search.
    Path(PathBuf),
}

impl Input {
    /// `-` is stdin; anything else a path.
    pub fn parse(arg: &Path) -> Input {
        if arg.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(arg.to_path_buf())
        }
    }
}

/// A byte stream the report reads once (or twice, for a window relative to
/// the last record).
#[derive(Debug)]
pub enum Source {
    Path(PathBuf),
    /// Standard input, read as it comes.
    Stdin,
    /// Standard input saved to an unlinked temporary file (read twice).
    Spooled(File),
}

impl Source {
    /// The name the ledger and errors use: the path, or `-` for stdin.
    pub fn name(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Stdin | Source::Spooled(_) => "-".into(),
        }
    }

    /// A reader over the (decompressed) bytes, from the start.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Source::Path(p) => {
                let file = File::open(p)?;
                if !file.metadata()?.is_file() {
                    return Err(std::io::Error::other("not a regular file"));
                }
                if p.extension().is_some_and(|e| e == "gz") {
                    Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                        file,
                    )))
                } else {
                    Box::new(file)
                }
            }
            Source::Stdin => Box::new(std::io::stdin().lock()),
            Source::Spooled(f) => {
                let mut f = f.try_clone()?;
                f.seek(SeekFrom::Start(0))?;
                Box::new(f)
            }
        })
    }

    /// Saves stdin to an unlinked temporary file (mode 0600) so it can be
    /// read twice; anything else is returned as is.
    pub(crate) fn spool(self) -> Result<Source, ReportError> {
        if !matches!(self, Source::Stdin) {
            return Ok(self);
        }
        let fail = |source| ReportError::Unreadable {
            path: PathBuf::from("-"),
            source,
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "litellm-sentinel-stdin-{}-{nanos}",
            std::process::id()
        ));
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(fail)?
        };
        // Unlinked at once: the bytes vanish with the process, whatever happens.
        std::fs::remove_file(&path).map_err(fail)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(fail)?;
        Ok(Source::Spooled(file))
    }
}

fn is_log_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".log") || name.contains(".log.") || name.ends_with(".gz")
}

/// Collects the log files under the inputs (a file given by name is always taken).
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ReportError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| ReportError::Unreadable {
            path: input.clone(),
            source,
        })?;
        if meta.is_file() {
            out.push(input.clone());
            continue;
        }
        let before = out.len();
        let mut stack = vec![input.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| ReportError::Unreadable {
                path: dir.clone(),
                source,
            })?;
            for e in entries {
                let e = e.map_err(|source| ReportError::Unreadable {
                    path: dir.clone(),
                    source,
                })?;
                let p = e.path();
                let ft = e.file_type().map_err(|source| ReportError::Unreadable {
                    path: p.clone(),
                    source,
                })?;
                if ft.is_dir() {
                    stack.push(p);
                } else if is_log_file(&p)
                    && std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false)
                {
                    out.push(p);
                }
            }
        }
        if out.len() == before {
            return Err(ReportError::Empty(input.display().to_string()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Feeds all of `r` through a [`LineSplitter`] capped like the tailer's (so
/// `report` and live tailing see the same lines) into `h`: blocks of whole
/// lines as read, and the lines that span reads; each with the byte offset
/// where it starts in the source.
pub(crate) fn read_lines(
    r: &mut dyn Read,
    max_line_bytes: usize,
    h: &mut dyn LineHandler,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut splitter = LineSplitter::new(max_line_bytes);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        splitter.feed(&buf[..n], h);
    }
    splitter.finish(h);
    Ok(())
}

/// Calls `f(offset, line, truncated)` for every physical line of `r`, with
/// the byte offset where the line starts (see [`read_lines`]).
pub(crate) fn for_each_line(
    r: &mut dyn Read,
    max_line_bytes: usize,
    f: &mut dyn FnMut(u64, &[u8], bool),
) -> std::io::Result<()> {
    struct EachLine<'a> {
        f: &'a mut dyn FnMut(u64, &[u8], bool),
        at: u64,
    }
    impl LineHandler for EachLine<'_> {
        fn line(&mut self, line: &[u8], truncated: bool) {
            (self.f)(self.at, line, truncated);
        }
        fn line_start(&mut self, at: u64) {
            self.at = at;
        }
    }
    read_lines(r, max_line_bytes, &mut EachLine { f, at: 0 })
}

/// Splits a `kubectl logs --prefix` prefix off a line: `[pod/<name>/<container>] `.
///
/// The names are checked against Kubernetes' rules (a DNS subdomain for the
/// pod, a DNS label for the container), so a pod name taken from the input
/// can never be arbitrary log text.
pub(crate) fn split_prefix(line: &[u8]) -> Option<(&str, &str, &[u8])> {
    let rest = line.strip_prefix(b"[pod/")?;
    let close = memchr(b']', &rest[..rest.len().min(253 + 64 + 2)])?;
    let (inner, after) = (&rest[..close], &rest[close + 1..]);
    let text = match after {
        [] => after,
        [b' ', text @ ..] => text,
        _ => return None,
    };
    let slash = memchr(b'/', inner)?;
    let (name, container) = (&inner[..slash], &inner[slash + 1..]);
    let name_ok = (1..=253).contains(&name.len())
        && name
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.'));
    let container_ok = (1..=63).contains(&container.len())
        && container
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !(name_ok && container_ok) {
        return None;
    }
    // Checked ASCII above.
    let name = std::str::from_utf8(name).ok()?;
    let container = std::str::from_utf8(container).ok()?;
    Some((name, container, text))
}

/// Whether a file's first line carries a `kubectl logs --prefix` prefix.
pub(crate) fn is_prefixed(path: &Path) -> bool {
    let src = Source::Path(path.to_path_buf());
    let Ok(mut r) = src.open() else {
        return false;
    };
    let mut head = Vec::new();
    if r.by_ref().take(1024).read_to_end(&mut head).is_err() {
        return false;
    }
    split_prefix(head.split(|b| *b == b'\n').next().unwrap_or(&[])).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8], cap: usize) -> Vec<(u64, Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut r: &[u8] = data;
        for_each_line(&mut r, cap, &mut |o, l, t| out.push((o, l.to_vec(), t))).unwrap();
        out
    }

    #[test]
    fn offsets_point_at_line_starts_even_after_a_capped_line() {
        let mut data = b"one\n".to_vec();
        data.extend(vec![b'x'; 50]);
        data.extend(b"\nlast");
        let got = lines(&data, 10);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[0].1.as_slice()), (0, &b"one"[..]));
        assert_eq!((got[1].0, got[1].1.len(), got[1].2), (4, 10, true));
        assert_eq!((got[2].0, got[2].1.as_slice()), (55, &b"last"[..]));
    }

    #[test]
    fn kubectl_prefixes_name_pod_and_container() {
        assert_eq!(
            split_prefix(b"[pod/litellm-7f9c-x2k4p/litellm] 2026-11-24T10:00:00Z hi"),
            Some((
                "litellm-7f9c-x2k4p",
                "litellm",
                &b"2026-11-24T10:00:00Z hi"[..]
            ))
        );
        assert_eq!(split_prefix(b"[pod/a/b]"), Some(("a", "b", &b""[..])));
        for bad in [
            &b"[pod/Secret Token/x] y"[..],
            b"[pod/a] y",
            b"[pod/a/b]y",
            b"[deployment/a/b] y",
            b"pod/a/b y",
            b"[pod/a/b_c] y",
        ] {
            assert_eq!(split_prefix(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
