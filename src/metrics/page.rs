//! The cached pod part of the `/metrics` page and its gzip form: one
//! [`PodPage`] per tracker generation, the [`Page`] a scrape answers with,
//! and the raw deflate streams the gzip member is built from.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

use super::pods::{sorted_pods, visit_sorted, PodSource, POD_FAMILIES};
use super::text::{write_any, write_pod_families};
use super::{Form, RenderError};

/// Compression level of the gzip page: level 6 puts 2,000 pods in ~115 KB.
const GZIP_LEVEL: u32 = 6;

/// The rendered pod families of one tracker generation, in the forms
/// scrapes asked for.
pub struct PodPage {
    pub(super) generation: u64,
    /// Prometheus text of the pod families, one chunk per family (sent as
    /// they are: the page is never copied into one buffer).
    pub(super) text: OnceLock<Vec<Bytes>>,
    /// The text as one final raw deflate stream, with its CRC-32 and length.
    deflate: OnceLock<Result<Deflated, flate2::CompressError>>,
}

#[derive(Clone)]
struct Deflated {
    data: Bytes,
    crc: crc32fast::Hasher,
    len: usize,
}

impl PodPage {
    pub(super) fn new(generation: u64) -> PodPage {
        PodPage {
            generation,
            text: OnceLock::new(),
            deflate: OnceLock::new(),
        }
    }

    /// Renders `form` from `src` unless this page already has it.
    pub(super) fn ensure(&self, form: Form, src: &PodSource<'_>) -> Result<(), RenderError> {
        let render = || -> Vec<Bytes> {
            write_pod_families(src)
                .into_iter()
                .map(Bytes::from)
                .collect()
        };
        match form {
            Form::Text => {
                self.text.get_or_init(render);
                Ok(())
            }
            Form::Gzip => self
                .deflate
                .get_or_init(|| match self.text.get() {
                    Some(chunks) => deflate_chunks(chunks),
                    // Written and compressed family by family: gzip scrapers never need the text.
                    None => deflate_pod_families(src),
                })
                .as_ref()
                .map(|_| ())
                .map_err(|e| RenderError::Compress(e.clone())),
        }
    }

    /// The tracker generation this page was rendered from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Length of the pod families' text.
    pub fn len(&self) -> usize {
        match (self.text.get(), self.deflate.get()) {
            (Some(chunks), _) => chunks.iter().map(Bytes::len).sum(),
            (None, Some(Ok(d))) => d.len,
            _ => 0,
        }
    }

    /// Whether there is no text (never once rendered: `pods_tracked` is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text of the pod families in one buffer (a copy: tests, tools).
    pub fn text(&self) -> Result<Vec<u8>, RenderError> {
        Ok(self
            .text
            .get()
            .ok_or(RenderError::NotRendered("text"))?
            .concat())
    }

    fn deflated(&self) -> Result<&Deflated, RenderError> {
        match self.deflate.get() {
            Some(Ok(d)) => Ok(d),
            Some(Err(e)) => Err(RenderError::Compress(e.clone())),
            None => Err(RenderError::NotRendered("gzip")),
        }
    }
}

fn deflate_chunks(chunks: &[Bytes]) -> Result<Deflated, flate2::CompressError> {
    let mut crc = crc32fast::Hasher::new();
    for c in chunks {
        crc.update(c);
    }
    let parts: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
    Ok(Deflated {
        data: Bytes::from(raw_deflate(&parts, FlushCompress::Finish)?),
        crc,
        len: chunks.iter().map(Bytes::len).sum(),
    })
}

/// One `/metrics` answer: the small families (fresh) then the pod families (cached).
pub struct Page {
    pub small: Vec<u8>,
    pub pods: Arc<PodPage>,
}

impl Page {
    /// Length of the text page.
    pub fn len(&self) -> usize {
        self.small.len() + self.pods.len()
    }

    /// Whether the page is empty (never: the registry has `build_info`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text page in one buffer (a copy: tests, tools).
    pub fn text(&self) -> Result<Vec<u8>, RenderError> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.small);
        v.extend_from_slice(&self.pods.text()?);
        Ok(v)
    }

    /// The text page as chunks to send in order (the pod part is not copied).
    pub(crate) fn text_chunks(self) -> Result<Vec<Bytes>, RenderError> {
        let pods = self
            .pods
            .text
            .get()
            .ok_or(RenderError::NotRendered("text"))?;
        let mut v = Vec::with_capacity(pods.len() + 1);
        v.push(Bytes::from(self.small));
        v.extend(pods.iter().cloned());
        Ok(v)
    }

    /// The page as one gzip member (RFC 1952), as chunks to send in order
    /// (from [`Metrics::gzip_page`]).
    ///
    /// A deflate stream is a sequence of blocks: the small part is
    /// compressed now and ended with a sync flush (byte-aligned, not final),
    /// then the cached pod stream follows with the final block; it refers
    /// to nothing before it. The trailer's CRC-32 is combined from the two
    /// parts' CRCs. One member, not two concatenated ones, because some
    /// clients decode only the first member.
    pub fn gzip(&self) -> Result<Vec<Bytes>, RenderError> {
        let pods = self.pods.deflated()?;
        let mut head = Vec::with_capacity(self.small.len() / 4 + 64);
        // ID1 ID2, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255 (unknown).
        head.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        head.extend_from_slice(&raw_deflate(&[&self.small], FlushCompress::Sync)?);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.small);
        crc.combine(&pods.crc);
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE: the length modulo 2^32 (RFC 1952), hence the truncation.
        trailer.extend_from_slice(&((self.small.len() + pods.len) as u32).to_le_bytes());
        Ok(vec![
            Bytes::from(head),
            pods.data.clone(),
            Bytes::from(trailer),
        ])
    }
}

/// `parts` in order as raw deflate, ended by `flush` (Sync: byte-aligned
/// and open; Finish: the final block).
fn raw_deflate(parts: &[&[u8]], flush: FlushCompress) -> Result<Vec<u8>, flate2::CompressError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut d = Deflater::new(total / 16);
    for part in parts {
        d.feed(part)?;
    }
    d.finish(flush)
}

/// A raw deflate stream fed piece by piece.
struct Deflater {
    c: Compress,
    out: Vec<u8>,
}

impl Deflater {
    pub(super) fn new(capacity: usize) -> Deflater {
        Deflater {
            c: Compress::new(Compression::new(GZIP_LEVEL), false),
            out: Vec::with_capacity(capacity + 1024),
        }
    }

    fn grow(&mut self) {
        if self.out.len() == self.out.capacity() {
            self.out.reserve(self.out.capacity().max(4096));
        }
    }

    fn feed(&mut self, part: &[u8]) -> Result<(), flate2::CompressError> {
        let start = self.c.total_in();
        loop {
            let done = usize::try_from(self.c.total_in() - start).unwrap_or(part.len());
            if done >= part.len() {
                return Ok(());
            }
            self.grow();
            self.c
                .compress_vec(&part[done..], &mut self.out, FlushCompress::None)?;
        }
    }

    fn finish(mut self, flush: FlushCompress) -> Result<Vec<u8>, flate2::CompressError> {
        loop {
            self.grow();
            let status = self.c.compress_vec(&[], &mut self.out, flush)?;
            match (status, flush) {
                (Status::StreamEnd, _) => return Ok(self.out),
                // A sync flush is complete once the compressor left output space unused.
                (_, FlushCompress::Sync) if self.out.len() < self.out.capacity() => {
                    return Ok(self.out)
                }
                _ => {}
            }
        }
    }
}

/// The pod families as text one family at a time, each buffer compressed
/// and dropped before the next is written: a gzip page costs the largest
/// family (~2 MB at 2,000 pods) in memory, not the whole ~5 MB text.
fn deflate_pod_families(src: &PodSource<'_>) -> Result<Deflated, flate2::CompressError> {
    let pods = sorted_pods(src.t);
    let mut d = Deflater::new(pods.len() * 80);
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0;
    let mut buf = Vec::new();
    for i in 0..POD_FAMILIES.len() {
        buf.clear();
        visit_sorted(src, &pods, &mut |row, pairs, sample| {
            if row == i {
                write_any(&mut buf, row, pairs, sample);
            }
        });
        crc.update(&buf);
        len += buf.len();
        d.feed(&buf)?;
    }
    Ok(Deflated {
        data: Bytes::from(d.finish(FlushCompress::Finish)?),
        crc,
        len,
    })
}
