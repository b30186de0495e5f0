//! What the tailer hands over: lines and blocks of lines per file, and the
//! reasons a path could not be read.

use std::path::Path;

use super::lines;
use super::{FileId, FileKey};

/// Why a file or directory could not be read; the `reason` label of `read_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadErrorReason {
    PermissionDenied,
    NotAFile,
    Io,
    Glob,
    Watch,
}

impl ReadErrorReason {
    /// The fixed label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadErrorReason::PermissionDenied => "permission_denied",
            ReadErrorReason::NotAFile => "not_a_file",
            ReadErrorReason::Io => "io",
            ReadErrorReason::Glob => "glob",
            ReadErrorReason::Watch => "watch",
        }
    }

    /// Every reason (for pre-registering series).
    pub const ALL: [ReadErrorReason; 5] = [
        ReadErrorReason::PermissionDenied,
        ReadErrorReason::NotAFile,
        ReadErrorReason::Io,
        ReadErrorReason::Glob,
        ReadErrorReason::Watch,
    ];

    pub(super) fn of(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => ReadErrorReason::PermissionDenied,
            _ if e.to_string() == "not a regular file" => ReadErrorReason::NotAFile,
            _ => ReadErrorReason::Io,
        }
    }
}

/// Where the tailer delivers what it reads.
pub trait TailSink {
    /// A file is followed from now on. `resumed`: it continues a checkpointed position.
    fn opened(&mut self, key: FileKey, id: FileId, path: &Path, resumed: bool);
    /// One physical line (without `\n`); `truncated` when it exceeded the cap.
    fn line(&mut self, key: FileKey, line: &[u8], truncated: bool);
    /// A run of complete physical lines as read, each ending in `\n`; a
    /// line longer than `cap` is to be cut to its head (see
    /// [`lines::for_each_capped`]). Returns the number of lines. The
    /// default hands each line to [`TailSink::line`]; the pipeline scans the
    /// whole block in one pass instead.
    fn lines(&mut self, key: FileKey, block: &[u8], cap: usize) -> u64 {
        lines::for_each_capped(block, cap, &mut |_, line, truncated| {
            self.line(key, line, truncated)
        })
    }
    /// The file was truncated in place: per-file decoding state must reset.
    fn truncated(&mut self, key: FileKey);
    /// The file is finished for good (rotated away or deleted, and drained).
    fn closed(&mut self, key: FileKey);
    /// Something could not be read.
    fn read_error(&mut self, path: &Path, reason: ReadErrorReason);
}

/// Hands what a file's splitter finds to the sink, counting lines.
pub(super) struct Deliver<'a, S: TailSink + ?Sized> {
    pub sink: &'a mut S,
    pub key: FileKey,
    pub lines: u64,
}

impl<S: TailSink + ?Sized> lines::LineHandler for Deliver<'_, S> {
    fn line(&mut self, line: &[u8], truncated: bool) {
        self.lines += 1;
        self.sink.line(self.key, line, truncated);
    }

    fn block(&mut self, _at: u64, block: &[u8], cap: usize) {
        self.lines += self.sink.lines(self.key, block, cap);
    }
}
