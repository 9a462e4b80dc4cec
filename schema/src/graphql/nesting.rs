//! A bound on how deeply a GraphQL document nests, checked on its text before it is parsed.
//!
//! async-graphql's parser recurses once per nested list, object, argument list or selection set,
//! and its limits (`limit_depth`, `limit_recursive_depth`) only run on the parsed document. A
//! document of a few kilobytes such as `{ f(x: [[[[…]]]]) }`, 2,000 levels deep, overflows a
//! worker thread's stack while it is parsed, which aborts the whole process. This scan is linear,
//! allocates nothing and cannot recurse: every entry point (HTTP POST and GET, both WebSocket
//! protocols) runs it before the parser sees the text.

/// The deepest nesting the limit may be set to. Parsing was seen to overflow a 2 MiB worker stack
/// at about 2,000 levels; this keeps a wide margin.
pub const MAX_NESTING_CEILING: usize = 256;

/// The document nests deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// The limit that was passed.
    pub limit: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the document nests brackets more than {} levels deep",
            self.limit
        )
    }
}

/// Checks that no `{`, `[` or `(` in `query` (outside strings and comments) opens more than
/// `limit` levels deep. Unbalanced brackets are left to the parser to report.
pub fn check(query: &str, limit: usize) -> Result<(), TooDeep> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                // A comment runs to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => i = skip_block_string(bytes, i + 3),
            b'"' => i = skip_string(bytes, i + 1),
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { limit });
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// From just after an opening `"`, the index of the closing `"` (or the end).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' | b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// From just after an opening `"""`, the index of the last `"` of the closing `"""` (or the end).
/// Inside, `\"""` is an escaped delimiter.
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 2;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!(
            "{{ __typename(x: {}1{}) }}",
            open.repeat(n),
            close.repeat(n)
        )
    }

    #[test]
    fn counts_every_kind_of_bracket() {
        assert_eq!(check("{ a { b { c } } }", 3), Ok(()));
        assert_eq!(check("{ a { b { c } } }", 2), Err(TooDeep { limit: 2 }));
        // `{`, `(` and `[` each open a level: 1 + 1 + 2.
        assert_eq!(check(&nested("[", "]", 2), 4), Ok(()));
        assert_eq!(check(&nested("[", "]", 3), 4), Err(TooDeep { limit: 4 }));
        assert!(check(&nested("{a:", "}", 5000), 64).is_err());
    }

    #[test]
    fn depth_is_not_the_total_count() {
        let wide = "{ a { x } b { y } c { z } d(q: [1]) { w } }";
        assert_eq!(check(wide, 3), Ok(()));
        assert!(check(wide, 2).is_err(), "`d(q: [1])` reaches 3");
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let query = r#"{ a(s: "[[[{{{(((", t: "\"[[[") # [[[[[[
 b(u: """ [[[[ \""" {{{{ """) }"#;
        assert_eq!(check(query, 2), Ok(()));
    }

    #[test]
    fn a_string_does_not_hide_what_follows_it() {
        let query = format!(r#"{{ a(s: "x") {} }}"#, "[".repeat(10));
        assert!(check(&query, 5).is_err());
        let unterminated = format!("{{ a(s: \"x\n{} }}", "[".repeat(10));
        assert!(check(&unterminated, 5).is_err());
    }

    #[test]
    fn closing_brackets_never_go_below_zero() {
        assert_eq!(check("]]]]]]]] { a }", 1), Ok(()));
    }
}
