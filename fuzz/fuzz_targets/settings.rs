//! Fuzzes what the agent reads from its operator rather than from logs: the
//! config parser, durations, the URL/DSN redactor and record timestamps.
//! None may panic; a password marked inside any URL or DSN form never
//! survives redaction; a parsed timestamp is always in the sane range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use litellm_sentinel::config::{Config, HumanDuration};
use litellm_sentinel::redact::redact;
use litellm_sentinel::time::Timestamp;

const MARK: &str = "QZXJ";

fuzz_target!(|data: &[u8]| {
    if let Some((ts, n)) = Timestamp::parse_rfc3339_prefix(data) {
        assert!(n <= data.len());
        assert!(ts.is_sane_at(Timestamp::now().plus_secs(60.0)), "{ts}");
    }
    let s = String::from_utf8_lossy(data);
    let _ = redact(&s);
    if let Ok(d) = HumanDuration::parse(&s) {
        assert!(d.0.as_secs() <= 7 * 86_400);
    }
    if let Ok(cfg) = Config::from_toml(&s) {
        let _ = cfg.to_redacted_toml();
    }
    if s.contains(MARK) {
        return;
    }
    let mut forms = vec![
        format!("postgresql://u:{MARK}{s}@h:5432/d"),
        format!("postgres://u@h/d?sslmode=require&password={MARK}{s}"),
        format!("http://h:4318/v1/metrics?a=1&Token={MARK}{s}"),
        format!(
            "host=h user=u password='{MARK}{}' dbname=d",
            s.replace('\\', "\\\\").replace('\'', "\\'")
        ),
    ];
    // An unquoted libpq value ends at whitespace and cannot hold a quote.
    if !s.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        forms.push(format!("host=h password={MARK}{s} dbname=d"));
    }
    for form in forms {
        let shown = redact(&form);
        assert!(!shown.contains(MARK), "{form:?} -> {shown:?}");
    }
});
