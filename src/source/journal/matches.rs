//! Journal matches: a jail's `journal.match` list in journalctl's syntax,
//! checked ([`validate_matches`]) and evaluated on parsed entries
//! ([`Matcher`]) the way journalctl evaluates them.
//!
//! Owns only the syntax and its meaning; it never runs journalctl and never
//! looks at a message's text.

use super::JournalEntry;

/// Why a `journal.match` list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error(
        "a journal source needs at least one match such as \"_SYSTEMD_UNIT=ssh.service\" \
         (reading every journal entry costs a large share of a CPU)"
    )]
    Empty,
    #[error("\"+\" must separate two groups of matches, found it {0}")]
    MisplacedPlus(&'static str),
    #[error("match {0:?} is not FIELD=value")]
    NotFieldValue(String),
    #[error(
        "match {0:?}: the field name must be uppercase letters, digits and '_' \
         (e.g. _SYSTEMD_UNIT=ssh.service)"
    )]
    BadField(String),
    #[error("match {0:?}: the value contains a NUL byte")]
    NulInValue(String),
}

/// Checks a jail's `journal.match` list (for `check` and `spawn`): at least
/// one `FIELD=value`, FIELD made of uppercase letters, digits and `_` (not
/// starting with a digit or `__`), `+` only between two matches.
pub fn validate_matches(matches: &[String]) -> Result<(), MatchError> {
    if matches.is_empty() {
        return Err(MatchError::Empty);
    }
    let mut previous_plus = true;
    for (i, m) in matches.iter().enumerate() {
        if m == "+" {
            if previous_plus {
                let at = if i == 0 {
                    "first"
                } else {
                    "after another \"+\""
                };
                return Err(MatchError::MisplacedPlus(at));
            }
            previous_plus = true;
            continue;
        }
        previous_plus = false;
        let Some((field, value)) = m.split_once('=') else {
            return Err(MatchError::NotFieldValue(m.clone()));
        };
        let valid = !field.is_empty()
            && field.len() <= 64
            && !field.starts_with(|c: char| c.is_ascii_digit())
            && !field.starts_with("__")
            && field
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(MatchError::BadField(m.clone()));
        }
        if value.contains('\0') {
            return Err(MatchError::NulInValue(m.clone()));
        }
    }
    if previous_plus {
        return Err(MatchError::MisplacedPlus("last"));
    }
    Ok(())
}

/// A jail's matches, evaluated on entries the way journalctl does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// OR of groups; a group is an AND over fields of an OR over values.
    groups: Vec<Vec<(String, Vec<Vec<u8>>)>>,
}

impl Matcher {
    /// Compiles journalctl match syntax (see [`validate_matches`]).
    pub fn parse(matches: &[String]) -> Result<Matcher, MatchError> {
        validate_matches(matches)?;
        let mut groups = Vec::new();
        for group in matches.split(|m| m == "+") {
            let mut fields: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            for m in group {
                let Some((field, value)) = m.split_once('=') else {
                    continue;
                };
                let value = value.as_bytes().to_vec();
                match fields.iter_mut().find(|(f, _)| f == field) {
                    Some((_, values)) => values.push(value),
                    None => fields.push((field.to_string(), vec![value])),
                }
            }
            groups.push(fields);
        }
        Ok(Matcher { groups })
    }

    /// Whether the entry matches: some group all of whose fields have one of
    /// their listed values.
    pub fn accepts(&self, entry: &JournalEntry) -> bool {
        self.groups.iter().any(|group| {
            group
                .iter()
                .all(|(field, wanted)| entry.values(field).iter().any(|v| wanted.contains(v)))
        })
    }

    pub(super) fn fields(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(|(f, _)| f.as_str())
    }
}
