//! The one redactor for every URL and connection string the agent prints.
//!
//! The agent's own output (`check-config`, the start-up "effective
//! configuration" line, reload errors, probe and OTLP logs) names database
//! URLs, collector endpoints and probe URLs. Those carry passwords in more
//! places than the userinfo: libpq reads `?password=`, collectors and
//! gateways take `?token=` / `?api_key=`, and libpq also accepts
//! `key=value` strings. [`redact`] hides all of them, and when a URL is
//! ambiguous (an unencoded `/`, `?`, `#` or `@` inside the password) it hides
//! everything after the scheme rather than guess where the password ends.
//!
//! What stays visible is what an operator needs to see which endpoint is
//! meant: scheme, user name, host, port, path and the harmless query
//! parameters (`sslmode=require`).

/// What replaces a hidden value.
pub(crate) const MASK: &str = "***";

/// Query-parameter and libpq key fragments whose values are secrets (matched
/// case-insensitively, `-` read as `_`, anywhere in the name: `sslpassword`,
/// `access_token`, `client_secret`, `x-api-key`).
const SECRET_NAME_PARTS: [&str; 10] = [
    "password", "passwd", "pwd", "pass", "token", "secret", "api_key", "apikey", "key", "auth",
];

/// libpq keys shown with their value in a `key=value` string; every other
/// key's value is hidden.
const LIBPQ_PLAIN_KEYS: [&str; 9] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "sslmode",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
];

/// A URL (`scheme://…`) or libpq `key=value` string with every secret replaced
/// by `***`. Never panics, never returns a byte of a password, whatever the input.
pub fn redact(raw: &str) -> String {
    let s = raw.trim();
    match split_scheme(s) {
        Some((scheme, rest)) => redact_url(&scheme, rest),
        None if s.contains('=') => redact_key_value(s),
        // Not a URL and not key=value: it could be a bare password.
        None if s.is_empty() => String::new(),
        None => MASK.to_string(),
    }
}

/// `scheme` (lower-cased) and what follows `://`, for an RFC 3986 scheme.
fn split_scheme(s: &str) -> Option<(String, &str)> {
    let i = s.find("://")?;
    let scheme = &s[..i];
    let ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| (scheme.to_ascii_lowercase(), &s[i + 3..]))
}

fn redact_url(scheme: &str, rest: &str) -> String {
    // The last '@' ends the userinfo, so an unencoded '@' or ':' in the
    // password stays inside it.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let shown_userinfo = match userinfo {
        None => String::new(),
        // The '@' may sit in a query value or in a password holding '/', '?'
        // or '#': the host and the password cannot be told apart. Hide all.
        Some(ui) if ui.contains(['/', '?', '#']) => return format!("{scheme}://{MASK}"),
        Some(ui) => match ui.split_once(':') {
            Some((user, _password)) => format!("{}:{MASK}@", safe_text(user)),
            None => format!("{}@", safe_text(ui)),
        },
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, _)) => (b, true),
        None => (after, false),
    };
    let (host_path, query) = match before_fragment.split_once('?') {
        Some((hp, q)) => (hp, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = format!("{scheme}://{shown_userinfo}{}", safe_text(host_path));
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redact_query(q));
    }
    if fragment {
        out.push('#');
        out.push_str(MASK);
    }
    out
}

/// `a=1&password=x&b=2` → `a=1&password=***&…`: after a secret parameter
/// the rest is hidden too (an unencoded `&` may sit inside the secret).
fn redact_query(q: &str) -> String {
    let pairs: Vec<&str> = q.split('&').collect();
    let mut out: Vec<String> = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        match pair.split_once('=') {
            Some((k, _)) if is_secret_name(k) => {
                out.push(format!("{}={MASK}", safe_text(k)));
                if i + 1 < pairs.len() {
                    out.push("…".into());
                }
                break;
            }
            Some((k, v)) => out.push(format!("{}={}", safe_text(k), safe_text(v))),
            None if pair.is_empty() => out.push(String::new()),
            // A bare word could be a token passed positionally.
            None => out.push(MASK.to_string()),
        }
    }
    out.join("&")
}

/// Whether a parameter name (percent-decoded, any case) names a secret.
fn is_secret_name(name: &str) -> bool {
    let decoded = percent_decode(name).to_ascii_lowercase().replace('-', "_");
    SECRET_NAME_PARTS.iter().any(|p| decoded.contains(p))
}

/// `%XX` escapes decoded (a stray `%` stays as is) and `+` read as a space,
/// as in a query string.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Control characters (a terminal escape in a URL) shown as `?`.
fn safe_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// libpq `key = value` / `key='quoted value'`: plain keys keep their value,
/// every other key shows `***`. Parsing stops (`…`) at anything it does not
/// understand, so nothing after it is shown.
fn redact_key_value(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut chars = s.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_ws(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                end = i + c.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let key = &s[start..end];
        skip_ws(&mut chars);
        if key.is_empty() || chars.next().map(|(_, c)| c) != Some('=') {
            out.push("…".into());
            break;
        }
        skip_ws(&mut chars);
        // The value: quoted (with backslash escapes) or up to whitespace.
        let mut value = String::new();
        let mut ok = true;
        let quoted = chars.peek().is_some_and(|&(_, c)| c == '\'');
        if quoted {
            chars.next();
            ok = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '\'' => {
                        ok = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some((_, e)) = chars.next() {
                        value.push(e);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        // An unquoted value holding a quote or `=` (`user= password='…'`) makes
        // the rest ambiguous: whatever follows may be part of a secret.
        let ambiguous = !quoted && value.contains(['\'', '=']);
        if ambiguous {
            ok = false;
        }
        let plain = LIBPQ_PLAIN_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key));
        if plain && ok && !value.contains(['\'', '"', '\\']) {
            out.push(format!("{key}={}", safe_text(&value)));
        } else {
            out.push(format!("{key}={MASK}"));
        }
        if !ok {
            out.push("…".into());
            break;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every form the issue lists, with what must be shown.
    const CASES: [(&str, &str); 25] = [
        // An empty unquoted value: libpq would read `password='` as the
        // user; the rest may be the secret and is hidden.
        (
            "host=db user= password=' Zx9Q=' dbname=x",
            "host=db user=*** …",
        ),
        (
            "postgresql://llm:Hunter2-S3cr3t@db:5432/litellm",
            "postgresql://llm:***@db:5432/litellm",
        ),
        (
            "postgresql://llm@db:5432/litellm?password=Hunter2-S3cr3t",
            "postgresql://llm@db:5432/litellm?password=***",
        ),
        (
            "postgres://db/litellm?sslmode=require&PassWord=Hunter2-S3cr3t",
            "postgres://db/litellm?sslmode=require&PassWord=***",
        ),
        (
            "postgres://db/x?PASSWD=Hunter2-S3cr3t",
            "postgres://db/x?PASSWD=***",
        ),
        (
            "postgres://db/x?Pwd=Hunter2-S3cr3t",
            "postgres://db/x?Pwd=***",
        ),
        (
            "http://otel:4318/v1/metrics?token=Hunter2-S3cr3t",
            "http://otel:4318/v1/metrics?token=***",
        ),
        (
            "http://otel:4318/?a=1&TOKEN=Hunter2-S3cr3t&a=1",
            "http://otel:4318/?a=1&TOKEN=***&…",
        ),
        (
            "http://otel:4318?Secret=Hunter2-S3cr3t",
            "http://otel:4318?Secret=***",
        ),
        (
            "http://otel:4318?api_key=Hunter2-S3cr3t",
            "http://otel:4318?api_key=***",
        ),
        (
            "http://otel:4318?API-KEY=Hunter2-S3cr3t",
            "http://otel:4318?API-KEY=***",
        ),
        (
            "http://otel:4318?access_token=Hunter2-S3cr3t",
            "http://otel:4318?access_token=***",
        ),
        (
            "http://otel:4318?pass%77ord=Hunter2-S3cr3t",
            "http://otel:4318?pass%77ord=***",
        ),
        ("http://otel:4318?Hunter2-S3cr3t", "http://otel:4318?***"),
        (
            "http://otel:4318/x#Hunter2-S3cr3t",
            "http://otel:4318/x#***",
        ),
        // Unencoded '@' and ':' in the password: the last '@' ends it.
        (
            "postgresql://u:Hunter2@S3cr3t:x@h:1/d",
            "postgresql://u:***@h:1/d",
        ),
        // Unencoded '/', '?', '#' in the password: ambiguous, all hidden.
        ("postgresql://u:Hunter2/S3cr3t@h/d", "postgresql://***"),
        ("postgresql://u:Hunter2?S3cr3t@h/d", "postgresql://***"),
        ("postgresql://u:Hunter2#S3cr3t@h/d", "postgresql://***"),
        (
            "postgresql://u@h/d?password=Hunter2@S3cr3t",
            "postgresql://***",
        ),
        (
            "POSTGRESQL://u:Hunter2-S3cr3t@h/d",
            "postgresql://u:***@h/d",
        ),
        // libpq key=value.
        (
            "host=db port=5432 user=llm password=Hunter2-S3cr3t dbname=x",
            "host=db port=5432 user=llm password=*** dbname=x",
        ),
        (
            "host=db password = 'Hunter2 S3cr3t host=evil' dbname=x sslmode=require",
            "host=db password=*** dbname=x sslmode=require",
        ),
        ("host=db PASSWORD='Hunter2-S3cr3t", "host=db PASSWORD=*** …"),
        ("Hunter2-S3cr3t", "***"),
    ];

    #[test]
    fn every_form_is_redacted_and_the_rest_kept() {
        for (input, want) in CASES {
            let shown = redact(input);
            assert_eq!(shown, want, "{input}");
            assert!(
                !shown.contains("Hunter2") && !shown.contains("S3cr3t"),
                "{shown}"
            );
        }
        assert_eq!(redact("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
        assert_eq!(redact(""), "");
        assert!(!redact("host=db sslrootcert=/x password=p\\ w").contains("p w"));
        assert_eq!(redact("host=db sslkey=/k"), "host=db sslkey=***");
    }

    proptest! {
        /// A password placed in any of the forms, with any characters of the
        /// URL syntax in it, never shows; redaction never panics.
        #[test]
        fn no_password_survives(
            pw in "[A-Za-z0-9/?#@:&=%+. '-]{0,6}Zx9Q[A-Za-z0-9/?#@:&=%+. '-]{0,6}",
            user in "[a-z]{0,5}",
            key in prop::sample::select(vec!["password", "PASSWORD", "passwd", "Pwd", "token", "Secret", "API_KEY", "apiKey"]),
            form in 0usize..5,
        ) {
            let input = match form {
                0 => format!("postgresql://{user}:{pw}@db:5432/litellm"),
                1 => format!("postgresql://{user}@db/litellm?sslmode=require&{key}={pw}"),
                2 => format!("http://otel:4318/v1/metrics?{key}={pw}"),
                3 => format!("host=db user={user} {key}='{}' dbname=x", pw.replace('\\', "").replace('\'', "\\'")),
                _ => format!("host=db {key}={} dbname=x", pw.replace([' ', '\\', '\''], "")),
            };
            let shown = redact(&input);
            prop_assert!(!shown.contains("Zx9Q"), "{input:?} -> {shown:?}");
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".{0,64}") {
            let _ = redact(&s);
        }
    }

    #[test]
    fn percent_decoding_is_total() {
        for s in ["%", "%4", "%zz", "%41%", "a%2", "%%%"] {
            let _ = percent_decode(s);
        }
        assert_eq!(percent_decode("pass%77ord"), "password");
        // `+` is a space, an encoded `%2B` a plus; invalid UTF-8 is replaced, never a panic.
        assert_eq!(percent_decode("a+b%2B"), "a b+");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
