//! Time zone abbreviations as fail2ban reads them in dates (`[PDT Apr 16
//! 21:05:29]`, `%Z`): a fixed offset per name, without daylight-saving
//! rules (a `CET` date is never turned into `CEST`), as fail2ban does.
//!
//! Owns the table of names it knows (the common ones, written here from the
//! zones' standard offsets; ambiguous names such as `IST` are left out) and
//! the lookup; it parses no dates.

/// Offset east of UTC, in seconds, of zone abbreviation `name` (upper case
/// as logs write it); `None` for a name it does not know.
pub(super) fn offset_of(name: &[u8]) -> Option<i32> {
    const H: i32 = 3600;
    let minutes = |m: i32| m * 60;
    Some(match name {
        b"Z" | b"UT" | b"UTC" | b"GMT" | b"WET" | b"WT" => 0,
        b"BST" | b"WEST" | b"CET" | b"MET" | b"WAT" => H,
        b"CEST" | b"MEST" | b"EET" | b"CAT" | b"SAST" => 2 * H,
        b"EEST" | b"MSK" | b"EAT" | b"IDT" => 3 * H,
        b"GST" | b"SAMT" => 4 * H,
        b"PKT" | b"YEKT" => 5 * H,
        b"NPT" => 5 * H + minutes(45),
        b"OMST" | b"BTT" => 6 * H,
        b"ICT" | b"WIB" | b"KRAT" => 7 * H,
        b"AWST" | b"HKT" | b"SGT" | b"PHT" | b"MYT" | b"WITA" => 8 * H,
        b"JST" | b"KST" | b"WIT" => 9 * H,
        b"ACST" => 9 * H + minutes(30),
        b"ACDT" => 10 * H + minutes(30),
        b"AEST" | b"ChST" => 10 * H,
        b"AEDT" => 11 * H,
        b"NZST" => 12 * H,
        b"NZDT" => 13 * H,
        b"NDT" => -(2 * H + minutes(30)),
        b"NST" => -(3 * H + minutes(30)),
        b"ADT" | b"ART" | b"BRT" => -3 * H,
        b"AST" | b"EDT" => -4 * H,
        b"EST" | b"CDT" => -5 * H,
        b"CST" | b"MDT" => -6 * H,
        b"MST" | b"PDT" => -7 * H,
        b"PST" | b"AKDT" => -8 * H,
        b"AKST" => -9 * H,
        b"HST" => -10 * H,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_their_standard_offsets_and_unknown_names_none() {
        assert_eq!(offset_of(b"UTC"), Some(0));
        assert_eq!(offset_of(b"PDT"), Some(-7 * 3600));
        assert_eq!(offset_of(b"CEST"), Some(2 * 3600));
        assert_eq!(offset_of(b"NST"), Some(-(3 * 3600 + 1800)));
        assert_eq!(offset_of(b"IST"), None);
        assert_eq!(offset_of(b"ERROR"), None);
        assert_eq!(offset_of(b"pdt"), None);
    }
}
