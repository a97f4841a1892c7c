//! Harness for running ISC dhcpd 4.4 as the failover partner of our peer, on loopback.
//!
//! * [`dhcpd`]: writes a `dhcpd.conf`, creates the port-less bridge dhcpd needs as its DHCP
//!   interface, runs `dhcpd -4 -f -d` with its log captured, kills it (by PID) and removes the
//!   bridge when dropped.
//! * [`leases`]: reads ISC's lease file.
//! * [`wire`]: hand-made failover messages for probing ISC over a plain TCP stream.
//! * [`netns`]: network namespaces, a veth pair and re-executed children for ISC serving
//!   real DHCP clients ("namespace mode").
//! * [`pair`]: two ISC dhcpd in failover with each other, timing a full resync (UPDREQALL of
//!   a pre-filled lease database) to measure an ISC pair's acknowledged BNDUPD/s.

pub mod dhcpd;
pub mod leases;
pub mod netns;
pub mod pair;
pub mod wire;

use std::path::Path;

/// Whether the tools these tests need are here. Missing tools skip the tests with a note,
/// unless `FAILOVER_REQUIRE_TOOLS=1`, which makes them fail.
pub fn tools_available(test: &str) -> bool {
    tools_available_for(test, false)
}

/// [`tools_available`], and also the right to create network namespaces (`ip netns add`).
pub fn netns_available(test: &str) -> bool {
    tools_available_for(test, true)
}

fn tools_available_for(test: &str, netns: bool) -> bool {
    let mut missing = Vec::new();
    for tool in [dhcpd::DHCPD, dhcpd::IP] {
        if !Path::new(tool).exists() {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() && !dhcpd::can_create_links() {
        missing.push("CAP_NET_ADMIN (creating a bridge failed)".to_string());
    }
    if missing.is_empty() && netns && !netns::can_create_netns() {
        missing.push("the right to create network namespaces (ip netns add failed)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("FAILOVER_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{test}: FAILOVER_REQUIRE_TOOLS=1 but missing: {what}");
    }
    eprintln!(
        "note: skipping {test}: missing {what} \
         (apt-get install isc-dhcp-server iproute2; run as root)"
    );
    false
}
