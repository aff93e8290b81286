//! One journal entry: the JSON line `journalctl -o json` prints for it,
//! parsed into its fields, and the syslog-like line the filters see.
//!
//! Owns the JSON forms of a field (string, byte array, null, repeated) and
//! the `IDENT[PID]: MESSAGE` rendering; it never routes entries and never
//! matches them against a jail.

use std::collections::HashMap;

use serde_json::Value;

use crate::UnixTime;

/// Why a line of journalctl's output is not an entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not a JSON object: {0}")]
    NotObject(#[source] serde_json::Error),
    #[error("field {0}: bad value")]
    BadValue(String),
}

/// One journal entry as printed by `journalctl -o json`: every field with
/// its values (a field may repeat; a value may be binary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalEntry {
    fields: HashMap<String, Vec<Vec<u8>>>,
}

impl JournalEntry {
    /// Parses one JSON line. A field's value is a string, an array of byte
    /// numbers (binary or non-UTF-8 data), `null` (too large to print), or
    /// an array of those when the field repeats.
    pub fn parse_json(line: &[u8]) -> Result<JournalEntry, EntryError> {
        let map: serde_json::Map<String, Value> =
            serde_json::from_slice(line).map_err(EntryError::NotObject)?;
        let mut fields = HashMap::with_capacity(map.len());
        for (name, value) in map {
            let values = json_values(&value).ok_or_else(|| EntryError::BadValue(name.clone()))?;
            fields.insert(name, values);
        }
        Ok(JournalEntry { fields })
    }

    /// All values of `field` (empty if absent).
    pub fn values(&self, field: &str) -> &[Vec<u8>] {
        self.fields.get(field).map_or(&[], Vec::as_slice)
    }

    /// The first value of `field`.
    pub fn first(&self, field: &str) -> Option<&[u8]> {
        self.values(field).first().map(Vec::as_slice)
    }

    pub fn cursor(&self) -> Option<&str> {
        self.first("__CURSOR")
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    /// `__REALTIME_TIMESTAMP` (µs) in seconds.
    pub fn time(&self) -> Option<UnixTime> {
        let us: u64 = std::str::from_utf8(self.first("__REALTIME_TIMESTAMP")?)
            .ok()?
            .parse()
            .ok()?;
        UnixTime::try_from(us / 1_000_000).ok()
    }

    /// The line fed to the filter: `IDENT[PID]: MESSAGE` (PID from `_PID`,
    /// else `SYSLOG_PID`, left out with its brackets if neither exists), or
    /// just `MESSAGE` without `SYSLOG_IDENTIFIER`. Trailing newlines are
    /// dropped and inner ones become spaces: one entry is one line, and a
    /// message cannot forge a line of its own. None without `MESSAGE`.
    pub fn line(&self) -> Option<Vec<u8>> {
        let message = self.first("MESSAGE")?;
        let mut line = Vec::with_capacity(message.len() + 32);
        if let Some(ident) = self.first("SYSLOG_IDENTIFIER") {
            line.extend_from_slice(ident);
            if let Some(pid) = self.first("_PID").or_else(|| self.first("SYSLOG_PID")) {
                line.push(b'[');
                line.extend_from_slice(pid);
                line.push(b']');
            }
            line.extend_from_slice(b": ");
        }
        let end = message
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |i| i + 1);
        line.extend_from_slice(&message[..end]);
        for b in &mut line {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        Some(line)
    }
}

/// The values of one JSON field (None if it is not journalctl's form).
fn json_values(value: &Value) -> Option<Vec<Vec<u8>>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::String(s) => Some(vec![s.as_bytes().to_vec()]),
        Value::Array(items) if items.iter().all(Value::is_number) => Some(vec![json_bytes(items)?]),
        Value::Array(items) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Null => {}
                    Value::String(s) => values.push(s.as_bytes().to_vec()),
                    Value::Array(bytes) => values.push(json_bytes(bytes)?),
                    _ => return None,
                }
            }
            Some(values)
        }
        Value::Number(n) => Some(vec![n.to_string().into_bytes()]),
        Value::Bool(_) | Value::Object(_) => None,
    }
}

/// A binary value: an array of numbers 0..=255.
fn json_bytes(items: &[Value]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}
