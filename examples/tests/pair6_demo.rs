//! The `pair6` demo (`cargo run --example pair6`), run in-process with a short MCLT.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::Duration;

use failover_examples::console::Console;
use failover_examples::pair6::{Pair6Options, Parsed, parse_args, run};
use failover_fsm::ServerState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_story_passes() {
    let opts = Pair6Options {
        mclt: 2,
        quiet: false,
    };
    let (console, out) = Console::capture(false);
    let report = tokio::time::timeout(Duration::from_secs(60), run(&opts, &console))
        .await
        .expect("the demo finishes within a minute");
    let text = out.text();
    assert!(report.passed(), "{text}");
    assert_eq!(report.checks.len(), 12, "{text}");
    assert_eq!(
        report.final_states,
        [ServerState::Normal, ServerState::Normal],
        "{text}"
    );
    // RECOVER-WAIT lasted the MCLT, twice over for the secondary.
    assert!(report.elapsed >= Duration::from_secs(4), "{text}");

    // The secondary's two runs: a cold start, then a restart that goes through RECOVER.
    use ServerState::*;
    let recovery = [
        (Startup, Recover),
        (Recover, RecoverWait),
        (RecoverWait, RecoverDone),
        (RecoverDone, Normal),
    ];
    let twice: Vec<_> = recovery.iter().chain(recovery.iter()).copied().collect();
    let mut it = report.transitions[1].iter();
    assert!(
        twice.iter().all(|w| it.any(|t| t == w)),
        "{:?}",
        report.transitions[1]
    );

    // The timeline tells the story in order.
    let order = [
        "1. cold start",
        "connected to the secondary at 127.0.0.1:",
        "CONNECT",
        "partner's STATE: RECOVER",
        "RECOVER → RECOVER-WAIT",
        "RECOVER-DONE → NORMAL",
        "✓ both peers NORMAL after a cold start",
        "✓ the secondary holds its share of the delegable prefixes, FREE-BACKUP on both sides: 2001:db8:103::/56, 2001:db8:104::/56",
        "2. client A asks the primary",
        "✓ granted 2001:db8::1 for",
        "✓ the secondary's lease table holds client A's address and prefix",
        "✓ the secondary, renew responsive in NORMAL (§8.8.1), refuses new client B",
        "3. the secondary crashes",
        "NORMAL → COMMUNICATIONS-INTERRUPTED",
        "✓ primary COMMUNICATIONS-INTERRUPTED",
        "COMMUNICATIONS-INTERRUPTED → PARTNER-DOWN",
        "✓ primary PARTNER-DOWN",
        "✓ the primary, PARTNER-DOWN, gives client C 2001:db8::3",
        "5. the secondary restarts from its state file",
        "✓ state file read back: NORMAL since",
        "partner's STATE: PARTNER-DOWN",
        "STARTUP → RECOVER",
        "✓ secondary RECOVER",
        "PARTNER-DOWN → NORMAL",
        "✓ both NORMAL again",
        "✓ lease tables identical (3 leases held",
        "2001:db8::3",
        "client C",
        "final states: primary NORMAL, secondary NORMAL",
        "PASS — 12/12 checks",
    ];
    let mut at = 0;
    for needle in order {
        let found = text[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing (or out of order) in\n{text}"));
        at += found + needle.len();
    }
    // The primary's plan, printed as it ran (around the check of NORMAL).
    assert!(
        text.contains("4 FREE, 0 FREE-BACKUP; gave 2 and took back 0"),
        "{text}"
    );
    // Piped output: no colours, no carriage returns.
    assert!(!text.contains('\x1b') && !text.contains('\r'));
}

#[test]
fn arguments() {
    let run = |args: &[&str]| parse_args(args.iter().copied());
    assert_eq!(run(&[]), Ok(Parsed::Run(Pair6Options::default())));
    assert_eq!(Pair6Options::default().mclt, 5);
    assert_eq!(run(&["--help"]), Ok(Parsed::Help));
    assert_eq!(
        run(&["--mclt=3", "--quiet"]),
        Ok(Parsed::Run(Pair6Options {
            mclt: 3,
            quiet: true
        }))
    );
    for bad in [
        &["--mclt"][..],
        &["--mclt", "0"],
        &["--mclt", "21"],
        &["--mclt", "x"],
        &["--leases", "5"],
        &["stray"],
    ] {
        let e = run(bad).expect_err(&format!("{bad:?} is refused"));
        assert!(!e.to_string().is_empty());
    }
}
