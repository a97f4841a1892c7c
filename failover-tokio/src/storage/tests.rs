//! Tests of the stores (a module of `storage`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::file::compact_path;
use super::log_format::{Record, decode_record, encode_record, put_lease, put_u32};
use super::*;
use failover_fsm::{ServerState, UnixTime};
use failover_proto::IpFlags;

/// The lease line as the `format!`-based encoder wrote it before the in-place writers:
/// logs written by either read the same.
fn lease_line_as_before(l: &Lease) -> String {
    let opt = |v: Option<UnixTime>| v.map_or_else(|| "-".to_string(), |t| t.0.to_string());
    let hex = |b: &[u8]| {
        if b.is_empty() {
            "=".to_string()
        } else {
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        }
    };
    let b = &l.data;
    let (htype, hw) = b
        .hardware_address
        .as_ref()
        .map_or(("-".to_string(), "-".to_string()), |(t, a)| {
            (t.to_string(), hex(a))
        });
    let fields = format!(
        "{} {} {} {} {} {} {} {} {} {} end",
        Ipv4Addr::from(b.address),
        u8::from(b.status),
        b.client_identifier
            .as_ref()
            .map_or_else(|| "-".to_string(), |c| hex(c)),
        htype,
        hw,
        opt(b.lease_expiration_time),
        opt(b.potential_expiration_time),
        opt(b.start_time_of_state),
        opt(b.client_last_transaction_time),
        b.ip_flags.0,
    );
    format!(
        "lease {} {} {} {} {} {} {} {} {} {} {} {} end",
        fields,
        u8::from(l.local.status),
        opt(l.local.cltt),
        opt(l.local.lease_expiration),
        opt(l.local.start_time_of_state),
        opt(l.local.sent_pet),
        opt(l.local.acked_pet),
        opt(l.local.received_pet),
        l.local
            .partner_status
            .map_or_else(|| "-".to_string(), |p| u8::from(p).to_string()),
        u8::from(l.local.reserved),
        u8::from(l.local.bootp),
        u8::from(l.partner_has_it),
    )
}

#[test]
fn lease_lines_are_written_as_before() {
    let fresh = LeaseRecord::fresh(Ipv4Addr::new(192, 0, 2, 1));
    let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, 7), BindingStatus::Active)
        .with_client(Some(&[1, 2, 0xfe]), 1, &[0xaa, 0xbb, 0xcc, 0, 1, 2])
        .unwrap();
    b.lease_expiration_time = Some(UnixTime(100));
    b.potential_expiration_time = Some(UnixTime(4_000_000_000));
    b.start_time_of_state = Some(UnixTime(0));
    b.ip_flags = IpFlags::RESERVED;
    let mut full = LeaseRecord::fresh(Ipv4Addr::new(192, 0, 2, 7));
    full.apply_local(b.clone(), true);
    full.local.partner_status = Some(BindingStatus::Backup);
    full.local.acked_pet = Some(UnixTime(7));
    full.partner_has_it = true;
    let mut empty_id = full.clone();
    empty_id.data.client_identifier = Some(heapless::Vec::new());
    empty_id.data.hardware_address = None;
    for n in [0, 9, 10, 99, 100, 65_535, 1_700_000_000, u32::MAX] {
        let mut line = String::new();
        put_u32(&mut line, n);
        assert_eq!(line, n.to_string());
    }
    for l in [fresh, full, empty_id] {
        let mut line = String::new();
        put_lease(&mut line, &l);
        assert_eq!(line, lease_line_as_before(&l));
        assert_eq!(encode_record(&Record::Lease(Box::new(l))), line);
    }
}

#[test]
fn records_round_trip_through_the_log_format() {
    let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, 7), BindingStatus::Active)
        .with_client(Some(&[1, 2, 3]), 1, &[0xaa, 0xbb, 0xcc, 0, 1, 2])
        .unwrap();
    b.lease_expiration_time = Some(UnixTime(100));
    b.potential_expiration_time = Some(UnixTime(150));
    b.ip_flags = IpFlags::RESERVED;
    let v = Verdict {
        store_as: BindingStatus::Active,
        lease_expiration: Some(UnixTime(100)),
        received_pet: None,
        client_changed: false,
        superseded_xid: Some(9),
        ours_in_flight: false,
        ours_dropped: false,
        taken_as_newer: false,
        ours_wins_tie: false,
        partner_time_shift: 0,
        skew_margin: 0,
    };
    for r in [
        Record::State(Persisted {
            state: ServerState::RecoverWait,
            since: UnixTime(5),
            mclt: Some(60),
            last_operational: None,
            lease_table_lost: false,
        }),
        Record::State(Persisted {
            state: ServerState::Recover,
            since: UnixTime(7),
            mclt: None,
            last_operational: Some(UnixTime(6)),
            lease_table_lost: true,
        }),
        Record::Received(b.clone(), v),
        Record::Local(b.clone()),
        Record::Acked([192, 0, 2, 7], BindingStatus::Expired, Some(UnixTime(3))),
    ] {
        let line = encode_record(&r);
        let back = decode_record(&line).unwrap();
        assert_eq!(encode_record(&back), line);
    }
    // A torn line is skipped.
    let line = encode_record(&Record::Local(b));
    assert!(decode_record(&line[..line.len() - 2]).is_none());
}

/// A crash in the middle of an append leaves a torn last line; the records appended after
/// the restart must not be glued to it (and lost at the next replay).
#[test]
fn an_update_sent_again_does_not_undo_a_newer_change() {
    let a = Ipv4Addr::new(192, 0, 2, 3);
    let store = MemoryStore::new(Role::Primary, Ipv4Addr::new(192, 0, 2, 0), 8);
    let mut released = BindingData::new(a, BindingStatus::Released)
        .with_client(None, 1, &[2, 0, 0, 0, 0, 3])
        .unwrap();
    released.client_last_transaction_time = Some(UnixTime(50));
    let v = Verdict {
        store_as: BindingStatus::Free,
        lease_expiration: None,
        received_pet: None,
        client_changed: false,
        superseded_xid: None,
        ours_in_flight: false,
        ours_dropped: false,
        taken_as_newer: false,
        ours_wins_tie: false,
        partner_time_shift: 0,
        skew_margin: 0,
    };
    assert_eq!(
        store.commit_binding(&released, &v).unwrap(),
        Received::Stored
    );
    assert_eq!(store.get(a).unwrap().local.status, BindingStatus::Free);
    // Our change after it: the address goes to the secondary's pool.
    let backup = BindingData::new(a, BindingStatus::Backup);
    store.record_local(&backup).unwrap();
    // The partner's BNDACK for its RELEASED was lost; it sends it again. Ours is handed
    // back to be queued again (the engine dropped its copy as older).
    assert_eq!(
        store.commit_binding(&released, &v).unwrap(),
        Received::KeptOurs(backup)
    );
    let l = store.get(a).unwrap();
    assert_eq!(
        (l.local.status, l.data.status),
        (BindingStatus::Backup, BindingStatus::Backup)
    );
    assert!(!l.partner_has_it, "ours still goes out");
    // A different update from the partner is applied as usual.
    let mut again = released.clone();
    again.client_last_transaction_time = Some(UnixTime(60));
    assert_eq!(store.commit_binding(&again, &v).unwrap(), Received::Stored);
    assert_eq!(store.get(a).unwrap().local.status, BindingStatus::Free);
}

#[test]
fn a_torn_last_line_does_not_swallow_the_next_record() {
    let path =
        std::env::temp_dir().join(format!("failover-storage-torn-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let first = Ipv4Addr::new(192, 0, 2, 0);
    let mut a = BindingData::new(Ipv4Addr::new(192, 0, 2, 1), BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, 0, 1])
        .unwrap();
    a.lease_expiration_time = Some(UnixTime(1000));
    let verdict = |b: &BindingData| Verdict {
        store_as: b.status,
        lease_expiration: b.lease_expiration_time,
        received_pet: None,
        client_changed: false,
        superseded_xid: None,
        ours_in_flight: false,
        ours_dropped: false,
        taken_as_newer: false,
        ours_wins_tie: false,
        partner_time_shift: 0,
        skew_margin: 0,
    };
    let store = FileStore::open(&path, Role::Secondary, first, 4).unwrap();
    store.commit_binding(&a, &verdict(&a)).unwrap();
    store.sync().unwrap();
    drop(store);
    // The crash: half of the next record reached the file, and some bytes that are not
    // even text.
    let mut b = a.clone();
    b.address = [192, 0, 2, 2];
    let torn = encode_record(&Record::Received(b.clone(), verdict(&b)));
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(torn.as_bytes().get(..torn.len() / 2).unwrap())
        .unwrap();
    f.write_all(&[0xff, 0xfe]).unwrap();
    drop(f);
    // Restart: what was acknowledged is there, the torn record is not; then a new record.
    let store = FileStore::open(&path, Role::Secondary, first, 4).unwrap();
    assert_eq!(store.memory().get(a.ip()).unwrap().data, a);
    assert_eq!(
        store.memory().get(b.ip()).unwrap().data.status,
        BindingStatus::Free
    );
    let mut c = a.clone();
    c.address = [192, 0, 2, 3];
    store.commit_binding(&c, &verdict(&c)).unwrap();
    store.sync().unwrap();
    drop(store);
    // The next restart still has it.
    let store = FileStore::open(&path, Role::Secondary, first, 4).unwrap();
    assert_eq!(store.memory().get(a.ip()).unwrap().data, a);
    assert_eq!(store.memory().get(c.ip()).unwrap().data, c);
    drop(store);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_long_running_log_is_compacted_and_replays_to_the_same_table() {
    let path = std::env::temp_dir().join(format!(
        "failover-storage-compact-{}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let first = Ipv4Addr::new(192, 0, 2, 0);
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count() as u64;
    let store = FileStore::open(&path, Role::Primary, first, 8).unwrap();
    let live = 8 + 1;
    let bound = 2 * live + FileStore::COMPACT_SLACK;
    let mut state = Persisted {
        state: ServerState::Normal,
        since: UnixTime(1),
        mclt: Some(3600),
        last_operational: None,
        lease_table_lost: false,
    };
    // Each round renews one lease and records a heartbeat (two records, one fsync): a
    // compaction about every 520 rounds.
    let rounds = 1_300;
    for i in 0..rounds {
        let mut b = BindingData::new(
            Ipv4Addr::new(192, 0, 2, (i % 8) as u8),
            BindingStatus::Active,
        )
        .with_client(None, 1, &[2, 0, 0, 0, 0, (i % 8) as u8])
        .unwrap();
        b.lease_expiration_time = Some(UnixTime(10_000 + i));
        store.record_local(&b).unwrap();
        state.last_operational = Some(UnixTime(i));
        store.persist_state(&state).unwrap();
        store.sync().unwrap();
        // The compaction goes on aside; once it has ended the log is within the bound.
        let _ = store.compactions();
        assert!(lines(&path) <= bound, "round {i}: {} lines", lines(&path));
    }
    assert!(store.compactions() >= 2, "{}", store.compactions());
    assert!(!compact_path(&path).exists());
    let before = store.memory().snapshot();
    drop(store);
    let store = FileStore::open(&path, Role::Primary, first, 8).unwrap();
    assert_eq!(store.load_state(), Some(state));
    let after = store.memory().snapshot();
    assert_eq!(before.len(), after.len());
    for (a, l) in &before {
        assert_eq!(after.get(a).map(|x| &x.data), Some(&l.data), "{a:?}");
    }
    drop(store);
    // A compaction cut short by a crash leaves its file behind: ignored and removed.
    std::fs::write(compact_path(&path), b"state 3 garbage\n").unwrap();
    let store = FileStore::open(&path, Role::Primary, first, 8).unwrap();
    assert_eq!(store.load_state(), Some(state));
    assert!(!compact_path(&path).exists());
    drop(store);
    let _ = std::fs::remove_file(&path);
}

/// Syncs from several threads at once (the task overlaps a few): each returns with the
/// record changed before it in the log, whichever sync wrote it, across compactions; the log
/// replays to the same table.
#[test]
fn overlapping_syncs_each_return_with_their_records_in_the_log() {
    let path = std::env::temp_dir().join(format!(
        "failover-storage-overlap-{}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let first = Ipv4Addr::new(192, 0, 2, 0);
    let store = Arc::new(FileStore::open(&path, Role::Primary, first, 8).unwrap());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let store = store.clone();
            let path = path.clone();
            std::thread::spawn(move || {
                for round in 0..300u32 {
                    let mut b =
                        BindingData::new(Ipv4Addr::new(192, 0, 2, t), BindingStatus::Active)
                            .with_client(None, 1, &[2, 0, 0, 0, 0, t])
                            .unwrap();
                    b.lease_expiration_time = Some(UnixTime(10_000 + round));
                    store.record_local(&b).unwrap();
                    store.sync().unwrap();
                    let newest = FileStore::history(&path)
                        .unwrap()
                        .into_iter()
                        .filter(|l| l.data.address == b.address)
                        .filter_map(|l| l.data.lease_expiration_time)
                        .max();
                    assert!(
                        newest >= b.lease_expiration_time,
                        "thread {t} round {round}: {newest:?}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(store.compactions() >= 1, "{}", store.compactions());
    let before = store.memory().snapshot();
    drop(store);
    let store = FileStore::open(&path, Role::Primary, first, 8).unwrap();
    let after = store.memory().snapshot();
    for t in 0..4u8 {
        let a = [192, 0, 2, t];
        assert_eq!(
            after.get(&a).map(|x| &x.data),
            before.get(&a).map(|x| &x.data)
        );
        assert_eq!(
            after.get(&a).and_then(|x| x.data.lease_expiration_time),
            Some(UnixTime(10_299))
        );
    }
    drop(store);
    let _ = std::fs::remove_file(&path);
}

/// A compaction writes its copy on its own thread, outside the log's lock: neither the sync
/// that starts it nor one started meanwhile waits for it, and the latter's record is in the
/// new log (and survives a reopen).
#[test]
fn a_sync_does_not_wait_for_a_compaction_and_its_record_reaches_the_new_log() {
    let path = std::env::temp_dir().join(format!(
        "failover-storage-compact-aside-{}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let first = Ipv4Addr::new(192, 0, 2, 0);
    let store = Arc::new(FileStore::open(&path, Role::Primary, first, 8).unwrap());
    let lease = |i: u32, a: u8| {
        let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, a), BindingStatus::Active)
            .with_client(None, 1, &[2, 0, 0, 0, 0, a])
            .unwrap();
        b.lease_expiration_time = Some(UnixTime(10_000 + i));
        b
    };
    // Up to the compaction threshold, one record a sync.
    let live = 8 + 1;
    let mut i = 0;
    while i < 2 * live as u32 + FileStore::COMPACT_SLACK as u32 {
        store.record_local(&lease(i, (i % 4) as u8)).unwrap();
        store.sync().unwrap();
        i += 1;
    }
    assert_eq!(store.compactions(), 0);
    let (release, gate) = std::sync::mpsc::channel();
    *store.compaction_gate.lock().unwrap() = Some(gate);
    // This sync's record passes the threshold: it starts a compaction, which stops at the gate.
    let (started, first_synced) = std::sync::mpsc::channel();
    let compacting = {
        let store = store.clone();
        let b = lease(i, 0);
        std::thread::spawn(move || {
            store.record_local(&b).unwrap();
            store.sync().unwrap();
            started.send(()).unwrap();
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !compact_path(&path).exists() || store.compaction_gate.lock().unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction started"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Meanwhile another address changes and is synced, in another thread (a sync that waited
    // for the compaction would not return before the gate opens).
    let (done, synced) = std::sync::mpsc::channel();
    let other = {
        let store = store.clone();
        let b = lease(i + 1, 7);
        std::thread::spawn(move || {
            store.record_local(&b).unwrap();
            store.sync().unwrap();
            done.send(()).unwrap();
        })
    };
    let returned = synced.recv_timeout(std::time::Duration::from_secs(10));
    let first_returned = first_synced.recv_timeout(std::time::Duration::from_secs(1));
    release.send(()).unwrap();
    compacting.join().unwrap();
    other.join().unwrap();
    assert!(returned.is_ok(), "the sync waited for the compaction");
    assert!(
        first_returned.is_ok(),
        "the sync that started the compaction waited for it"
    );
    assert_eq!(store.compactions(), 1);
    assert!(!compact_path(&path).exists());
    let before = store.memory().snapshot();
    drop(store);
    let store = FileStore::open(&path, Role::Primary, first, 8).unwrap();
    let after = store.memory().snapshot();
    assert_eq!(
        after
            .get(&[192, 0, 2, 7])
            .and_then(|l| l.data.lease_expiration_time),
        Some(UnixTime(10_000 + i + 1))
    );
    for (a, l) in &before {
        assert_eq!(after.get(a).map(|x| &x.data), Some(&l.data), "{a:?}");
    }
    drop(store);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_history_holds_each_version_and_leaves_a_live_log_alone() {
    let path = std::env::temp_dir().join(format!(
        "failover-storage-history-{}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let store = FileStore::open(&path, Role::Primary, Ipv4Addr::new(192, 0, 2, 0), 4).unwrap();
    let mut a = BindingData::new(Ipv4Addr::new(192, 0, 2, 1), BindingStatus::Active)
        .with_client(None, 1, &[2, 0, 0, 0, 0, 1])
        .unwrap();
    a.lease_expiration_time = Some(UnixTime(1000));
    a.potential_expiration_time = Some(UnixTime(1500));
    store.record_local(&a).unwrap();
    store.sync().unwrap();
    let update = UpdateId(1);
    store.binding_queued(a.address, update, false).unwrap();
    let ack = Ack {
        update,
        status: BindingStatus::Active,
        client: store.memory().get(a.ip()).unwrap().local.client,
        potential_expiration_time: Some(UnixTime(1500)),
    };
    store.binding_acked(a.address, &ack).unwrap();
    store.sync().unwrap();
    // A write under way: half a line.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"lease 192.0.2.2 1").unwrap();
    drop(f);
    let len = std::fs::metadata(&path).unwrap().len();
    let history = FileStore::history(&path).unwrap();
    let acked: Vec<Option<UnixTime>> = history
        .iter()
        .filter(|l| l.data.address == a.address)
        .map(|l| l.local.acked_pet)
        .collect();
    assert_eq!(acked, [None, Some(UnixTime(1500))]);
    assert_eq!(history.len(), 2);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "nothing cut");
    drop(store);
    let _ = std::fs::remove_file(&path);
}

/// A small xorshift generator: the randomized index test is deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items
            .get(usize::try_from(self.below(items.len() as u64)).unwrap())
            .unwrap()
    }

    fn time(&mut self) -> Option<UnixTime> {
        match self.below(4) {
            0 => None,
            _ => Some(UnixTime(
                1_000_000 + u32::try_from(self.below(400)).unwrap(),
            )),
        }
    }
}

const STATUSES: [BindingStatus; 7] = [
    BindingStatus::Free,
    BindingStatus::Active,
    BindingStatus::Expired,
    BindingStatus::Released,
    BindingStatus::Abandoned,
    BindingStatus::Reset,
    BindingStatus::Backup,
];

/// Client `k`: none (0), a client identifier and a hardware address (1–3), a hardware address
/// alone (4–5, the same as 1–2's: `same_client` then compares those).
fn identity(k: u64) -> failover_fsm::accept::ClientIdentity {
    use failover_fsm::accept::ClientIdentity;
    use failover_proto::HardwareAddress;
    let mac = |i: u8| [0x02, 0, 0, 0, 0, i];
    match k {
        0 => ClientIdentity::NONE,
        1..=3 => {
            let m = mac(k as u8);
            ClientIdentity::new(
                Some(&[k as u8][..]),
                Some(HardwareAddress {
                    htype: 1,
                    address: &m,
                }),
            )
        }
        _ => {
            let m = mac(k as u8 - 3);
            ClientIdentity::new(
                None,
                Some(HardwareAddress {
                    htype: 1,
                    address: &m,
                }),
            )
        }
    }
}

fn random_local(rng: &mut Rng) -> LocalBinding {
    let status = rng.pick(&STATUSES);
    let mut l = LocalBinding::new(status);
    l.client = identity(rng.below(6));
    l.lease_expiration = rng.time();
    l.start_time_of_state = rng.time();
    l.sent_pet = rng.time();
    l.acked_pet = rng.time();
    l.received_pet = rng.time();
    l.partner_status = match rng.below(3) {
        0 => None,
        _ => Some(rng.pick(&STATUSES)),
    };
    l.reserved = rng.below(12) == 0;
    l
}

fn random_endpoint(rng: &mut Rng) -> failover_fsm::policy::Endpoint {
    use ServerState::*;
    use failover_fsm::Dialect;
    failover_fsm::policy::Endpoint {
        dialect: rng.pick(&[Dialect::Isc, Dialect::Draft]),
        role: rng.pick(&[Role::Primary, Role::Secondary]),
        state: rng.pick(&[
            Normal,
            Normal,
            CommunicationsInterrupted,
            PartnerDown,
            PartnerDown,
            ResolutionInterrupted,
            ConflictDone,
            Recover,
            Startup,
        ]),
        state_since: UnixTime(1_000_000 + u32::try_from(rng.below(200)).unwrap()),
        partner_state: None,
        mclt: rng.pick(&[0, 10, 60, 3600]),
        lease_mclt: 60,
    }
}

/// The store's indexed choice, its pool counts and its ended leases are what the library's
/// rules give over the whole table, after every change of a randomly changed table.
fn check_index_against_the_rules(seed: u64, store: &MemoryStore, first: Ipv4Addr) {
    use failover_fsm::policy::choose_address;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for step in 0..150 {
        // Change one record as the store's own paths would (each keeps the index in step).
        let a = Ipv4Addr::from(u32::from(first) + u32::try_from(rng.below(24)).unwrap());
        match rng.below(6) {
            0 => {
                let mut b = BindingData::new(a, rng.pick(&STATUSES));
                b.lease_expiration_time = rng.time();
                store.record_local(&b).unwrap();
            }
            1 => {
                let update = UpdateId(rng.next());
                store.binding_queued(a.octets(), update, false).unwrap();
                store.binding_rejected(a.octets(), update);
            }
            _ => {
                let local = random_local(&mut rng);
                store.lock().update(a.octets(), |l| l.local = local);
            }
        }
        let all = store.snapshot();
        assert_eq!(
            store.pool_counts(),
            PoolCounts::of(all.values()),
            "seed {seed} step {step}"
        );
        let now = UnixTime(1_000_000 + u32::try_from(rng.below(500)).unwrap());
        let mut ended: Vec<[u8; 4]> = store.expired(now).iter().map(|b| b.address).collect();
        ended.sort_unstable();
        let expected: Vec<[u8; 4]> = all
            .values()
            .filter_map(|l| l.expired(now))
            .map(|b| b.address)
            .collect();
        assert_eq!(ended, expected, "seed {seed} step {step}");
        for _ in 0..4 {
            let ep = random_endpoint(&mut rng);
            let me = identity(1 + rng.below(5));
            let requested = match rng.below(3) {
                0 => None,
                _ => Some(Ipv4Addr::from(
                    u32::from(first) + u32::try_from(rng.below(26)).unwrap(),
                )),
            };
            // The caller's own exclusions: a few addresses offered to somebody else.
            let offered = rng.next();
            let skip = |a: Ipv4Addr| (offered >> (u32::from(a) % 64)) & 7 == 0;
            let pool = all
                .values()
                .filter(|l| !skip(l.data.ip()))
                .map(|l| (l.data.ip(), l.local));
            let whole = choose_address(&ep, pool, &me, requested, now);
            let indexed = store
                .choose_address(&ep, &me, requested, now, |a, _| skip(a))
                .map(|l| l.data.ip());
            assert_eq!(
                indexed, whole,
                "seed {seed} step {step}: {ep:?} client {me:?} requested {requested:?} at {now:?}"
            );
        }
    }
}

#[test]
fn the_choice_within_one_pool_is_the_rules_choice_over_that_pool() {
    use failover_fsm::policy::choose_address;
    let (a, b) = (Ipv4Addr::new(192, 0, 2, 0), Ipv4Addr::new(198, 51, 100, 0));
    let store = MemoryStore::with_pools(Role::Primary, &[(a, 12), (b, 12)]);
    let mut rng = Rng(7);
    for step in 0..2_000 {
        let pool = if rng.below(2) == 0 { a } else { b };
        let pick = |rng: &mut Rng| {
            let first = if rng.below(2) == 0 { a } else { b };
            Ipv4Addr::from(u32::from(first) + u32::try_from(rng.below(12)).unwrap())
        };
        let changed = pick(&mut rng);
        let local = random_local(&mut rng);
        store.lock().update(changed.octets(), |l| l.local = local);
        let last = Ipv4Addr::from(u32::from(pool) + 11);
        let ep = random_endpoint(&mut rng);
        let me = identity(1 + rng.below(5));
        // The client's own address and the one it asks for may be in the other pool.
        let requested = (rng.below(2) == 0).then(|| pick(&mut rng));
        let now = UnixTime(1_000_000 + u32::try_from(rng.below(500)).unwrap());
        let all = store.snapshot();
        let in_pool = all
            .values()
            .filter(|l| (pool..=last).contains(&l.data.ip()))
            .map(|l| (l.data.ip(), l.local));
        let rule = choose_address(&ep, in_pool, &me, requested, now);
        let indexed = store
            .choose_address_within(pool..=last, &ep, &me, requested, now, |_, _| false)
            .map(|l| l.data.ip());
        assert_eq!(
            indexed, rule,
            "step {step}: pool {pool} {ep:?} {me:?} {requested:?}"
        );
    }
    assert_eq!(store.snapshot().len(), 24);
}

#[test]
fn each_pool_is_counted_and_balanced_on_its_own() {
    use failover_fsm::policy::{BalanceConfig, BalanceTrigger, plan_balance};
    let (a, b) = (Ipv4Addr::new(192, 0, 2, 0), Ipv4Addr::new(198, 51, 100, 0));
    let store = MemoryStore::with_pools(Role::Primary, &[(b, 4), (a, 20)]);
    assert_eq!(store.pool_count(), 2);
    // Sorted by address: pool 0 is `a`.
    assert_eq!(store.pool_counts_of(0).free, 20);
    assert_eq!(store.pool_counts_of(1).free, 4);
    let now = UnixTime(1_000_000);
    for pool in 0..2 {
        let counts = store.pool_counts_of(pool);
        let plan = plan_balance(
            Role::Primary,
            failover_fsm::ServerState::Normal,
            counts,
            &BalanceConfig::default(),
            BalanceTrigger::Manual,
        )
        .unwrap();
        let moved = store.move_to_partner_in(pool, &plan, now).unwrap();
        let first = if pool == 0 { a } else { b };
        assert_eq!(moved.len() as u32, plan.to_move());
        assert!(moved.iter().all(|m| {
            let ip = m.ip();
            (u32::from(first)..u32::from(first) + 24).contains(&u32::from(ip))
        }));
    }
    // Half of each pool is the partner's now.
    assert_eq!(store.pool_counts_of(0).backup, 10);
    assert_eq!(store.pool_counts_of(1).backup, 2);
    // One pool: the whole store's counts.
    let one = MemoryStore::new(Role::Primary, a, 8);
    assert_eq!(
        (one.pool_count(), one.pool_counts_of(0)),
        (1, one.pool_counts())
    );
}

#[test]
fn the_indexed_choice_is_the_rules_choice_over_the_whole_table() {
    let first = Ipv4Addr::new(192, 0, 2, 0);
    for seed in 1..=300 {
        let store = MemoryStore::new(Role::Primary, first, 24);
        check_index_against_the_rules(seed, &store, first);
    }
}

/// Balancing takes the same addresses whether the allocation indexes were built (a DHCP
/// server's store, after its first offer) or not (a store that only mirrors the partner): the
/// first finds them in the index, the second in the table.
#[test]
fn balancing_moves_the_same_addresses_with_or_without_the_allocation_indexes() {
    use failover_fsm::policy::{BalanceConfig, BalanceTrigger, plan_balance};
    let first = Ipv4Addr::new(192, 0, 2, 0);
    let stores = [
        MemoryStore::new(Role::Primary, first, 40),
        MemoryStore::new(Role::Primary, first, 40),
    ];
    // Only the second builds its allocation indexes, before the changes (kept through them).
    let [_, indexed] = &stores;
    let _ = indexed.expired(UnixTime(1));
    for store in &stores {
        for i in (0..40u8).step_by(3) {
            let mut b = BindingData::new(Ipv4Addr::new(192, 0, 2, i), BindingStatus::Active)
                .with_client(None, 1, &[2, 0, 0, 0, 0, i])
                .unwrap();
            b.lease_expiration_time = Some(UnixTime(5_000 + u32::from(i)));
            store.record_local(&b).unwrap();
        }
    }
    let [without, with]: [Vec<[u8; 4]>; 2] = stores.each_ref().map(|store| {
        let plan = plan_balance(
            Role::Primary,
            failover_fsm::ServerState::Normal,
            store.pool_counts(),
            &BalanceConfig::default(),
            BalanceTrigger::Manual,
        )
        .unwrap();
        store
            .move_to_partner(&plan, UnixTime(1_000))
            .unwrap()
            .iter()
            .map(|b| b.address)
            .collect()
    });
    assert!(!without.is_empty());
    assert_eq!(without, with);
    let [a, b] = &stores;
    assert_eq!(a.pool_counts(), b.pool_counts());
}
