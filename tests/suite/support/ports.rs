//! Ports for what a test starts itself (an HTTP or metrics listener, a
//! child `serve`, PgBouncer, nginx) and for addresses nothing listens on.
//!
//! A port the kernel chose for a bind to port 0, once released, can be
//! handed out again at once: to another test's bind to port 0, or as the
//! local port of an outgoing connection (to PostgreSQL, say), both drawn
//! from the kernel's ephemeral range. A server binding it a moment later
//! then fails, and its test with it. These ports lie below that range,
//! each handed out once per test process, and only after a bind has shown
//! it free.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Below Linux's default ephemeral range (32768–60999).
pub const FIRST: u16 = 20_000;
pub const END: u16 = 32_000;

/// Where this process starts, so two suites running at once (a developer's
/// and CI's) are unlikely to meet.
static NEXT: LazyLock<AtomicU32> =
    LazyLock::new(|| AtomicU32::new((std::process::id() % 400) * 30));

/// A port on 127.0.0.1 that nothing listens on and nothing else in this
/// process will be given.
pub fn unused_port() -> u16 {
    let span = u32::from(END - FIRST);
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = FIRST + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free in {FIRST}..{END}");
}

/// The kernel's ephemeral range, where it picks ports for binds to port 0
/// and for outgoing connections.
fn ephemeral_range() -> std::ops::RangeInclusive<u16> {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
    let mut bounds = read
        .iter()
        .flat_map(|text| text.split_whitespace().map(|n| n.parse::<u16>()))
        .flatten();
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) => low..=high,
        _ => 32_768..=60_999,
    }
}

#[test]
fn ports_handed_out_lie_outside_the_kernels_ephemeral_range_and_never_repeat() {
    let ephemeral = ephemeral_range();
    let ports: Vec<u16> = (0..200).map(|_| unused_port()).collect();
    for port in &ports {
        assert!(!ephemeral.contains(port), "{port} is in {ephemeral:?}");
    }
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len());
}
