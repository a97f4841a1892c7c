//! DHCP messages in and out (RFC 2131, with `dhcproto`): what the server reads from a
//! datagram, refusing anything it cannot serve with a typed reason, and the replies it builds.

use std::fmt;
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use failover_fsm::record::LeaseClient;

/// The fixed BOOTP header before the magic cookie (RFC 2131 §2).
pub const HEADER_LEN: usize = 236;
/// The magic cookie that starts the options (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Longest `chaddr` (the field is 16 bytes).
pub const MAX_CHADDR: usize = 16;

/// Why a datagram gets no answer before any lease is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// Shorter than the BOOTP header and the magic cookie.
    Truncated(usize),
    /// Not the DHCP magic cookie (a BOOTP client: not served).
    NoMagicCookie,
    /// The header or the options do not decode.
    Malformed(String),
    /// `op` is not BOOTREQUEST.
    NotARequest(u8),
    /// `hlen` is 0 or above 16.
    HardwareAddressLength(u8),
    /// No DHCP message type (option 53).
    NoMessageType,
    /// A message type a server does not take from clients (OFFER, ACK, unknown codes...).
    NotAClientMessage(u8),
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRequest::Truncated(n) => write!(f, "truncated ({n} bytes)"),
            BadRequest::NoMagicCookie => f.write_str("no DHCP magic cookie"),
            BadRequest::Malformed(e) => write!(f, "malformed: {e}"),
            BadRequest::NotARequest(op) => write!(f, "op {op} is not BOOTREQUEST"),
            BadRequest::HardwareAddressLength(n) => write!(f, "hlen {n}"),
            BadRequest::NoMessageType => f.write_str("no DHCP message type"),
            BadRequest::NotAClientMessage(t) => write!(f, "message type {t} is not a client's"),
        }
    }
}

impl std::error::Error for BadRequest {}

/// The client messages the server handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// DHCPDISCOVER.
    Discover,
    /// DHCPREQUEST.
    Request,
    /// DHCPDECLINE.
    Decline,
    /// DHCPRELEASE.
    Release,
    /// DHCPINFORM.
    Inform,
}

/// A client message that passed the checks of [`parse`].
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// What it is.
    pub kind: ClientKind,
    /// The decoded message (replies copy its xid, flags, giaddr, chaddr).
    pub msg: Message,
    /// Option 61 data.
    pub client_id: Option<Vec<u8>>,
    /// Option 50.
    pub requested: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
}

impl ClientRequest {
    /// `chaddr[..hlen]` (checked to be at most 16 bytes).
    pub fn chaddr(&self) -> &[u8] {
        self.msg.chaddr()
    }

    /// The client as the lease records name it.
    pub fn lease_client(&self) -> LeaseClient<'_> {
        LeaseClient {
            client_identifier: self.client_id.as_deref(),
            htype: u8::from(self.msg.htype()),
            chaddr: self.chaddr(),
        }
    }
}

/// Reads one datagram from a client or relay.
pub fn parse(datagram: &[u8]) -> Result<ClientRequest, BadRequest> {
    let cookie = datagram
        .get(HEADER_LEN..HEADER_LEN + 4)
        .ok_or(BadRequest::Truncated(datagram.len()))?;
    if cookie != MAGIC_COOKIE {
        return Err(BadRequest::NoMagicCookie);
    }
    // `hlen` is checked before dhcproto slices `chaddr` with it.
    let hlen = datagram.get(2).copied().unwrap_or(0);
    if hlen == 0 || usize::from(hlen) > MAX_CHADDR {
        return Err(BadRequest::HardwareAddressLength(hlen));
    }
    check_options(datagram.get(HEADER_LEN + 4..).unwrap_or_default())?;
    let msg = Message::decode(&mut Decoder::new(datagram))
        .map_err(|e| BadRequest::Malformed(e.to_string()))?;
    match msg.opcode() {
        Opcode::BootRequest => {}
        Opcode::BootReply => return Err(BadRequest::NotARequest(2)),
        Opcode::Unknown(op) => return Err(BadRequest::NotARequest(op)),
    }
    let kind = match msg.opts().msg_type() {
        None => return Err(BadRequest::NoMessageType),
        Some(MessageType::Discover) => ClientKind::Discover,
        Some(MessageType::Request) => ClientKind::Request,
        Some(MessageType::Decline) => ClientKind::Decline,
        Some(MessageType::Release) => ClientKind::Release,
        Some(MessageType::Inform) => ClientKind::Inform,
        Some(other) => return Err(BadRequest::NotAClientMessage(u8::from(other))),
    };
    let opts = msg.opts();
    let client_id = match opts.get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.clone()),
        _ => None,
    };
    let requested = match opts.get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => None,
    };
    let server_id = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    };
    Ok(ClientRequest {
        kind,
        msg,
        client_id,
        requested,
        server_id,
    })
}

/// Walks the options area: every option within the datagram, the options the server reads
/// of the right length, and an END (RFC 2131 §4.1:
/// "the options field MUST be well formed"). The decoder forgives an option cut short, which
/// would let a damaged REQUEST renew a lease.
fn check_options(mut area: &[u8]) -> Result<(), BadRequest> {
    // dhcproto joins directly consecutive options of one code into one (RFC 3396 §7), so the
    // length rules hold for the total of such a run, not for each piece (two CLIENT NDI of 3
    // bytes are read as one of 6: a debug build panicked, the `dhcp_request` fuzz target).
    let mut run: Option<(u8, usize)> = None;
    loop {
        match area {
            [] => return Err(BadRequest::Malformed("no END option".into())),
            [255, ..] => return check_option(run),
            [0, rest @ ..] => {
                check_option(run.take())?;
                area = rest;
            }
            [code, len, rest @ ..] if rest.len() >= usize::from(*len) => {
                let len = usize::from(*len);
                run = match run {
                    Some((c, total)) if c == *code => Some((c, total + len)),
                    other => {
                        check_option(other)?;
                        Some((*code, len))
                    }
                };
                area = rest.get(len..).unwrap_or_default();
            }
            [code, ..] => {
                return Err(BadRequest::Malformed(format!(
                    "option {code} runs past the end"
                )));
            }
        }
    }
}

/// Whether option `code` of `len` bytes (all its consecutive pieces) has the length the
/// server and dhcproto need.
fn check_option(option: Option<(u8, usize)>) -> Result<(), BadRequest> {
    let Some((code, len)) = option else {
        return Ok(());
    };
    // The options the server reads must have their RFC 2132 lengths; the decoder would take a
    // bad one as unknown and serve the message without it.
    let fits = match code {
        53 => len == 1,
        50 | 54 => len == 4,
        61 => len >= 2,
        // dhcproto reads these with fixed sizes or asserts their length (a debug build
        // panics, found by the `dhcp_request` fuzz target: RAPID COMMIT with data): RFC 4039,
        // RFC 4702, RFC 4578, RFC 6926, RFC 2132, RFC 8925.
        80 => len == 0,
        81 => len >= 3,
        94 => len == 3,
        151 => len >= 1,
        51 | 58 | 59 | 91 | 108 | 152..=155 => len == 4,
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(BadRequest::Malformed(format!(
            "option {code} of length {len}"
        )))
    }
}

/// The network parameters every reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Option 54: the address clients send their REQUESTs to.
    pub server_id: Ipv4Addr,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3.
    pub router: Option<Ipv4Addr>,
}

/// One pool of addresses and the network its clients are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// The first address.
    pub first: Ipv4Addr,
    /// The last address.
    pub last: Ipv4Addr,
    /// Option 1 for its clients; with it, the pool's network (`first` under the mask).
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3 for its clients.
    pub router: Option<Ipv4Addr>,
}

impl Pool {
    /// Whether `address` is one of the pool's.
    pub fn holds(&self, address: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&address)
    }

    /// Whether `address` is on the pool's network (never, without a subnet mask).
    pub fn on_network(&self, address: Ipv4Addr) -> bool {
        self.subnet_mask.is_some_and(|m| {
            let m = u32::from(m);
            u32::from(address) & m == u32::from(self.first) & m
        })
    }
}

/// The lease of an OFFER or ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// yiaddr.
    pub address: Ipv4Addr,
    /// Option 51, seconds.
    pub lease_time: u32,
}

/// A reply to `req`: OFFER and ACK with a lease, ACK to an INFORM without, NAK.
pub fn reply(
    req: &ClientRequest,
    kind: MessageType,
    lease: Option<Offered>,
    net: &Network,
) -> Result<Vec<u8>, String> {
    let m = &req.msg;
    // An INFORM's ACK goes to ciaddr; a NAK carries no addresses (RFC 2131 table 3).
    let ciaddr = if kind == MessageType::Ack && lease.is_none() {
        m.ciaddr()
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let yiaddr = lease.map_or(Ipv4Addr::UNSPECIFIED, |l| l.address);
    let mut r = Message::new_with_id(
        m.xid(),
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        m.giaddr(),
        req.chaddr(),
    );
    r.set_opcode(Opcode::BootReply)
        .set_htype(m.htype())
        .set_flags(if m.flags().broadcast() {
            Flags::default().set_broadcast()
        } else {
            Flags::default()
        });
    let opts = r.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(net.server_id));
    if let Some(id) = &req.client_id {
        opts.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    // A relay's agent information goes back to it unchanged (RFC 3046 §2.2).
    if let Some(agent) = m.opts().get(OptionCode::RelayAgentInformation) {
        opts.insert(agent.clone());
    }
    if kind != MessageType::Nak {
        if let Some(l) = lease {
            opts.insert(DhcpOption::AddressLeaseTime(l.lease_time));
            if l.lease_time != u32::MAX {
                // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
                opts.insert(DhcpOption::Renewal(l.lease_time / 2));
                opts.insert(DhcpOption::Rebinding(
                    u32::try_from(u64::from(l.lease_time) * 7 / 8).unwrap_or(u32::MAX),
                ));
            }
        }
        if let Some(mask) = net.subnet_mask {
            opts.insert(DhcpOption::SubnetMask(mask));
        }
        if let Some(router) = net.router {
            opts.insert(DhcpOption::Router(vec![router]));
        }
    }
    r.to_vec().map_err(|e| e.to_string())
}
