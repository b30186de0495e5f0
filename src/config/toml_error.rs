//! TOML parse errors that name the line, column and key but never quote a value
//! (a syntax error on the `database_url` line must not print the password).

/// A TOML error as `line L, column C, key `k`: message`, without the source
/// snippet the toml crate prints and with quoted values in the message
/// replaced by `…`.
pub(super) fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line_no = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        out.push_str(&format!("line {line_no}, column {col}"));
        if let Some(key) = key_at(text, line_start) {
            out.push_str(&format!(", key `{key}`"));
        }
        out.push_str(": ");
    }
    out.push_str(&scrub_values(e.message().trim()));
    out.replace('\n', " ")
}

/// The dotted key of the `key = value` line starting at `line_start`
/// (prefixed with the last `[table]` above it), if it is a plain bare key.
fn key_at(text: &str, line_start: usize) -> Option<String> {
    let bare = |k: &str| {
        !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let key = match line.strip_prefix('[') {
        Some(header) => {
            let name = header.trim_start_matches('[').split(']').next()?.trim();
            return bare(name).then(|| name.to_string());
        }
        None => line.split_once('=')?.0.trim(),
    };
    if !bare(key) {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|h| h.trim_start_matches('[').split(']').next())
            .map(str::trim)
    });
    Some(match table {
        Some(t) if bare(t) => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// Replaces what serde and toml quote from the input (`string "…"`,
/// `` integer `5` ``, `` unknown variant `x` ``) with `…`; names of keys
/// (`` unknown field `globz` ``, the expected list) are kept.
fn scrub_values(msg: &str) -> String {
    const VALUE_PREFIXES: [&str; 6] = [
        "integer ",
        "floating point ",
        "boolean ",
        "character ",
        "variant ",
        "invalid value: ",
    ];
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(['"', '\'', '`']) {
        let quote = rest[i..].chars().next().unwrap_or('"');
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let body = &tail[1..];
        let end = if quote == '"' {
            // Skip escaped quotes inside a Rust-debug-quoted string.
            let mut esc = false;
            body.char_indices()
                .find(|&(_, c)| {
                    let hit = c == '"' && !esc;
                    esc = c == '\\' && !esc;
                    hit
                })
                .map(|(j, _)| j)
        } else {
            body.find(quote)
        };
        let Some(end) = end else {
            // An unterminated quote: drop the rest.
            out.push('…');
            return out;
        };
        let value_like = quote != '`' || VALUE_PREFIXES.iter().any(|p| head.ends_with(p));
        if value_like {
            out.push(quote);
            out.push('…');
            out.push(quote);
        } else {
            out.push_str(&tail[..end + 2]);
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}
