//! The slow-query digest: each statement reduced to a fingerprint (literals
//! become `?`, IN lists collapse, comments go, whitespace and case are
//! normalized), then the worst fingerprints by total time.

use serde::Serialize;
use std::collections::HashMap;

/// Distinct fingerprints kept; later new ones count under [`OTHER`], so
/// memory stays bounded whatever the log holds.
pub const MAX_FINGERPRINTS: usize = 10_000;
pub const OTHER: &str = "(other statements)";
/// Sample statements are cut to this many characters.
const SAMPLE_CHARS: usize = 1_000;

/// `sql` with literals, comments and IN lists normalized away.
///
/// A backslash escapes a quote unless the server runs with
/// NO_BACKSLASH_ESCAPES, which the log does not say. Read with escapes, a
/// literal ending in a backslash (`'C:\'`) swallows the next quote and
/// leaves the following literal bare, and a literal is left open at the
/// end. Then the statement is also read with backslashes as plain
/// characters, and whatever either reading takes for a literal becomes `?`:
/// the fingerprint is logged, so it must carry no literal whichever mode
/// the server runs in.
pub fn fingerprint(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let escaped = fingerprint_in(&chars, true, &[]);
    if escaped.closed {
        return escaped.print;
    }
    let plain = fingerprint_in(&chars, false, &[]);
    let mut spans = escaped.literals;
    spans.extend(plain.literals);
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    fingerprint_in(&chars, true, &merged).print
}

struct Reading {
    print: String,
    /// Where literals are, as char ranges.
    literals: Vec<(usize, usize)>,
    /// Every literal was closed.
    closed: bool,
}

/// One reading of the statement; `masked` (sorted, disjoint char ranges)
/// become `?` wherever they start.
fn fingerprint_in(chars: &[char], backslash_escapes: bool, masked: &[(usize, usize)]) -> Reading {
    let mut closed = true;
    let mut literals = Vec::new();
    let mut mask = masked.iter().peekable();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    // Pushes one space between tokens, never at the start or twice.
    let space = |out: &mut String| {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    };
    while i < chars.len() {
        while mask.next_if(|(_, end)| *end <= i).is_some() {}
        if let Some(&&(start, end)) = mask.peek()
            && start <= i
        {
            i = end;
            out.push('?');
            continue;
        }
        if let Some(end) = comment_end(chars, i) {
            i = end;
            space(&mut out);
            continue;
        }
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' => {
                let (end, terminated) = skip_quoted(chars, i, backslash_escapes);
                literals.push((i, end));
                i = end;
                closed &= terminated;
                out.push('?');
            }
            '`' => {
                // A quoted identifier stays, lowercased.
                let end = backquoted_end(chars, i);
                out.extend(chars[i..end].iter().flat_map(|c| c.to_lowercase()));
                i = end;
            }
            c if c.is_whitespace() => {
                space(&mut out);
                i += 1;
            }
            // A sign where a value starts belongs to the number: -1 and 1 match.
            '-' | '+'
                if next.is_some_and(|n| n.is_ascii_digit() || n == '.') && value_expected(&out) =>
            {
                i = skip_number(chars, i + 1);
                out.push('?');
            }
            c if c.is_ascii_digit() && !previous_is_word(&out) => {
                i = skip_number(chars, i);
                out.push('?');
            }
            '.' if next.is_some_and(|n| n.is_ascii_digit()) && !previous_is_word(&out) => {
                i = skip_number(chars, i + 1);
                out.push('?');
            }
            c => {
                out.extend(c.to_lowercase());
                i += 1;
            }
        }
    }
    Reading {
        print: collapse_lists(out.trim_end()),
        literals,
        closed,
    }
}

/// Where the comment starting at `i` ends, if one starts there: /* ... */
/// (including /*! hints), -- to end of line, # to end of line.
fn comment_end(chars: &[char], i: usize) -> Option<usize> {
    let next = chars.get(i + 1).copied();
    match chars[i] {
        '/' if next == Some('*') => {
            let mut end = i + 2;
            while end < chars.len() && !(chars[end] == '*' && chars.get(end + 1) == Some(&'/')) {
                end += 1;
            }
            Some(end + 2)
        }
        '-' if next == Some('-') && chars.get(i + 2).is_none_or(|c| c.is_whitespace()) => {
            Some(line_end(chars, i))
        }
        '#' => Some(line_end(chars, i)),
        _ => None,
    }
}

fn line_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

/// The end of the `quoted identifier` starting at `start` (its closing
/// backquote included, or the end of the text).
fn backquoted_end(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() && chars[i] != '`' {
        i += 1;
    }
    (i + 1).min(chars.len())
}

/// Keywords after which a value starts.
const BEFORE_VALUE: [&str; 16] = [
    "select", "where", "and", "or", "not", "in", "then", "else", "when", "by", "limit", "values",
    "set", "between", "like", "return",
];

/// True when the next token is an operand, not an operator.
fn value_expected(out: &str) -> bool {
    let trimmed = out.trim_end();
    match trimmed.chars().next_back() {
        None => true,
        Some(c) if "=<>(,+-*/%".contains(c) => true,
        Some(c) if c.is_alphabetic() => {
            let word = trimmed
                .rsplit(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or_default();
            BEFORE_VALUE.contains(&word)
        }
        _ => false,
    }
}

fn previous_is_word(out: &str) -> bool {
    out.chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '@')
}

/// Index after the quoted literal starting at `start`: backslash escapes
/// and doubled quotes stay inside it; an unterminated one runs to the end
/// (false).
fn skip_quoted(chars: &[char], start: usize, backslash_escapes: bool) -> (usize, bool) {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if backslash_escapes => i += 2,
            c if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return (i + 1, true);
                }
            }
            _ => i += 1,
        }
    }
    (chars.len(), false)
}

/// Index after a number: digits, hex (0x..), a fraction, an exponent.
fn skip_number(chars: &[char], start: usize) -> usize {
    let mut i = start;
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X' | 'b' | 'B')) {
        i += 2;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        return i;
    }
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    if i < chars.len() && matches!(chars[i], 'e' | 'E') {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        if chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// `in (?, ?, ?)` -> `in (?+)`, and `values (?, ?), (?, ?)` -> `values (?+)`:
/// statements differing only in list length share a fingerprint.
fn collapse_lists(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Only the lists of IN (...) and VALUES (...): a function's
        // arguments keep their count.
        let after_list_keyword = {
            let before = out.trim_end();
            before.ends_with(" in") || before.ends_with(" values") || before == "values"
        };
        if bytes[i] == b'(' && after_list_keyword {
            // A parenthesized list of only placeholders, commas and spaces.
            let mut j = i + 1;
            while j < bytes.len() && matches!(bytes[j], b'?' | b',' | b' ') {
                j += 1;
            }
            let inner = &text[i + 1..j];
            if j < bytes.len() && bytes[j] == b')' && inner.contains('?') {
                out.push_str("(?+)");
                i = j + 1;
                // Further tuples of a multi-row VALUES.
                loop {
                    let rest = &text[i..];
                    let trimmed = rest.trim_start_matches([',', ' ']);
                    if trimmed.starts_with("(?") && rest.trim_start().starts_with(',') {
                        let close = trimmed.find(')');
                        let tuple_ok = close.is_some_and(|c| {
                            trimmed[1..c]
                                .bytes()
                                .all(|b| matches!(b, b'?' | b',' | b' '))
                        });
                        if let (true, Some(c)) = (tuple_ok, close) {
                            i = text.len() - trimmed.len() + c + 1;
                            continue;
                        }
                    }
                    break;
                }
                continue;
            }
        }
        let c = text[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// One slow_log row, as the digest needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowQuery<'a> {
    pub sql_text: &'a str,
    pub query_time_secs: f64,
    pub rows_examined: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub fingerprint: String,
    pub count: u64,
    pub total_time_secs: f64,
    pub avg_time_secs: f64,
    pub max_time_secs: f64,
    pub rows_examined: u64,
    pub sample: String,
}

/// A digest entry without its sample: what the run report and the logs
/// carry. The sample is a statement with its literals (addresses, ids), so
/// it stays in the S3 digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopQuery {
    pub fingerprint: String,
    pub count: u64,
    pub total_time_secs: f64,
    pub avg_time_secs: f64,
    pub max_time_secs: f64,
    pub rows_examined: u64,
}

impl From<&Entry> for TopQuery {
    fn from(entry: &Entry) -> Self {
        Self {
            // Literals are gone from a fingerprint; an address written
            // outside quotes would not be, so mask any left.
            fingerprint: shared::logging::mask_emails_in(&entry.fingerprint),
            count: entry.count,
            total_time_secs: entry.total_time_secs,
            avg_time_secs: entry.avg_time_secs,
            max_time_secs: entry.max_time_secs,
            rows_examined: entry.rows_examined,
        }
    }
}

#[derive(Debug, Default)]
pub struct Digest {
    entries: HashMap<String, Entry>,
    pub queries: u64,
}

impl Digest {
    pub fn add(&mut self, query: &SlowQuery<'_>) {
        self.queries += 1;
        let mut key = fingerprint(query.sql_text);
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_FINGERPRINTS {
            key = OTHER.to_owned();
        }
        let entry = self.entries.entry(key).or_insert_with_key(|k| Entry {
            fingerprint: k.clone(),
            count: 0,
            total_time_secs: 0.0,
            avg_time_secs: 0.0,
            max_time_secs: 0.0,
            rows_examined: 0,
            sample: query.sql_text.chars().take(SAMPLE_CHARS).collect(),
        });
        entry.count += 1;
        entry.total_time_secs += query.query_time_secs;
        entry.rows_examined += query.rows_examined;
        if query.query_time_secs > entry.max_time_secs {
            entry.max_time_secs = query.query_time_secs;
            entry.sample = query.sql_text.chars().take(SAMPLE_CHARS).collect();
        }
    }

    pub fn distinct(&self) -> usize {
        self.entries.len()
    }

    /// The `n` fingerprints with the most total time; ties by fingerprint.
    pub fn top(&self, n: usize) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self.entries.values().cloned().collect();
        entries.sort_by(|a, b| {
            b.total_time_secs
                .total_cmp(&a.total_time_secs)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        entries.truncate(n);
        for e in &mut entries {
            e.avg_time_secs = e.total_time_secs / e.count as f64;
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            fingerprint("SELECT * FROM users WHERE id = 42 AND name = 'O''Brien'"),
            "select * from users where id = ? and name = ?"
        );
        assert_eq!(
            fingerprint(r#"select "a \" b", 'c \' d', 1.5e-3, -7, .5, 0xFF from t1"#),
            "select ?, ?, ?, ?, ?, ? from t1"
        );
    }

    #[test]
    fn identifiers_with_digits_and_backticks_stay() {
        assert_eq!(
            fingerprint("SELECT col2 FROM `Table3` WHERE t9.x=1"),
            "select col2 from `table3` where t9.x=?"
        );
    }

    #[test]
    fn in_lists_and_values_collapse() {
        assert_eq!(
            fingerprint("select * from t where id IN (1, 2,3)"),
            fingerprint("select * from t where id in (7)")
        );
        assert_eq!(
            fingerprint("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3,'z')"),
            "insert into t (a, b) values (?+)"
        );
    }

    #[test]
    fn function_arguments_are_not_lists() {
        assert_eq!(
            fingerprint("SELECT GET_LOCK('x', 0), SLEEP(1)"),
            "select get_lock(?, ?), sleep(?)"
        );
        assert_eq!(
            fingerprint("select * from t where a in(1,2)"),
            "select * from t where a in(?+)"
        );
    }

    #[test]
    fn comments_and_whitespace_go() {
        assert_eq!(
            fingerprint(
                "/* app:checkout */ SELECT\n\t  a -- trailing\nFROM t # mysql comment\n WHERE b = 2"
            ),
            "select a from t where b = ?"
        );
        assert_eq!(
            fingerprint("SELECT 1 - -1, -2, a-3, a - 4"),
            "select ? - ?, ?, a-?, a - ?"
        );
    }

    #[test]
    fn no_literal_is_left_bare_under_no_backslash_escapes() {
        // With NO_BACKSLASH_ESCAPES a backslash before the closing quote is a
        // plain character: the statement below has two literals.
        let print = fingerprint(r"SELECT * FROM files WHERE dir='C:\' AND name='Jane Roe'");
        // Both readings' literals are masked, so the overlap is one `?`.
        assert_eq!(print, "select * from files where dir=?");
        // Backslash escapes still hold where they parse.
        assert_eq!(
            fingerprint(r"SELECT 'it\'s' FROM t WHERE name='Jane Roe'"),
            "select ? from t where name=?"
        );
        // An escaped quote and a literal cut short: read without escapes,
        // `s` and `open` would be bare; neither reading may leave them.
        let print = fingerprint(r"SELECT 'it\'s', 'open");
        assert_eq!(print, "select ?");
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for sql in [
            "select 'open",
            "/* open",
            "select `open",
            "x = 0x",
            "'",
            "\\",
            "1e",
            "--",
        ] {
            let _ = fingerprint(sql);
        }
    }

    #[test]
    fn digest_ranks_by_total_time() {
        let mut digest = Digest::default();
        for (sql, time) in [
            ("select * from a where id = 1", 1.0),
            ("select * from a where id = 2", 2.0),
            ("select * from b", 2.5),
        ] {
            digest.add(&SlowQuery {
                sql_text: sql,
                query_time_secs: time,
                rows_examined: 10,
            });
        }
        let top = digest.top(20);
        assert_eq!(top[0].fingerprint, "select * from a where id = ?");
        assert_eq!(top[0].count, 2);
        assert_eq!(top[0].avg_time_secs, 1.5);
        assert_eq!(top[0].max_time_secs, 2.0);
        assert_eq!(top[0].sample, "select * from a where id = 2");
        assert_eq!(top[0].rows_examined, 20);
        assert_eq!(digest.top(1).len(), 1);
    }
}
