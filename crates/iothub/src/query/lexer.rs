//! Tokens of the query language: words, quoted strings, numbers, operators, punctuation,
//! each with its 1-based character column.

use super::{CompareOp, QueryError, QueryErrorKind, error};
use serde_json::Number;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
    Word(String),
    Str(String),
    Num(Number, String),
    Op(CompareOp),
    Star,
    Comma,
    Dot,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    End,
}

impl Token {
    pub(super) fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("'{}'", w.escape_debug()),
            Token::Str(_) => "a string".into(),
            Token::Num(_, text) => format!("the number {text}"),
            Token::Op(_) => "a comparison operator".into(),
            Token::Star => "'*'".into(),
            Token::Comma => "','".into(),
            Token::Dot => "'.'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::OpenBracket => "'['".into(),
            Token::CloseBracket => "']'".into(),
            Token::End => "the end of the query".into(),
        }
    }

    pub(super) fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits the query into tokens with their 1-based column.
pub(super) fn tokenize(sql: &str) -> Result<Vec<(Token, usize)>, QueryError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let pos = i + 1;
        let next = chars.get(i + 1).copied();
        let after_dot = matches!(tokens.last(), Some((Token::Dot, _)));
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '*' => Token::Star,
            ',' => Token::Comma,
            '.' => Token::Dot,
            '(' => Token::Open,
            ')' => Token::Close,
            '[' => Token::OpenBracket,
            ']' => Token::CloseBracket,
            '=' => Token::Op(CompareOp::Eq),
            '!' if next == Some('=') => {
                i += 1;
                Token::Op(CompareOp::Ne)
            }
            '<' => match next {
                Some('>') => {
                    i += 1;
                    Token::Op(CompareOp::Ne)
                }
                Some('=') => {
                    i += 1;
                    Token::Op(CompareOp::Le)
                }
                _ => Token::Op(CompareOp::Lt),
            },
            '>' if next == Some('=') => {
                i += 1;
                Token::Op(CompareOp::Ge)
            }
            '>' => Token::Op(CompareOp::Gt),
            '\'' | '"' => {
                let (text, end) = string_literal(&chars, i)?;
                i = end;
                Token::Str(text)
            }
            // After a dot anything word-like is a segment name, even "1stFloor".
            c if is_word_start(c) || (after_dot && is_word_char(c)) => {
                let mut end = i;
                while end < chars.len() && is_word_char(chars[end]) {
                    end += 1;
                }
                i = end - 1;
                Token::Word(chars[start..end].iter().collect())
            }
            c if c.is_ascii_digit() || c == '-' => {
                let end = number_end(&chars, i);
                let text: String = chars[start..end].iter().collect();
                i = end - 1;
                match parse_number(&text) {
                    Some(n) => Token::Num(n, text),
                    None => return Err(error(pos, QueryErrorKind::BadNumber(text))),
                }
            }
            other => return Err(error(pos, QueryErrorKind::UnexpectedChar(other))),
        };
        tokens.push((token, pos));
        i += 1;
    }
    tokens.push((Token::End, chars.len() + 1));
    Ok(tokens)
}

/// A quoted string starting at `start`. Azure documents the escapes `\'`, `\"`, `\\` and
/// `\uXXXX`; a quote doubled inside the string stands for itself too, as SQL writes it.
/// Returns the text and the index of the closing quote.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(error(start + 1, QueryErrorKind::UnterminatedString)),
            Some('\\') => {
                let (c, len) = escape(chars, i)?;
                text.push(c);
                i += len;
            }
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    text.push(quote);
                    i += 2;
                } else {
                    return Ok((text, i));
                }
            }
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

/// The character an escape at `at` (a backslash) stands for, and the escape's length.
fn escape(chars: &[char], at: usize) -> Result<(char, usize), QueryError> {
    let bad = |len: usize| {
        let end = (at + len).min(chars.len());
        error(
            at + 1,
            QueryErrorKind::BadEscape(chars[at..end].iter().collect()),
        )
    };
    match chars.get(at + 1) {
        Some(&c @ ('\'' | '"' | '\\')) => Ok((c, 2)),
        Some('u') => {
            let hex: String = chars.iter().skip(at + 2).take(4).collect();
            if hex.len() != 4 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(2 + hex.chars().count()));
            }
            u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .map(|c| (c, 6))
                .ok_or_else(|| bad(6))
        }
        _ => Err(bad(2)),
    }
}

/// End (exclusive) of a number token: sign, digits, fraction, exponent; anything word-like
/// glued to it is included so "12ab" is one bad number, not two tokens.
fn number_end(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        let exponent_sign = (c == '+' || c == '-') && matches!(chars[i - 1], 'e' | 'E');
        if c.is_alphanumeric() || c == '.' || c == '_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn parse_number(text: &str) -> Option<Number> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    // Azure documents hexadecimal literals: "0x" and hex digits.
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        let n = i64::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.starts_with(['+', '-']))?;
        return Some(Number::from(if digits.len() < text.len() { -n } else { n }));
    }
    let well_formed = !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && digits.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return None;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::from(i));
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(Number::from_f64)
}
