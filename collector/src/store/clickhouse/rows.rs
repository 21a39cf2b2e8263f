//! Text on the wire: SQL string literals, TabSeparated answers, and JSON values.

use super::super::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A SQL string literal (ClickHouse escapes: backslash and quote).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// One TabSeparated value, unescaped.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'0') => out.push(0),
            Some(b'b') => out.push(8),
            Some(b'f') => out.push(12),
            Some(b'a') => out.push(7),
            Some(b'v') => out.push(11),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

/// The unescaped fields of a TabSeparated line.
pub fn fields(line: &[u8]) -> Vec<Vec<u8>> {
    line.split(|&b| b == b'\t').map(unescape).collect()
}

/// The lines of a whole TabSeparated answer.
pub fn lines(answer: &str) -> impl Iterator<Item = Vec<Vec<u8>>> + '_ {
    answer
        .split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| fields(line.as_bytes()))
}

/// The lines of a whole TabSeparated answer with binary fields.
pub fn byte_lines(answer: &[u8]) -> impl Iterator<Item = Vec<Vec<u8>>> + '_ {
    answer
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(fields)
}

pub fn corrupt(table: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: table.to_owned(),
        reason: reason.to_string(),
    }
}

/// A numeric field.
pub fn number<T: std::str::FromStr>(table: &str, field: &[u8]) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    std::str::from_utf8(field)
        .map_err(|e| corrupt(table, e))?
        .parse()
        .map_err(|e| corrupt(table, format!("{e}: {:?}", String::from_utf8_lossy(field))))
}

pub fn text(table: &str, field: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(field.to_vec()).map_err(|e| corrupt(table, e))
}

pub fn json<T: DeserializeOwned>(table: &str, field: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(field).map_err(|e| corrupt(table, e))
}

pub fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// JSONEachRow data: one JSON object per line.
pub fn each_row(rows: &[serde_json::Value]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out
}

/// A random 63-bit value (below 2^63, so no tool reads it as negative).
pub fn nonce() -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Backend(format!("no randomness for a nonce: {e}")))?;
    Ok(u64::from_be_bytes(bytes) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_backslash_and_quote() {
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn tab_separated_fields_unescape() {
        let line = b"p1\t{\"a\":\"x\\\\ty\"}\ta\\tb\\nc";
        let f = fields(line);
        assert_eq!(f[0], b"p1");
        assert_eq!(f[1], br#"{"a":"x\ty"}"#.to_vec());
        assert_eq!(f[2], b"a\tb\nc");
    }
}
