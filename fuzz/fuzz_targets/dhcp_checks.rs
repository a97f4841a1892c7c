//! The properties of the `dhcp_request` target, in plain Rust over the examples crate and
//! dhcproto: `wire::parse` never panics; what it accepts has a `chaddr` of 1..=16 bytes, a
//! client message type and well-formed options; every reply built for it decodes as a
//! BOOTREPLY with the request's xid, the message type asked for and our server identifier.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};
use failover_examples::dhcp_server::wire::{Network, Offered, parse, reply};

pub(crate) fn check_dhcp_request(data: &[u8]) {
    let Ok(req) = parse(data) else { return };
    assert!((1..=16).contains(&req.chaddr().len()));
    let _ = req.lease_client().identity();
    let net = Network {
        server_id: Ipv4Addr::new(192, 0, 2, 1),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        router: Some(Ipv4Addr::new(192, 0, 2, 254)),
    };
    let lease = Offered {
        address: Ipv4Addr::new(192, 0, 2, 10),
        // Any lease time, infinite included: from the datagram's first bytes.
        lease_time: data
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes),
    };
    for (kind, lease) in [
        (MessageType::Offer, Some(lease)),
        (MessageType::Ack, Some(lease)),
        (MessageType::Ack, None),
        (MessageType::Nak, None),
    ] {
        let Ok(bytes) = reply(&req, kind, lease, &net) else {
            continue;
        };
        let m = Message::decode(&mut Decoder::new(&bytes)).expect("our reply decodes");
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(m.xid(), req.msg.xid());
        assert_eq!(m.opts().msg_type(), Some(kind));
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(net.server_id))
        );
    }
}
