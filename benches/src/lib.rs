//! Benchmarks of the DHCP failover crates live in `benches/`; run them with `cargo bench`.
