//! The journal reader's parsing, matching and restarts, without journald.

use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn entry(json: &str) -> JournalEntry {
    JournalEntry::parse_json(json.as_bytes()).unwrap()
}

#[test]
fn validate_matches_needs_field_value_terms() {
    assert!(validate_matches(&strings(&["_SYSTEMD_UNIT=ssh.service"])).is_ok());
    assert!(validate_matches(&strings(&[
        "_SYSTEMD_UNIT=a",
        "+",
        "SYSLOG_IDENTIFIER=sshd",
        "PRIORITY="
    ]))
    .is_ok());
    for bad in [
        &[][..],
        &["+"][..],
        &["+", "A=1"],
        &["A=1", "+"],
        &["A=1", "+", "+", "B=2"],
        &["_systemd_unit=x"],
        &["NOEQUALS"],
        &["=x"],
        &["1A=x"],
        &["__CURSOR=x"],
        &["-f"],
        &["A B=x"],
    ] {
        assert!(validate_matches(&strings(bad)).is_err(), "{bad:?} accepted");
    }
    let e = validate_matches(&[]).unwrap_err();
    assert!(e.to_string().contains("at least one match"), "{e}");
}

#[test]
fn matcher_follows_journalctl_semantics() {
    let m = Matcher::parse(&strings(&[
        "_SYSTEMD_UNIT=a.service",
        "_SYSTEMD_UNIT=b.service",
        "PRIORITY=3",
        "+",
        "SYSLOG_IDENTIFIER=x",
    ]))
    .unwrap();
    let yes = [
        r#"{"_SYSTEMD_UNIT":"a.service","PRIORITY":"3"}"#,
        r#"{"_SYSTEMD_UNIT":"b.service","PRIORITY":"3"}"#,
        r#"{"SYSLOG_IDENTIFIER":"x"}"#,
        r#"{"_SYSTEMD_UNIT":["c.service","b.service"],"PRIORITY":"3"}"#,
    ];
    let no = [
        r#"{"_SYSTEMD_UNIT":"a.service","PRIORITY":"6"}"#,
        r#"{"_SYSTEMD_UNIT":"a.service"}"#,
        r#"{"_SYSTEMD_UNIT":"c.service","PRIORITY":"3"}"#,
        r#"{"SYSLOG_IDENTIFIER":"y"}"#,
        r#"{}"#,
    ];
    for j in yes {
        assert!(m.accepts(&entry(j)), "{j} refused");
    }
    for j in no {
        assert!(!m.accepts(&entry(j)), "{j} accepted");
    }
    let fields: BTreeSet<&str> = m.fields().collect();
    assert_eq!(
        fields.into_iter().collect::<Vec<_>>(),
        ["PRIORITY", "SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT"]
    );
}

#[test]
fn entries_parse_all_json_value_forms() {
    let e = entry(
        r#"{"MESSAGE":[102,97,105,108,255,10],"A":["x",[121,122],null],"B":null,"C":[],"__REALTIME_TIMESTAMP":"1700000000999999","__CURSOR":"s=1;i=2"}"#,
    );
    assert_eq!(e.first("MESSAGE"), Some(&b"fail\xff\n"[..]));
    assert_eq!(e.values("A"), [b"x".to_vec(), b"yz".to_vec()]);
    assert!(e.values("B").is_empty() && e.first("Z").is_none());
    assert_eq!(e.values("C"), [Vec::<u8>::new()]);
    assert_eq!(e.time(), Some(1_700_000_000));
    assert_eq!(e.cursor(), Some("s=1;i=2"));
    assert_eq!(e.line().unwrap(), b"fail\xff");
    assert!(JournalEntry::parse_json(br#"{"M":[1,256]}"#).is_err());
    assert!(JournalEntry::parse_json(b"[1]").is_err());
    assert!(JournalEntry::parse_json(b"{").is_err());
}

#[test]
fn lines_look_like_syslog_without_date_and_host() {
    let line = |j: &str| String::from_utf8(entry(j).line().unwrap()).unwrap();
    assert_eq!(
        line(r#"{"SYSLOG_IDENTIFIER":"sshd","_PID":"12","SYSLOG_PID":"13","MESSAGE":"m"}"#),
        "sshd[12]: m"
    );
    assert_eq!(
        line(r#"{"SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"13","MESSAGE":"m"}"#),
        "sshd[13]: m"
    );
    assert_eq!(
        line(r#"{"SYSLOG_IDENTIFIER":"kernel","MESSAGE":"m"}"#),
        "kernel: m"
    );
    assert_eq!(line(r#"{"_PID":"1","MESSAGE":"m"}"#), "m");
    assert_eq!(
        line(r#"{"MESSAGE":"a\nsshd[1]: forged\r\n\n"}"#),
        "a sshd[1]: forged"
    );
    assert!(entry(r#"{"SYSLOG_IDENTIFIER":"x"}"#).line().is_none());
}

fn feed(specs: &[(SourceId, &[&str])], since: Option<UnixTime>) -> JournalFeed {
    let specs: Vec<_> = specs
        .iter()
        .map(|(id, m)| (*id, Matcher::parse(&strings(m)).unwrap()))
        .collect();
    JournalFeed {
        journalctl: PathBuf::from("journalctl"),
        files: vec![PathBuf::from("/j/a.journal")],
        follow: true,
        match_args: strings(&["A=1", "+", "B=2"]),
        output_fields: "A,B,MESSAGE".to_string(),
        start: Start::Since(100),
        fallback: 50,
        since,
        max_line: 20,
        specs,
        cutter: Cutter::new(JSON_MAX),
        cursor: SharedCursor(Arc::new(Mutex::new(None))),
        read_this_run: false,
        bad_json: 0,
        path: Arc::new(PathBuf::from("journal")),
    }
}

#[test]
fn journalctl_arguments_follow_the_start() {
    let mut f = feed(&[(0, &["A=1"])], None);
    let args = |f: &JournalFeed| {
        f.args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let common =
        "--follow --output=json --all --no-pager --output-fields=A,B,MESSAGE --file=/j/a.journal";
    assert_eq!(
        args(&f),
        format!("{common} --since=@100 --no-tail A=1 + B=2")
    );
    f.start = Start::Cursor("s=x;i=1".into());
    assert_eq!(
        args(&f),
        format!("{common} --after-cursor=s=x;i=1 --no-tail A=1 + B=2")
    );
    assert!(f.exited(false, "Failed to seek to cursor: Invalid argument"));
    assert_eq!(f.start, Start::Since(50));
    f.follow = false;
    assert!(!f.exited(true, ""));
}

#[test]
fn batches_route_entries_and_carry_the_cursor_last() {
    let mut f = feed(&[(4, &["A=1"]), (5, &["A=1", "+", "B=2"])], Some(1000));
    let mut out = Vec::new();
    let data = concat!(
        r#"{"A":"1","MESSAGE":"both","__REALTIME_TIMESTAMP":"2000000000","__CURSOR":"c1"}"#,
        "\n",
        r#"{"B":"2","MESSAGE":"second only","__REALTIME_TIMESTAMP":"2000000000","__CURSOR":"c2"}"#,
        "\n",
        r#"{"A":"1","MESSAGE":"too old","__REALTIME_TIMESTAMP":"999000000","__CURSOR":"c3"}"#,
        "\n",
        r#"{"A":"1","MESSAGE":"far too long for the cap","__REALTIME_TIMESTAMP":"2000000000","__CURSOR":"c4"}"#,
        "\n",
        "garbage\n",
        r#"{"A":"1","MESSAGE":"part"#,
    );
    f.data(data.as_bytes(), &mut out);
    let summary: Vec<String> = out
        .iter()
        .map(|ev| match ev {
            SourceEvent::Entries {
                source,
                entries,
                cursor,
            } => {
                let texts: Vec<_> = entries
                    .iter()
                    .map(|(ts, l)| format!("{ts}:{}", String::from_utf8_lossy(l)))
                    .collect();
                format!("{source} {texts:?} {cursor:?}")
            }
            SourceEvent::Skipped { source, count, .. } => format!("{source} skipped {count}"),
            ev => format!("{ev:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "4 skipped 1",
            "5 skipped 1",
            r#"4 ["2000:both"] None"#,
            r#"5 ["2000:both", "2000:second only"] Some("c4")"#,
        ]
    );
    assert_eq!(f.start, Start::Cursor("c4".into()));
    assert_eq!(f.bad_json, 1);
    // Only old entries: the cursor still moves, in an empty batch.
    // The partial line completes; without a cursor of its own, no cursor is sent.
    out.clear();
    f.data(b"\"}\n", &mut out);
    assert!(
        matches!(
            &out[..],
            [
                SourceEvent::Entries {
                    source: 4,
                    cursor: None,
                    ..
                },
                SourceEvent::Entries {
                    source: 5,
                    cursor: None,
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    out.clear();
    f.data(
        concat!(
            r#"{"A":"1","MESSAGE":"old","__REALTIME_TIMESTAMP":"1000","__CURSOR":"c9"}"#,
            "\n"
        )
        .as_bytes(),
        &mut out,
    );
    assert!(
        matches!(&out[..], [SourceEvent::Entries { source: 4, entries, cursor: Some(c) }] if entries.is_empty() && c == "c9")
    );
    assert_eq!(f.cursor.lock().as_deref(), Some("c9"));
}
