//! RFC 8156 messages built by hand, byte by byte, from the layouts of RFC 8156 §5.2 (header),
//! §5.5 (options 114..=134), §7.4/§7.6 (binding nesting) and RFC 3315/3633 (IA_NA, IA_TA,
//! IA_PD, IAADDR, IAPREFIX, status code): one or more per message type. Shared by the v6
//! tests (`#[path]`) and the fuzz seeds. Nothing here uses the codec.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

/// 2024-01-01T00:00:00Z as RFC 8156 time (seconds since 2000).
pub const T0: u32 = 0x2d24_bd00;

/// An option: code, length, data (RFC 3315 §22.1).
pub fn tlv(code: u16, data: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// A container option holding `children`, after `fixed` bytes.
pub fn nest(code: u16, fixed: &[u8], children: &[Vec<u8>]) -> Vec<u8> {
    let mut data = fixed.to_vec();
    for c in children {
        data.extend_from_slice(c);
    }
    tlv(code, &data)
}

pub fn u32opt(code: u16, v: u32) -> Vec<u8> {
    tlv(code, &v.to_be_bytes())
}

/// A framed failover message: message-size, msg-type, 24-bit transaction-id, sent-time,
/// options (§5.1, §5.2).
pub fn failover(msg_type: u8, xid: u32, sent_time: u32, options: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![msg_type];
    body.extend_from_slice(&xid.to_be_bytes()[1..]);
    body.extend_from_slice(&sent_time.to_be_bytes());
    for o in options {
        body.extend_from_slice(o);
    }
    let mut v = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(&body);
    v
}

/// A framed plain DHCPv6 message (STARTTLS, REPLY): no sent-time (RFC 7653 §6.2.2).
pub fn plain(msg_type: u8, xid: u32, options: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![msg_type];
    body.extend_from_slice(&xid.to_be_bytes()[1..]);
    for o in options {
        body.extend_from_slice(o);
    }
    let mut v = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(&body);
    v
}

pub fn status(code: u16, msg: &str) -> Vec<u8> {
    let mut d = code.to_be_bytes().to_vec();
    d.extend_from_slice(msg.as_bytes());
    tlv(13, &d)
}

pub const ADDR1: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11,
];
pub const ADDR2: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];
pub const ADDR3: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x31,
];
pub const PREFIX: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
pub const DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01];

/// IAADDR fixed part: address, preferred, valid (RFC 3315 §22.6).
pub fn iaaddr_fixed(addr: [u8; 16], preferred: u32, valid: u32) -> Vec<u8> {
    let mut v = addr.to_vec();
    v.extend_from_slice(&preferred.to_be_bytes());
    v.extend_from_slice(&valid.to_be_bytes());
    v
}

/// IAPREFIX fixed part: preferred, valid, prefix-length, prefix (RFC 3633 §10).
pub fn iaprefix_fixed(preferred: u32, valid: u32, len: u8, prefix: [u8; 16]) -> Vec<u8> {
    let mut v = preferred.to_be_bytes().to_vec();
    v.extend_from_slice(&valid.to_be_bytes());
    v.push(len);
    v.extend_from_slice(&prefix);
    v
}

/// IA_NA / IA_PD fixed part: IAID, T1, T2.
pub fn ia_fixed(iaid: u32, t1: u32, t2: u32) -> Vec<u8> {
    let mut v = iaid.to_be_bytes().to_vec();
    v.extend_from_slice(&t1.to_be_bytes());
    v.extend_from_slice(&t2.to_be_bytes());
    v
}

/// The ACTIVE IAADDR of the full BNDUPD, with every lease option (§7.4 order).
pub fn active_iaaddr() -> Vec<u8> {
    nest(
        5,
        &iaaddr_fixed(ADDR1, 1800, 3600),
        &[
            tlv(114, &[1]),                          // ACTIVE
            u32opt(133, T0),                         // start-time-of-state
            u32opt(134, T0 + 3600),                  // state-expiration-time
            u32opt(46, 12),                          // CLT_TIME (relative)
            u32opt(123, T0 + 5400),                  // partner-lifetime
            u32opt(126, T0 - 100),                   // partner-raw-clt-time
            u32opt(120, T0 + 3600),                  // expiration-time
            tlv(39, b"\x01\x04host\x07example\x00"), // CLIENT_FQDN: flags S, name
            nest(
                116,
                &[],
                &[
                    tlv(117, b"\x04host\x00"),
                    tlv(118, b"\x07example\x00"),
                    tlv(119, &[0x00, 0x0b]), // U, R, F
                ],
            ),
        ],
    )
}

pub fn bndupd_client() -> Vec<u8> {
    let expired = nest(
        5,
        &iaaddr_fixed(ADDR2, 0, 0),
        &[
            tlv(114, &[2]), // EXPIRED, with a grace period
            u32opt(133, T0 - 10),
            u32opt(134, T0 + 600),
            u32opt(123, T0 + 600),
            u32opt(120, T0 - 10),
        ],
    );
    let released = nest(
        5,
        &iaaddr_fixed(ADDR3, 0, 0),
        &[tlv(114, &[3]), u32opt(133, T0 - 5)],
    );
    let delegated = nest(
        26,
        &iaprefix_fixed(1800, 3600, 56, PREFIX),
        &[
            tlv(114, &[1]),
            u32opt(133, T0),
            u32opt(134, T0 + 3600),
            u32opt(123, T0 + 5400),
            u32opt(120, T0 + 3600),
        ],
    );
    let mut reconf = (T0 - 86_400).to_be_bytes().to_vec();
    reconf.extend_from_slice(&[0xa5; 16]);
    let mut relay = ADDR3.to_vec();
    relay.extend_from_slice(&[12, 0, 0xfe, 0x80]); // a truncated RELAY-FORW, opaque here
    let client = nest(
        45,
        &[],
        &[
            tlv(1, &DUID),
            u32opt(100, T0),
            tlv(68, &[0x00, 0x00, 0x00, 0x00, 0x2a]), // VSS type 0, VPN-ID 42
            tlv(129, &reconf),
            tlv(47, &relay),
            nest(3, &ia_fixed(1, 900, 1440), &[active_iaaddr(), expired]),
            nest(4, &7u32.to_be_bytes(), &[released]),
            nest(25, &ia_fixed(2, 900, 1440), &[delegated]),
        ],
    );
    failover(24, 0x00_0102, T0, &[client])
}

pub fn bndupd_prefix() -> Vec<u8> {
    let prefix = nest(
        26,
        &iaprefix_fixed(0, 0, 48, PREFIX),
        &[u32opt(100, T0), tlv(114, &[6]), u32opt(133, T0)], // FREE-BACKUP
    );
    failover(24, 0x00_0103, T0, &[prefix])
}

pub fn bndreply_client() -> Vec<u8> {
    let addr = nest(
        5,
        &iaaddr_fixed(ADDR1, 1800, 3600),
        &[
            status(19, "outdated"),
            tlv(114, &[1]),
            u32opt(134, T0 + 3600),
            u32opt(124, T0 + 5400),
        ],
    );
    let pd = nest(
        25,
        &ia_fixed(2, 900, 1440),
        &[
            status(16, ""),
            nest(
                26,
                &iaprefix_fixed(1800, 3600, 56, PREFIX),
                &[tlv(114, &[1])],
            ),
        ],
    );
    let client = nest(
        45,
        &[],
        &[
            status(0, "ok"),
            tlv(1, &DUID),
            nest(3, &ia_fixed(1, 900, 1440), &[addr]),
            pd,
        ],
    );
    failover(25, 0x00_0102, T0 + 1, &[client])
}

pub fn bndreply_prefix() -> Vec<u8> {
    let prefix = nest(
        26,
        &iaprefix_fixed(0, 0, 48, PREFIX),
        &[status(17, "not mine"), tlv(114, &[6])],
    );
    failover(25, 0x00_0103, T0 + 1, &[prefix])
}

/// Unknown options at every level: top, CLIENT_DATA, IA_NA, IAADDR, DNS removal info.
pub fn bndupd_unknowns() -> Vec<u8> {
    let addr = nest(
        5,
        &iaaddr_fixed(ADDR1, 1800, 3600),
        &[
            tlv(114, &[5]), // FREE
            u32opt(133, T0),
            nest(116, &[], &[tlv(119, &[0, 1]), tlv(999, b"dns-x")]),
            tlv(0xfe01, &[1, 2, 3]),
            tlv(2, &[0; 14]), // OPTION_SERVERID, not modelled in a lease
        ],
    );
    let client = nest(
        45,
        &[],
        &[
            tlv(1, &DUID),
            u32opt(100, T0),
            nest(3, &ia_fixed(9, 0, 0), &[addr, tlv(0xfe02, &[])]),
            tlv(0xfe03, b"client-level"),
        ],
    );
    failover(24, 0x00_0104, T0, &[client, tlv(0xfe04, b"top")])
}

pub fn connect() -> Vec<u8> {
    // The digest's example (10-rfc8156.md §1.10), as literal bytes.
    vec![
        0x00, 0x35, 0x1f, 0x00, 0x00, 0x01, 0x2d, 0x24, 0xbd, 0x00, // header
        0x00, 0x7f, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, // protocol version 1.0
        0x00, 0x7a, 0x00, 0x04, 0x00, 0x00, 0x0e, 0x10, // MCLT 3600
        0x00, 0x80, 0x00, 0x04, 0x00, 0x00, 0x00, 0x3c, // keepalive 60
        0x00, 0x79, 0x00, 0x04, 0x00, 0x00, 0x00, 0x64, // max-unacked 100
        0x00, 0x82, 0x00, 0x03, b'f', b'o', b'1', // relationship name
        0x00, 0x73, 0x00, 0x02, 0x00, 0x01, // connect flags F
    ]
}

pub fn state() -> Vec<u8> {
    // The digest's example: NORMAL, flags C, started 100 s earlier.
    vec![
        0x00, 0x1a, 0x22, 0x00, 0x00, 0x02, 0x2d, 0x24, 0xbd, 0x00, 0x00, 0x84, 0x00, 0x01, 0x02,
        0x00, 0x83, 0x00, 0x01, 0x01, 0x00, 0x85, 0x00, 0x04, 0x2d, 0x24, 0xbc, 0x9c,
    ]
}

/// Every constructed message, named.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bndupd-client", bndupd_client()),
        ("bndupd-prefix", bndupd_prefix()),
        ("bndupd-unknowns", bndupd_unknowns()),
        ("bndreply-client", bndreply_client()),
        ("bndreply-prefix", bndreply_prefix()),
        ("poolreq", failover(26, 0x00_0200, T0, &[])),
        ("poolresp", failover(27, 0x00_0200, T0 + 1, &[])),
        ("updreq", failover(28, 0xff_fffe, T0, &[])),
        ("updreqall", failover(29, 0x00_0300, T0, &[])),
        ("upddone", failover(30, 0x00_0300, T0 + 2, &[])),
        ("connect", connect()),
        (
            "connectreply-accept",
            failover(
                32,
                1,
                T0 + 1,
                &[
                    tlv(127, &[0, 1, 0, 0]),
                    u32opt(122, 3600),
                    u32opt(128, 60),
                    u32opt(121, 10),
                    tlv(115, &[0, 1]),
                ],
            ),
        ),
        (
            "connectreply-reject",
            failover(32, 1, T0 + 1, &[status(22, "skew 7 s")]),
        ),
        (
            "disconnect",
            failover(33, 0x00_0400, T0 + 3, &[status(20, "operator shutdown")]),
        ),
        ("state", state()),
        (
            "state-partner-down",
            failover(
                34,
                0x00_0005,
                T0,
                &[
                    tlv(132, &[4]),
                    tlv(131, &[0x01]),
                    u32opt(133, T0 - 7200),
                    u32opt(125, T0 - 7200),
                ],
            ),
        ),
        ("contact", failover(35, 0x00_0006, T0 + 15, &[])),
        ("starttls", plain(23, 0x00_0007, &[])),
        (
            "reply-tls-refused",
            plain(7, 0x00_0007, &[status(15, "no TLS here")]),
        ),
    ]
}
