//! `--events`: the loss ledger, one line per event (JSON Lines or CSV).
//!
//! Each line says when (record time), where (namespace, pod), what (event
//! kind, operation, rows lost or re-queued), why (the rule that matched) and
//! where to look (source file and byte offset of the line) — never the
//! line's text, which can carry secrets. Requests are not listed (they are
//! counted in the report); every other event is, so the ledger's totals are
//! the report's.

use std::io::Write;

use serde::Serialize;

use super::{model, observe::Entry, Report};

/// The ledger formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line (for spreadsheets).
    Csv,
}

/// One ledger line.
#[derive(Debug, Serialize, PartialEq)]
pub struct Line<'a> {
    pub time: Option<String>,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub kind: &'static str,
    pub operation: Option<&'static str>,
    pub rows_lost: u64,
    pub rows_requeued: u64,
    pub rule: Option<&'a str>,
    pub file: &'a str,
    pub offset: u64,
}

/// The ledger lines of a report, in record order.
pub fn lines(r: &Report) -> impl Iterator<Item = Line<'_>> {
    r.ledger.iter().filter_map(move |e: &Entry| {
        let k = model::ledger_kind(&e.kind)?;
        Some(Line {
            time: e.ts.map(|t| t.to_string()),
            namespace: &e.pod.namespace,
            pod: &e.pod.pod,
            kind: k.kind,
            operation: k.operation,
            rows_lost: k.rows_lost,
            rows_requeued: k.rows_requeued,
            rule: e
                .rule
                .and_then(|i| r.rule_ids.get(i as usize))
                .map(String::as_str),
            file: r.sources.get(e.file as usize).map_or("", String::as_str),
            offset: e.offset,
        })
    })
}

const CSV_HEADER: &str =
    "time,namespace,pod,kind,operation,rows_lost,rows_requeued,rule,file,offset";

/// A CSV field: quoted when it needs to be, and a leading `=`, `+`, `@`
/// neutralised so a spreadsheet never runs a file name as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.len() > 1) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Writes the ledger.
pub fn write(r: &Report, format: LedgerFormat, out: &mut dyn Write) -> std::io::Result<()> {
    if format == LedgerFormat::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    for l in lines(r) {
        match format {
            LedgerFormat::Jsonl => {
                serde_json::to_writer(&mut *out, &l)?;
                out.write_all(b"\n")?;
            }
            LedgerFormat::Csv => {
                let fields = [
                    l.time.unwrap_or_default(),
                    csv_field(l.namespace),
                    csv_field(l.pod),
                    l.kind.to_string(),
                    l.operation.unwrap_or_default().to_string(),
                    l.rows_lost.to_string(),
                    l.rows_requeued.to_string(),
                    csv_field(l.rule.unwrap_or_default()),
                    csv_field(l.file),
                    l.offset.to_string(),
                ];
                writeln!(out, "{}", fields.join(","))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("llm"), "llm");
        assert_eq!(csv_field("-"), "-");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-1+2"), "'-1+2");
    }
}
