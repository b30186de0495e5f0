//! The Prometheus text writer of the pod families: byte for byte what
//! `TextEncoder` makes of them, without building protobuf objects.

use std::io::Write as _;

use prometheus::proto::MetricType;

use super::pods::{visit_pods, Labels, PodSource, Row, Sample, POD_FAMILIES};
use super::PREFIX;
use crate::timeline::GAP_BUCKETS;

/// Writes the pod families as Prometheus text, one buffer per family that
/// has samples, byte for byte what `TextEncoder` makes of
/// [`PodCollector`]'s families (a test holds it to that) without building
/// ~40,000 protobuf metrics at 2,000 pods.
pub(super) fn write_pod_families(src: &PodSource<'_>) -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new(); POD_FAMILIES.len()];
    // Room for 2,000 pods' samples at once (~125 bytes a sample): few
    // reallocations, and what is reserved but not written is never touched.
    let pods = src.t.pods().count().min(100_000);
    visit_pods(src, &mut |row, pairs, sample| {
        let b = &mut bodies[row];
        if b.is_empty() {
            let per_pod = 125 * src.counters_per_row[row].max(1);
            b.reserve(pods * per_pod + 1024);
        }
        write_any(b, row, pairs, sample);
    });
    bodies.retain(|b| !b.is_empty());
    bodies
}

/// Writes one sample, and the family's header first when `b` is empty.
pub(super) fn write_any(b: &mut Vec<u8>, row: Row, pairs: Labels<'_>, sample: Sample<'_>) {
    let (n, help, ty, _) = POD_FAMILIES[row];
    if b.is_empty() {
        write_header(b, n, help, ty);
    }
    match sample {
        Sample::Counter(v) => write_sample(b, n, "", pairs, None, Value::Int(v)),
        Sample::Gauge(v) => write_sample(b, n, "", pairs, None, Value::Float(v)),
        Sample::Histogram(h) => {
            let mut cumulative = 0;
            for (i, ub) in GAP_BUCKETS.iter().enumerate() {
                cumulative += h.buckets.get(i).copied().unwrap_or(0);
                let le = ub.to_string();
                write_sample(b, n, "_bucket", pairs, Some(&le), Value::Int(cumulative));
            }
            write_sample(b, n, "_bucket", pairs, Some("+Inf"), Value::Int(h.count));
            write_sample(b, n, "_sum", pairs, None, Value::Float(h.sum));
            write_sample(b, n, "_count", pairs, None, Value::Int(h.count));
        }
    }
}

fn write_header(out: &mut Vec<u8>, family: &str, help: &str, ty: MetricType) {
    let ty = match ty {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    };
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    escape_into(out, help, false);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(family.as_bytes());
    out.push(b' ');
    out.extend_from_slice(ty.as_bytes());
    out.push(b'\n');
}

/// A sample value: counts are exact integers, the text encoder prints them
/// through `f64` (identical below 2^53).
#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

fn write_sample(
    out: &mut Vec<u8>,
    family: &str,
    suffix: &str,
    pairs: &[(&str, &str)],
    le: Option<&str>,
    value: Value,
) {
    out.extend_from_slice(PREFIX.as_bytes());
    out.extend_from_slice(family.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !pairs.is_empty() || le.is_some() {
        let mut sep = b'{';
        for (k, v) in pairs.iter().copied().chain(le.map(|l| ("le", l))) {
            out.push(sep);
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            escape_into(out, v, true);
            out.push(b'"');
            sep = b',';
        }
        out.push(b'}');
    }
    out.push(b' ');
    // Writing to a Vec cannot fail.
    let _ = match value {
        Value::Int(v) if v <= 1 << 53 => write!(out, "{v}"),
        Value::Int(v) => write!(out, "{}", v as f64),
        Value::Float(v) => write!(out, "{v}"),
    };
    out.push(b'\n');
}

/// The text format's escaping: `\\` and newline, and `"` in label values.
fn escape_into(out: &mut Vec<u8>, v: &str, quote: bool) {
    for &b in v.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}
