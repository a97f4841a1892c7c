//! The journal's tests: its lines, and the durable table as a whole.

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod lines {
    use super::super::*;

    #[test]
    fn every_line_reads_back() {
        let duid = vec![0, 1, 2, 0xff];
        let addr = LeaseAddr::Address("2001:db8::5".parse().unwrap());
        let pfx = LeaseAddr::Prefix {
            prefix: "2001:db8:100::".parse().unwrap(),
            len: 56,
        };
        let lease = LocalLease {
            client: Some(ClientKey::new(&duid, IaKind::Na, 7)),
            cltt: Some(UnixTime(1_800_000_000)),
            start_time_of_state: Some(UnixTime(1_800_000_001)),
            state_expiration_time: Some(UnixTime(1_800_000_600)),
            expiration_time: None,
            acked_partner_lifetime: Some(UnixTime(1_800_000_900)),
            partner_lifetime: Some(UnixTime(1_800_001_000)),
            partner_raw_clt_time: Some(UnixTime(1_799_999_990)),
            update_sent: true,
            update_partner: true,
            ..LocalLease::new(BindingStatus::Active)
        };
        let client = ClientBinding {
            duid: duid.clone(),
            ias: vec![
                IaBinding {
                    kind: IaKind::Na,
                    iaid: 7,
                    leases: vec![(addr, 300, 600)],
                },
                IaBinding {
                    kind: IaKind::Pd,
                    iaid: 8,
                    leases: vec![],
                },
                IaBinding {
                    kind: IaKind::Pd,
                    iaid: 9,
                    leases: vec![(pfx, 1, 2), (addr, 3, 4)],
                },
            ],
        };
        let lines = [
            Line::Lease(addr, lease, Some((duid.clone(), IaKind::Na, 7))),
            Line::Lease(pfx, LocalLease::new(BindingStatus::Free), None),
            Line::LeaseGone(pfx),
            Line::Client(3, client.clone()),
            Line::Client(
                4,
                ClientBinding {
                    duid: vec![9],
                    ias: vec![],
                },
            ),
            Line::ClientGone(3),
            Line::NextHandle(12),
        ];
        let mut out = String::new();
        for l in &lines {
            match l {
                Line::Lease(a, r, p) => put_lease(&mut out, *a, r, p.as_ref()),
                Line::LeaseGone(a) => put_lease_gone(&mut out, *a),
                Line::Client(h, c) => put_client(&mut out, *h, c),
                Line::ClientGone(h) => put_client_gone(&mut out, *h),
                Line::NextHandle(n) => put_next_handle(&mut out, *n),
            }
        }
        let back: Vec<Line> = out.lines().map(|l| decode(l).unwrap()).collect();
        assert_eq!(back, lines, "{out}");
        // A record naming an unknown client comes back without one.
        let mut out = String::new();
        put_lease(&mut out, addr, &lease, None);
        assert!(out.contains(" ? "), "{out}");
        match decode(out.trim_end()).unwrap() {
            Line::Lease(_, r, None) => assert_eq!(r.client, None),
            other => panic!("{other:?}"),
        }
        assert!(decode("L 2001:db8::/56 2 - - - - - - - - 0 1").is_some());
        for bad in [
            "",
            "L 2001:db8::5 2 - - - - - - - - 2 0",
            "L 2001:db8::5 2 - - - - - - - - 0",
            "L 2001:db8::5 2 - - - - - - - - 0 0 extra",
            "L 2001:db8::/129 2 - - - - - - - - 0 0",
            "C 1 0g",
            "C x 00",
            "Z 1",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}

/// The durable table as a whole: [`MemoryStore6::open`] and [`MemoryStore6::sync`].
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod table_tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    use failover_fsm::Role;
    use failover_fsm::v6::allocate::Endpoint;
    use failover_proto::v6::ServerState;

    use super::super::*;
    use crate::v6::MemoryStore6;

    static SEQ: AtomicU64 = AtomicU64::new(0);

    /// A temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let d = std::env::temp_dir().join(format!(
                "failover-v6-journal-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }

        fn file(&self) -> PathBuf {
            self.0.join("leases6")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn address(n: u16) -> LeaseAddr {
        LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))
    }

    fn prefix(n: u16) -> LeaseAddr {
        LeaseAddr::Prefix {
            prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 0),
            len: 56,
        }
    }

    fn duid(n: u16) -> Vec<u8> {
        let [a, b] = n.to_be_bytes();
        vec![0, 3, 0, 1, 2, 0, 0x5e, 0, a, b]
    }

    const NOW: UnixTime = UnixTime(1_800_000_000);

    /// Everything the table answers: records, handles, and each client's binding.
    type View = (
        Vec<(LeaseAddr, LocalLease)>,
        Vec<u32>,
        Vec<(u32, ClientBinding)>,
    );

    fn view(t: &MemoryStore6, clients: u16) -> View {
        let handles: Vec<u32> = t.handles().into_iter().map(|h| h.0).collect();
        let bindings = (0..clients)
            .filter_map(|n| t.client(&duid(n)).map(|(h, c)| (h.0, c.clone())))
            .collect();
        (t.records(), handles, bindings)
    }

    fn pools(t: &mut MemoryStore6) {
        for n in 1..=16 {
            t.add_pool_lease(address(n));
        }
        for n in 1..=4 {
            t.add_pool_lease(prefix(n));
        }
    }

    /// A client's binding recorded with `update`, as an application would.
    fn record(t: &mut MemoryStore6, client: u16, lease: LeaseAddr, at: u32) {
        let (kind, iaid) = match lease {
            LeaseAddr::Address(_) => (IaKind::Na, 1),
            LeaseAddr::Prefix { .. } => (IaKind::Pd, 2),
        };
        let d = duid(client);
        let r = LocalLease {
            client: Some(ClientKey::new(&d, kind, iaid)),
            cltt: Some(NOW.plus(at)),
            start_time_of_state: Some(NOW.plus(at)),
            state_expiration_time: Some(NOW.plus(at + 600)),
            partner_lifetime: Some(NOW.plus(at + 900)),
            ..LocalLease::new(BindingStatus::Active)
        };
        t.update(
            ClientBinding {
                duid: d,
                ias: vec![IaBinding {
                    kind,
                    iaid,
                    leases: vec![(lease, 300, 600)],
                }],
            },
            [(lease, r)],
        );
    }

    fn primary() -> Endpoint {
        Endpoint {
            role: Role::Primary,
            state: ServerState::Normal,
            state_since: UnixTime(NOW.0 - 7200),
            mclt: 600,
        }
    }

    fn lines(path: &Path) -> u64 {
        std::fs::read_to_string(path).unwrap().lines().count() as u64
    }

    #[test]
    fn a_reopened_journal_gives_back_the_table() {
        let dir = TempDir::new();
        let table = Mutex::new(MemoryStore6::open(dir.file()).unwrap());
        assert!(!table.lock().unwrap().reopened(), "a new file");
        {
            let mut t = table.lock().unwrap();
            pools(&mut t);
            record(&mut t, 1, address(2), 0);
            record(&mut t, 2, prefix(1), 5);
        }
        MemoryStore6::sync(&table).unwrap();
        {
            let mut t = table.lock().unwrap();
            // A grant by the rules, an ack of the partner, a release, and a lease moving
            // from one client to another.
            let (h, granted) = t
                .grant(
                    &primary(),
                    600,
                    &duid(3),
                    (IaKind::Na, 9),
                    address(3),
                    3600,
                    false,
                    NOW,
                )
                .unwrap();
            assert!(granted > 0 && h.0 == 3);
            t.store_ack(
                address(2),
                Some(BindingStatus::Active),
                Some(failover_proto::v6::time::from_unix(u64::from(NOW.0) + 900).unwrap()),
                NOW,
            );
            assert!(
                t.release(&duid(2), prefix(1), false, NOW.plus(60))
                    .is_some()
            );
            record(&mut t, 4, address(2), 70);
        }
        MemoryStore6::sync(&table).unwrap();
        let before = view(&table.lock().unwrap(), 6);
        assert_eq!(before.2.len(), 4);
        drop(table);

        let again = MemoryStore6::open(dir.file()).unwrap();
        assert!(again.reopened());
        assert_eq!(view(&again, 6), before, "replay gives back the table");
        // What the partner may not have goes again (`LocalLease::unacknowledged`): the
        // bindings holding such a lease — client 3's grant, client 2's RELEASED prefix, the
        // address recorded for client 4 (not acked).
        let mut again = again;
        let mut expected: Vec<u32> = again
            .records()
            .into_iter()
            .filter(|(_, r)| r.unacknowledged())
            .filter_map(|(a, _)| again.holder(a).map(|h| h.0))
            .collect();
        expected.sort_unstable();
        expected.dedup();
        let resend: Vec<u32> = again.take_resends().into_iter().map(|h| h.0).collect();
        assert_eq!(resend, expected);
        assert!(resend.contains(&2) && resend.contains(&3), "{resend:?}");
        assert!(again.take_resends().is_empty(), "once");
        // Handles are not given twice.
        let table = Mutex::new(again);
        record(&mut table.lock().unwrap(), 5, address(4), 80);
        assert_eq!(table.lock().unwrap().client(&duid(5)).unwrap().0.0, 5);
        // A change not synced is not in the file.
        record(&mut table.lock().unwrap(), 6, address(6), 90);
        drop(table);
        let t = MemoryStore6::open(dir.file()).unwrap();
        assert!(t.client(&duid(6)).is_none());
        assert_eq!(t.handles().len(), 4, "client 5 was not synced either");
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let dir = TempDir::new();
        let table = Mutex::new(MemoryStore6::open(dir.file()).unwrap());
        pools(&mut table.lock().unwrap());
        record(&mut table.lock().unwrap(), 1, address(2), 0);
        MemoryStore6::sync(&table).unwrap();
        let before = view(&table.lock().unwrap(), 2);
        drop(table);
        let whole = std::fs::metadata(dir.file()).unwrap().len();
        // A crash in the middle of an append.
        let mut f = OpenOptions::new().append(true).open(dir.file()).unwrap();
        f.write_all(b"L 2001:db8::2 3 - 1800000").unwrap();
        drop(f);
        let table = Mutex::new(MemoryStore6::open(dir.file()).unwrap());
        assert_eq!(view(&table.lock().unwrap(), 2), before);
        assert_eq!(
            std::fs::metadata(dir.file()).unwrap().len(),
            whole,
            "cut off"
        );
        // What is appended next is not glued to it.
        record(&mut table.lock().unwrap(), 1, address(4), 10);
        MemoryStore6::sync(&table).unwrap();
        let after = view(&table.lock().unwrap(), 2);
        drop(table);
        assert_eq!(view(&MemoryStore6::open(dir.file()).unwrap(), 2), after);
        assert_ne!(after, before);
        // A leftover compaction is removed; a file of something else is not opened.
        std::fs::write(compact_path(&dir.file()), "half").unwrap();
        MemoryStore6::open(dir.file()).unwrap();
        assert!(!compact_path(&dir.file()).exists());
        std::fs::write(dir.file(), "lease 1 2 3\n").unwrap();
        assert_eq!(
            MemoryStore6::open(dir.file()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A torn header is a new file.
        std::fs::write(dir.file(), &MAGIC[..5]).unwrap();
        assert!(!MemoryStore6::open(dir.file()).unwrap().reopened());
    }

    #[test]
    fn compaction_keeps_the_file_within_twice_the_table() {
        let dir = TempDir::new();
        let table = Mutex::new(MemoryStore6::open(dir.file()).unwrap());
        pools(&mut table.lock().unwrap());
        MemoryStore6::sync(&table).unwrap();
        let mut most = 0;
        for i in 0..2_500u32 {
            let n = (i % 16) as u16 + 1;
            record(&mut table.lock().unwrap(), n % 5, address(n), i);
            MemoryStore6::sync(&table).unwrap();
            most = most.max(lines(&dir.file()));
        }
        let t = table.lock().unwrap();
        let live = (t.records().len() + t.handles().len()) as u64 + 1;
        // The header, and a batch of at most 3 lines (record, binding, next handle) appended
        // before the bound is checked again.
        assert!(
            most <= 2 * live + COMPACT_SLACK + 1 + 3,
            "{most} lines for {live} keys"
        );
        assert!(t.compactions() >= 3, "{} compactions", t.compactions());
        let before = view(&t, 5);
        drop(t);
        drop(table);
        assert_eq!(view(&MemoryStore6::open(dir.file()).unwrap(), 5), before);
    }

    #[test]
    fn a_failed_write_is_an_error_and_the_next_sync_writes_the_table_whole() {
        let dir = TempDir::new();
        let table = Mutex::new(MemoryStore6::open(dir.file()).unwrap());
        pools(&mut table.lock().unwrap());
        MemoryStore6::sync(&table).unwrap();
        let journal = table.lock().unwrap().journal().unwrap();
        journal.fail_writes.store(true, Ordering::Release);
        record(&mut table.lock().unwrap(), 1, address(2), 0);
        assert!(MemoryStore6::sync(&table).is_err(), "not silent");
        // Nothing more changed, but the change before is still not durable.
        assert!(MemoryStore6::sync(&table).is_err());
        record(&mut table.lock().unwrap(), 2, address(4), 1);
        assert!(MemoryStore6::sync(&table).is_err());
        // No half line was left behind.
        let text = std::fs::read_to_string(dir.file()).unwrap();
        assert!(text.ends_with('\n') && text.lines().all(|l| l == MAGIC || decode(l).is_some()));
        journal.fail_writes.store(false, Ordering::Release);
        MemoryStore6::sync(&table).unwrap();
        assert_eq!(table.lock().unwrap().compactions(), 1, "written whole");
        let before = view(&table.lock().unwrap(), 3);
        assert_eq!(before.2.len(), 2);
        drop(table);
        assert_eq!(view(&MemoryStore6::open(dir.file()).unwrap(), 3), before);
    }

    #[test]
    fn concurrent_syncs_share_one_fsync() {
        let dir = TempDir::new();
        let table = std::sync::Arc::new(Mutex::new(MemoryStore6::open(dir.file()).unwrap()));
        pools(&mut table.lock().unwrap());
        MemoryStore6::sync(&table).unwrap();
        let journal = table.lock().unwrap().journal().unwrap();
        let before = journal.fsyncs();
        // Each round: 8 callers change the table, then all sync at once. The first sync's
        // batch takes every change, the others find nothing left and wait for its fsync.
        const ROUNDS: u64 = 20;
        let changed = std::sync::Arc::new(std::sync::Barrier::new(8));
        let synced = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8u16)
            .map(|k| {
                let (table, changed, synced) = (table.clone(), changed.clone(), synced.clone());
                std::thread::spawn(move || {
                    for i in 0..ROUNDS as u32 {
                        record(&mut table.lock().unwrap(), k, address(k + 1), i);
                        changed.wait();
                        MemoryStore6::sync(&table).unwrap();
                        synced.wait();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            journal.fsyncs() - before,
            ROUNDS,
            "one fsync per round of 8 syncs"
        );
        let before = view(&table.lock().unwrap(), 8);
        drop(table);
        assert_eq!(view(&MemoryStore6::open(dir.file()).unwrap(), 8), before);
        // Syncs that do not share a batch overlap their fsyncs and end in order.
        let table = std::sync::Arc::new(Mutex::new(MemoryStore6::open(dir.file()).unwrap()));
        let threads: Vec<_> = (0..4u16)
            .map(|k| {
                let table = table.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        record(&mut table.lock().unwrap(), k, address(k + 1), 100 + i);
                        MemoryStore6::sync(&table).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let before = view(&table.lock().unwrap(), 8);
        drop(table);
        assert_eq!(view(&MemoryStore6::open(dir.file()).unwrap(), 8), before);
    }
}
