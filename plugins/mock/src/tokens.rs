//! The mock's definition of a token, and how a reply is cut into stream deltas.
//!
//! A token is a maximal run of ASCII alphanumerics (`[A-Za-z0-9]+`), or any single other
//! character that is not whitespace: each CJK character, emoji or punctuation mark is one token.
//! Whitespace is never a token; it rides along with the token that follows it.

use std::ops::Range;

/// The byte ranges of the tokens of `text`, in order.
pub fn token_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut run: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphanumeric() {
            run.get_or_insert(i);
            continue;
        }
        if let Some(start) = run.take() {
            spans.push(start..i);
        }
        if !c.is_whitespace() {
            spans.push(i..i + c.len_utf8());
        }
    }
    if let Some(start) = run {
        spans.push(start..text.len());
    }
    spans
}

/// How many tokens `text` holds.
pub fn count_tokens(text: &str) -> u64 {
    token_spans(text).len() as u64
}

/// Cuts `text` into one piece per token, each with the whitespace before it; trailing whitespace
/// joins the last piece. The pieces concatenate back to `text` exactly.
pub fn delta_pieces(text: &str) -> Vec<&str> {
    let spans = token_spans(text);
    let mut start = 0;
    let mut pieces = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let end = if i + 1 == spans.len() {
            text.len()
        } else {
            span.end
        };
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<&str> {
        token_spans(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn ascii_words_are_one_token_each() {
        assert_eq!(tokens("hello world  42x"), ["hello", "world", "42x"]);
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens(" \n\t "), 0);
    }

    #[test]
    fn each_punctuation_mark_is_a_token() {
        assert_eq!(tokens("Hi, there!?"), ["Hi", ",", "there", "!", "?"]);
        assert_eq!(tokens("don't"), ["don", "'", "t"]);
        assert_eq!(tokens("snake_case"), ["snake", "_", "case"]);
    }

    #[test]
    fn each_cjk_character_is_a_token() {
        assert_eq!(tokens("你好,世界"), ["你", "好", ",", "世", "界"]);
        assert_eq!(count_tokens("日本語"), 3);
    }

    #[test]
    fn mixed_text() {
        assert_eq!(
            tokens("GPT4 说:hello, 世界! café"),
            ["GPT4", "说", ":", "hello", ",", "世", "界", "!", "caf", "é"]
        );
    }

    #[test]
    fn pieces_carry_leading_whitespace_and_reassemble() {
        let text = "Mock reply:  hi,\n你好 ";
        let pieces = delta_pieces(text);
        assert_eq!(pieces, ["Mock", " reply", ":", "  hi", ",", "\n你", "好 "]);
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces.len() as u64, count_tokens(text));
        assert!(delta_pieces("   ").is_empty());
    }
}
