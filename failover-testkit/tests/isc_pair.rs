//! Smoke test of `failover_testkit::isc::pair`: two ISC dhcpd resynchronise 100 ACTIVE leases
//! (plus the pool's FREE addresses) in well under ten seconds, and every address arrives.
//! Skipped with a note when dhcpd, ip or the right to create a bridge is missing; failing
//! instead when `FAILOVER_REQUIRE_TOOLS=1`. `--nocapture` prints the measurement.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use failover_testkit::isc;
use failover_testkit::isc::pair::{PairOptions, measure_resync_with};

#[test]
fn isc_pair_resyncs_100_active_leases() {
    const T: &str = "isc_pair_resyncs_100_active_leases";
    if !isc::tools_available(T) {
        return;
    }
    let mut options = PairOptions::new(100);
    options.timeout = Duration::from_secs(30);
    let pool = options.pool();
    let began = Instant::now();
    let r = measure_resync_with(options).expect("the resync completes");
    println!("{r} (whole run {:.2?})", began.elapsed());
    assert_eq!(
        r.addresses, pool,
        "every pool address reached the secondary: {r}"
    );
    assert_eq!(r.states.get("active"), Some(&100), "{r}");
    assert!(r.bndupd >= pool, "{r}");
    assert!(r.elapsed < Duration::from_secs(10), "{r}");
}
