//! The digest's fingerprints over generated statements: arbitrary text
//! never panics, and statements that differ only in literals, list lengths,
//! spacing, keyword case or comments share one fingerprint.

use proptest::prelude::*;
use rds_log_rotator::digest::{Digest, SlowQuery, fingerprint};

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..100_000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        "[a-zA-Z0-9 _%\\-]{0,12}".prop_map(|s| format!("'{s}'")),
        "[a-z ]{0,8}".prop_map(|s| format!("\"{s}\"")),
        // Escapes and doubled quotes inside a string.
        "[a-z]{0,4}".prop_map(|s| format!(r"'it\'s {s} ''quoted'''")),
        (0u32..0xffff).prop_map(|n| format!("0x{n:X}")),
    ]
}

fn list(n: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(literal(), 1..=n).prop_map(|items| items.join(", "))
}

/// Between tokens: any whitespace, newlines, or a comment.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_owned()),
        "[ \t\n]{1,4}",
        "[a-z ]{0,10}".prop_map(|c| format!(" /* {c} */ ")),
        "[a-z ]{0,10}".prop_map(|c| format!(" -- {c}\n")),
        "[a-z ]{0,10}".prop_map(|c| format!(" # {c}\n")),
    ]
}

fn case(word: &str, upper: bool) -> String {
    if upper {
        word.to_uppercase()
    } else {
        word.to_lowercase()
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}|[\\\\'\"`#/*\\-0-9a-z().,\\n ]{0,60}") {
        let _ = fingerprint(&text);
        let mut digest = Digest::default();
        digest.add(&SlowQuery { sql_text: &text, query_time_secs: 1.0, rows_examined: 1 });
        prop_assert_eq!(digest.top(20).len(), 1);
    }

    #[test]
    fn literals_lists_spacing_case_and_comments_do_not_matter(
        a in literal(), b in literal(), items_a in list(6), items_b in list(6),
        gaps in prop::collection::vec(gap(), 12), upper in any::<bool>(),
    ) {
        let plain = format!("select name from users where id = {a} and team in ({items_a}) limit 10");
        let g = |i: usize| gaps[i].clone();
        let varied = format!(
            "{}{}name{}{}{}users{}{}{}id = {b}{}{}{}team{}{}{}({items_b}){}{}{}5",
            case("select", upper), g(0), g(1), case("from", upper), g(2), g(3), case("where", upper), g(4),
            g(5), case("and", upper), g(6), g(7), case("in", upper), g(8), g(9), case("limit", upper), g(10),
        );
        prop_assert_eq!(fingerprint(&plain), fingerprint(&varied));
        prop_assert_eq!(fingerprint(&plain), "select name from users where id = ? and team in (?+) limit ?");
    }

    #[test]
    fn multi_line_multi_row_inserts_share_a_fingerprint(rows in prop::collection::vec(list(3), 1..5)) {
        let values: Vec<String> = rows.iter().map(|r| format!("({r})")).collect();
        let sql = format!("INSERT INTO t (a)\nVALUES\n  {}", values.join(",\n  "));
        prop_assert_eq!(fingerprint(&sql), "insert into t (a) values (?+)");
    }
}

proptest! {
    /// Literals written for NO_BACKSLASH_ESCAPES (a backslash is a plain
    /// character, so `'C:\'` is a whole literal) never leave their content
    /// in the fingerprint, which is logged.
    #[test]
    fn no_backslash_escapes_literals_never_reach_the_fingerprint(
        contents in prop::collection::vec("[Q\\\\ ]{0,6}", 1..6),
    ) {
        let conditions: Vec<String> = contents
            .iter()
            .enumerate()
            .map(|(i, text)| format!("c{i} = '{}'", text.replace('\'', "''")))
            .collect();
        let sql = format!("SELECT * FROM t WHERE {}", conditions.join(" AND "));
        let print = fingerprint(&sql);
        prop_assert!(!print.contains('q'), "{sql} -> {print}");
    }
}
