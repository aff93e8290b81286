use super::*;
use crate::firewall::{Protocol, Verdict};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Condvar, MutexGuard};

/// A backend recording every call; can be told to fail.
#[derive(Default)]
struct Log {
    applies: Vec<Vec<FirewallOp>>,
    setups: Vec<Vec<BanEntry>>,
    intact_calls: usize,
    present_calls: usize,
    /// How long each `intact` takes (nft listing every element).
    intact_cost: Duration,
    /// What `present` answers (then resets to true).
    present: Option<bool>,
    /// Next N `apply` calls fail.
    fail_applies: usize,
    /// Fail any apply that contains this net.
    poison: Option<IpNet>,
    /// What `intact` answers (then resets to true).
    intact: Option<bool>,
    fail_setups: usize,
}

/// Holds `apply` calls while closed (a slow nft run).
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    cv: Condvar,
    /// `apply` calls that found the gate closed.
    held: AtomicUsize,
}

impl Gate {
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.cv.notify_all();
    }

    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        if *closed {
            self.held.fetch_add(1, Ordering::SeqCst);
        }
        while *closed {
            closed = self.cv.wait(closed).unwrap();
        }
    }
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Log>>, Arc<Gate>);

impl Fake {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap()
    }
}

impl Firewall for Fake {
    fn setup(
        &mut self,
        _: &[JailRules],
        bans: &[BanEntry],
        _: UnixTime,
    ) -> Result<(), FirewallError> {
        let mut log = self.log();
        log.setups.push(bans.to_vec());
        if log.fail_setups > 0 {
            log.fail_setups -= 1;
            return Err(FirewallError::Nft("setup says no".into()));
        }
        Ok(())
    }
    fn apply(&mut self, ops: &[FirewallOp], _: UnixTime) -> Result<(), FirewallError> {
        self.1.pass();
        let mut log = self.log();
        log.applies.push(ops.to_vec());
        if log.fail_applies > 0 {
            log.fail_applies -= 1;
            return Err(FirewallError::Nft("Error: busy".into()));
        }
        if let Some(p) = log.poison {
            if ops
                .iter()
                .any(|op| matches!(op, FirewallOp::Ban(b) if b.net == p))
            {
                return Err(FirewallError::Nft(format!("Error: bad element {p}")));
            }
        }
        Ok(())
    }
    fn intact(&mut self, _: &[JailRules]) -> Result<bool, FirewallError> {
        let cost = self.log().intact_cost;
        std::thread::sleep(cost);
        let mut log = self.log();
        log.intact_calls += 1;
        Ok(log.intact.take().unwrap_or(true))
    }
    fn present(&mut self, _: &[JailRules]) -> Result<bool, FirewallError> {
        let mut log = self.log();
        log.present_calls += 1;
        Ok(log.present.take().unwrap_or(true))
    }
}

static CLOCK: AtomicI64 = AtomicI64::new(1_000);
fn clock() -> UnixTime {
    CLOCK.load(Ordering::SeqCst)
}

/// A jail counting /`v4` and /`v6` nets.
fn jail(name: &str, v4: u8, v6: u8) -> JailRules {
    JailRules {
        name: name.into(),
        protocol: Protocol::All,
        ports: vec![],
        verdict: Verdict::Drop,
        ipv4_prefix: v4,
        ipv6_prefix: v6,
        chains: crate::firewall::Chains::default(),
    }
}

/// A jail counting hosts.
fn hosts(name: &str) -> JailRules {
    jail(name, 32, 128)
}

fn ban(jail: &str, net: &str, expires: Option<UnixTime>) -> FirewallOp {
    FirewallOp::Ban(BanEntry {
        jail: jail.into(),
        net: net.parse().unwrap(),
        expires,
    })
}

fn opts(events: Option<UnboundedSender<WorkerEvent>>) -> WorkerOptions {
    WorkerOptions {
        check_interval: Duration::from_secs(3600),
        retry_backoff: Duration::from_millis(1),
        events,
        clock,
        ..WorkerOptions::default()
    }
}

fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<WorkerEvent>) -> WorkerEvent {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match rx.try_recv() {
            Ok(e) => return e,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("no event: {e:?}"),
        }
    }
}

#[test]
fn a_batch_window_collects_messages_arriving_together_into_one_apply() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let initial = vec![BanEntry {
        jail: "ssh".into(),
        net: "198.51.100.1/32".parse().unwrap(),
        expires: None,
    }];
    let o = WorkerOptions {
        batch_window: Duration::from_millis(50),
        ..opts(Some(etx))
    };
    let (h, ready) = spawn_worker(Box::new(fake.clone()), vec![hosts("ssh")], initial, o).unwrap();
    ready.blocking_recv().unwrap().unwrap();
    for i in 0..100u8 {
        h.send(vec![ban("ssh", &format!("192.0.2.{i}/32"), Some(2_000))])
            .unwrap();
    }
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 100, .. }
    ));
    h.send(vec![FirewallOp::Unban {
        jail: "ssh".into(),
        net: "192.0.2.5/32".parse().unwrap(),
    }])
    .unwrap();
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 1, .. }
    ));
    let active = h.active_bans();
    assert_eq!(active.len(), 100, "100 banned + 1 initial - 1 unbanned");
    assert!(nets_of(&active, "ssh").contains(&"198.51.100.1/32".parse().unwrap()));
    h.shutdown();
    let log = fake.log();
    assert_eq!(log.setups.len(), 1);
    assert_eq!(log.setups[0].len(), 1, "initial bans loaded by setup");
    assert_eq!(log.applies.len(), 2);
    assert_eq!(log.applies[0].len(), 100);
}

#[test]
fn a_lone_op_is_applied_at_once_and_ops_queued_during_a_transaction_go_in_the_next() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![hosts("ssh")],
        vec![],
        opts(Some(etx)),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    assert!(WorkerOptions::default().batch_window.is_zero());

    // Idle worker: no waiting for company.
    let started = Instant::now();
    h.send(vec![ban("ssh", "192.0.2.1/32", None)]).unwrap();
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 1, .. }
    ));
    let lone = started.elapsed();
    assert!(lone < Duration::from_millis(500), "{lone:?}");

    // A slow transaction: what arrives meanwhile is one batch afterwards.
    fake.1.set(true);
    h.send(vec![ban("ssh", "192.0.2.2/32", None)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.1.held.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the worker never applied");
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 10..110u8 {
        h.send(vec![ban("ssh", &format!("192.0.2.{i}/32"), None)])
            .unwrap();
    }
    fake.1.set(false);
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 1, .. }
    ));
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 100, .. }
    ));
    h.shutdown();
    let sizes: Vec<usize> = fake.log().applies.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1, 1, 100]);
}

#[test]
fn unknown_jails_and_expired_bans_are_not_sent_and_any_prefix_is() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![hosts("ssh")],
        vec![],
        opts(Some(etx)),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    h.send(vec![
        ban("nope", "192.0.2.1/32", None),
        ban("ssh", "192.0.2.2/32", Some(10)),
        ban("ssh", "192.0.2.0/24", None),
        ban("ssh", "192.0.2.3/32", None),
    ])
    .unwrap();
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 2, .. }
    ));
    h.shutdown();
    assert_eq!(
        fake.log().applies,
        vec![vec![
            ban("ssh", "192.0.2.0/24", None),
            ban("ssh", "192.0.2.3/32", None)
        ]]
    );
}

#[test]
fn other_length_bans_never_send_overlapping_elements() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![jail("net", 16, 64)],
        vec![],
        opts(Some(etx)),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    h.send(vec![ban("net", "192.0.2.1/32", Some(5_000))])
        .unwrap();
    recv(&mut erx);
    h.send(vec![
        ban("net", "192.0.2.0/24", Some(3_000)),
        ban("net", "192.0.2.7/32", Some(2_000)),
    ])
    .unwrap();
    recv(&mut erx);
    h.shutdown();
    let log = fake.log();
    assert_eq!(
        log.applies[1],
        vec![
            FirewallOp::Unban {
                jail: "net".into(),
                net: "192.0.2.1/32".parse().unwrap()
            },
            ban("net", "192.0.2.0/24", Some(5_000)),
        ]
    );
}

#[test]
fn failed_transactions_are_retried_then_reported() {
    let fake = Fake::default();
    fake.log().fail_applies = 2;
    let (etx, mut erx) = unbounded_channel();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![hosts("ssh")],
        vec![],
        opts(Some(etx)),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    h.send(vec![ban("ssh", "192.0.2.1/32", None)]).unwrap();
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 1, .. }
    ));
    assert_eq!(fake.log().applies.len(), 3);
    assert_eq!(
        fake.log().intact_calls,
        1,
        "intact is checked after the first failure"
    );

    // A poisoned element: retries, a rebuild, then bisection isolates it.
    fake.log().poison = Some("192.0.2.66/32".parse().unwrap());
    let ops: Vec<_> = (60..70)
        .map(|i| ban("ssh", &format!("192.0.2.{i}/32"), None))
        .collect();
    h.send(ops).unwrap();
    assert!(matches!(recv(&mut erx), WorkerEvent::Rebuilt { .. }));
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 9, .. }
    ));
    match recv(&mut erx) {
        WorkerEvent::Failed {
            what, ops, error, ..
        } => {
            assert_eq!((what, ops), ("batch", 1));
            assert!(
                error.contains("1 of 10 ops failed") && error.contains("bad element"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    h.shutdown();
}

#[test]
fn rebuilds_when_not_intact_with_current_bans() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let o = WorkerOptions {
        check_interval: Duration::from_millis(30),
        ..opts(Some(etx))
    };
    let (h, ready) = spawn_worker(Box::new(fake.clone()), vec![hosts("ssh")], vec![], o).unwrap();
    ready.blocking_recv().unwrap().unwrap();
    h.send(vec![
        ban("ssh", "192.0.2.1/32", None),
        ban("ssh", "192.0.2.2/32", Some(500)),
    ])
    .unwrap();
    assert!(matches!(recv(&mut erx), WorkerEvent::Applied { .. }));
    fake.log().intact = Some(false);
    assert!(matches!(recv(&mut erx), WorkerEvent::Rebuilt { .. }));
    h.shutdown();
    let log = fake.log();
    let last = log.setups.last().unwrap();
    assert_eq!(last.len(), 1, "the expired ban is not reloaded: {last:?}");
    assert_eq!(last[0].net, "192.0.2.1/32".parse::<IpNet>().unwrap());
}

/// A full check that costs 20 ms runs at most every 2 s (1% of the time);
/// the checks between only ask whether the table is there, and a missing
/// table found that way is rebuilt too.
#[test]
fn slow_full_checks_are_spaced_and_cheap_checks_fill_in() {
    let fake = Fake::default();
    fake.log().intact_cost = Duration::from_millis(20);
    let (etx, mut erx) = unbounded_channel();
    let o = WorkerOptions {
        check_interval: Duration::from_millis(1),
        ..opts(Some(etx))
    };
    let started = Instant::now();
    let (h, ready) = spawn_worker(Box::new(fake.clone()), vec![hosts("ssh")], vec![], o).unwrap();
    ready.blocking_recv().unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.log().present_calls < 50 {
        assert!(Instant::now() < deadline, "no cheap checks");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (full, elapsed) = (fake.log().intact_calls, started.elapsed());
    assert!(full >= 1, "the first check is a full one");
    assert!(
        full as f64 <= elapsed.as_secs_f64() / 2.0 + 2.0,
        "{full} full checks in {elapsed:?}"
    );
    fake.log().present = Some(false);
    assert!(matches!(recv(&mut erx), WorkerEvent::Rebuilt { .. }));
    h.shutdown();
}

#[test]
fn failed_initial_setup_is_reported_and_retried() {
    let fake = Fake::default();
    fake.log().fail_setups = 1;
    let (etx, mut erx) = unbounded_channel();
    let o = WorkerOptions {
        check_interval: Duration::from_millis(20),
        ..opts(Some(etx))
    };
    let (h, ready) = spawn_worker(Box::new(fake.clone()), vec![hosts("ssh")], vec![], o).unwrap();
    assert!(ready.blocking_recv().unwrap().is_err());
    assert!(matches!(recv(&mut erx), WorkerEvent::Rebuilt { .. }));
    h.shutdown();
}

#[test]
fn reconfigure_reruns_setup_and_drops_removed_jails() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![hosts("a"), hosts("b")],
        vec![],
        opts(Some(etx)),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    h.send(vec![
        ban("a", "192.0.2.1/32", None),
        ban("b", "192.0.2.2/32", None),
    ])
    .unwrap();
    recv(&mut erx);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(h.reconfigure(vec![jail("a", 24, 64)])).unwrap();
    assert_eq!(
        nets_of(&h.active_bans(), "a"),
        vec!["192.0.2.1/32".parse::<IpNet>().unwrap()]
    );
    assert!(nets_of(&h.active_bans(), "b").is_empty());
    fake.log().fail_setups = 1;
    assert!(matches!(
        rt.block_on(h.reconfigure(vec![jail("a", 24, 64)])),
        Err(WorkerError::Firewall(_))
    ));
    let sender = h.sender();
    h.shutdown();
    assert!(
        sender.send(WorkerMsg::Shutdown).is_err(),
        "the worker is gone"
    );
    assert_eq!(fake.log().setups[1].len(), 1);
}

#[test]
fn a_changed_prefix_sorts_the_bans_anew() {
    let fake = Fake::default();
    let (etx, mut erx) = unbounded_channel();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![jail("a", 24, 64)],
        vec![],
        opts(Some(etx)),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    // At /24 the /24 is exact and the host another length: both kept.
    h.send(vec![
        ban("a", "10.0.0.0/24", Some(5_000)),
        ban("a", "10.0.0.5/32", Some(9_000)),
    ])
    .unwrap();
    assert!(matches!(
        recv(&mut erx),
        WorkerEvent::Applied { ops: 2, .. }
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // At /16 both are other lengths: the /24 swallows the host and its expiry.
    rt.block_on(h.reconfigure(vec![jail("a", 16, 64)])).unwrap();
    let active = h.active_bans();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].net, "10.0.0.0/24".parse::<IpNet>().unwrap());
    assert_eq!(active[0].expires, Some(9_000));
    h.shutdown();
}

#[test]
fn shutdown_applies_what_is_queued_first() {
    let fake = Fake::default();
    let o = WorkerOptions {
        batch_window: Duration::from_secs(10),
        ..opts(None)
    };
    let (h, ready) = spawn_worker(Box::new(fake.clone()), vec![hosts("ssh")], vec![], o).unwrap();
    ready.blocking_recv().unwrap().unwrap();
    h.send(vec![ban("ssh", "192.0.2.1/32", None)]).unwrap();
    let started = Instant::now();
    h.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown cuts the batch window short"
    );
    assert_eq!(fake.log().applies.len(), 1);
}

#[test]
fn an_awaited_change_returns_after_its_transaction_applied_and_with_its_error() {
    let fake = Fake::default();
    let (h, ready) = spawn_worker(
        Box::new(fake.clone()),
        vec![hosts("ssh")],
        vec![],
        opts(None),
    )
    .unwrap();
    ready.blocking_recv().unwrap().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let h = Arc::new(h);

    // nft is slow: the caller is still waiting while the transaction runs.
    fake.1.set(true);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = {
        let h = Arc::clone(&h);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let result = rt.block_on(h.apply(vec![ban("ssh", "192.0.2.1/32", None)]));
            done_tx.send(result.map_err(|e| e.to_string())).unwrap();
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.1.held.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the worker never applied");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        done_rx.try_recv().is_err(),
        "answered before the transaction applied"
    );
    fake.1.set(false);
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Ok(())
    );
    waiter.join().unwrap();
    assert_eq!(fake.log().applies.len(), 1);

    // A transaction that fails for good comes back as an error.
    fake.log().poison = Some("192.0.2.2/32".parse().unwrap());
    let err = rt
        .block_on(h.apply(vec![ban("ssh", "192.0.2.2/32", None)]))
        .unwrap_err();
    assert!(
        err.to_string().contains("bad element 192.0.2.2/32"),
        "{err}"
    );
    // Nothing to change returns at once, without a transaction.
    let applies = fake.log().applies.len();
    rt.block_on(h.apply(vec![])).unwrap();
    assert_eq!(fake.log().applies.len(), applies);
}
