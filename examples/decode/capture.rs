//! pcap and pcapng captures: link layers, TCP reassembly per direction, framing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{EtherType, NetSlice, SlicedPacket, TcpSlice, TransportSlice};
use failover_proto::framer::Frames;
use failover_proto::{DecodeError, FAILOVER_PORT};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

use super::{Decoded, Event, Format, MessageRecord, Record, StreamError, detect_format};

/// Decodes a pcap or pcapng capture.
///
/// Every TCP connection with port 647 at either end is followed; connections are numbered from
/// 1 in order of first appearance (a new SYN on a 4-tuple whose connection was closed, or with
/// another initial sequence number, starts a new one). Each direction is reassembled in
/// sequence-number order from the SYN's ISN, or from the first segment seen: duplicates and
/// retransmissions are dropped, out-of-order segments wait for the gap before them to fill.
/// The stream is then framed with [`Frames`]; a message is reported at the time of the packet
/// that completed it. A bad length field ends the framing of that direction.
///
/// Fails only on an unreadable capture header; a capture cut short is reported in
/// [`Decoded::input_errors`] after what could be read.
pub fn decode_capture(data: &[u8]) -> Result<Decoded, String> {
    let mut tracker = Tracker::default();
    match detect_format(data) {
        Format::Pcap => read_pcap(data, &mut tracker)?,
        Format::PcapNg => read_pcapng(data, &mut tracker)?,
        Format::Hex => return Err("not a pcap or pcapng capture".to_owned()),
    }
    Ok(tracker.finish())
}

fn read_pcap(data: &[u8], tracker: &mut Tracker) -> Result<(), String> {
    let mut reader = PcapReader::new(data).map_err(|e| format!("invalid pcap header: {e}"))?;
    let link = reader.header().datalink;
    while let Some(packet) = reader.next_packet() {
        match packet {
            Ok(p) => tracker.packet(p.timestamp, link, &p.data),
            Err(e) => {
                tracker.input_error(format!(
                    "capture unreadable after packet {}: {e}",
                    tracker.packets
                ));
                break;
            }
        }
    }
    Ok(())
}

/// An interface of a pcapng section: link type and timestamp resolution (`if_tsresol`).
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: DataLink,
    tsresol: u8,
}

fn read_pcapng(data: &[u8], tracker: &mut Tracker) -> Result<(), String> {
    let mut reader = PcapNgReader::new(data).map_err(|e| format!("invalid pcapng header: {e}"))?;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut last = Duration::ZERO;
    while let Some(block) = reader.next_block() {
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                tracker.input_error(format!(
                    "capture unreadable after packet {}: {e}",
                    tracker.packets
                ));
                break;
            }
        };
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => {
                let tsresol = idb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    })
                    .unwrap_or(6);
                interfaces.push(Interface {
                    link: idb.linktype,
                    tsresol,
                });
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = usize::try_from(epb.interface_id)
                    .ok()
                    .and_then(|i| interfaces.get(i))
                else {
                    tracker.input_error(format!(
                        "packet on undeclared interface {}",
                        epb.interface_id
                    ));
                    continue;
                };
                // pcap-file 2 hands the raw timestamp over as nanoseconds whatever the
                // interface's resolution: scale it here.
                let raw = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                last = scale_timestamp(raw, iface.tsresol);
                tracker.packet(last, iface.link, &epb.data);
            }
            Block::Packet(pb) => {
                if let Some(iface) = interfaces.get(usize::from(pb.interface_id)) {
                    last = scale_timestamp(pb.timestamp, iface.tsresol);
                    tracker.packet(last, iface.link, &pb.data);
                }
            }
            Block::SimplePacket(spb) => {
                // No timestamp: reuse the previous packet's.
                if let Some(iface) = interfaces.first() {
                    tracker.packet(last, iface.link, &spb.data);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A pcapng timestamp in units of `if_tsresol` (10^-n s, or 2^-n s with the high bit set).
fn scale_timestamp(raw: u64, tsresol: u8) -> Duration {
    let exp = u32::from(tsresol & 0x7f);
    let per_sec: u128 = if tsresol & 0x80 == 0 {
        10u128.checked_pow(exp).unwrap_or(u128::MAX)
    } else {
        1u128.checked_shl(exp).unwrap_or(u128::MAX)
    };
    let raw = u128::from(raw);
    let secs = u64::try_from(raw / per_sec).unwrap_or(u64::MAX);
    let nanos = u32::try_from(raw % per_sec * 1_000_000_000 / per_sec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Cuts the link layer off and parses IP and TCP; `None` for link types not supported.
fn slice_packet(link: DataLink, data: &[u8]) -> Option<Result<SlicedPacket<'_>, String>> {
    let r = match link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        DataLink::LINUX_SLL2 => {
            // 20-byte header; the protocol type (an EtherType) comes first.
            let (Some([hi, lo]), Some(rest)) = (data.first_chunk::<2>(), data.get(20..)) else {
                return Some(Err("short Linux SLL2 header".to_owned()));
            };
            SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([*hi, *lo])), rest)
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
        DataLink::NULL | DataLink::LOOP => {
            // 4-byte address family, then the IP packet.
            SlicedPacket::from_ip(data.get(4..).unwrap_or_default())
        }
        _ => return None,
    };
    Some(r.map_err(|e| e.to_string()))
}

/// Bit flags of the TCP events already reported for a direction.
const SEEN_SYN: u8 = 1;
const SEEN_FIN: u8 = 2;
const SEEN_RST: u8 = 4;

/// One direction of a TCP connection.
#[derive(Debug)]
struct Half {
    src: SocketAddr,
    dst: SocketAddr,
    /// The SYN's sequence number.
    isn: Option<u32>,
    /// Sequence number of stream offset 0.
    origin: Option<u32>,
    /// Stream bytes delivered in order so far.
    delivered: u64,
    /// Segments beyond `delivered`, by stream offset.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Delivered bytes not framed yet (the start of an incomplete message).
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    framed: u64,
    /// Index of the stream error record once framing failed.
    failed: Option<usize>,
    /// Bytes dropped since framing failed.
    skipped: u64,
    seen: u8,
    last_time: Duration,
}

impl Half {
    fn new(src: SocketAddr, dst: SocketAddr) -> Self {
        Half {
            src,
            dst,
            isn: None,
            origin: None,
            delivered: 0,
            pending: BTreeMap::new(),
            buf: Vec::new(),
            framed: 0,
            failed: None,
            skipped: 0,
            seen: 0,
            last_time: Duration::ZERO,
        }
    }

    fn label(&self) -> String {
        format!("{}>{}", self.src, self.dst)
    }

    /// Adds a segment whose first payload byte has sequence number `seq`.
    fn add(&mut self, seq: u32, payload: &[u8]) {
        let origin = *self.origin.get_or_insert(seq);
        // Sequence numbers wrap: place the segment relative to the next expected byte.
        let next = origin.wrapping_add(self.delivered as u32);
        let delta = i64::from(seq.wrapping_sub(next) as i32);
        let start = self.delivered as i64 + delta;
        let end = start + payload.len() as i64;
        if end <= self.delivered as i64 {
            return; // a retransmission of delivered bytes
        }
        if start <= self.delivered as i64 {
            let skip = usize::try_from(self.delivered as i64 - start).unwrap_or(0);
            self.push(payload.get(skip..).unwrap_or_default());
            self.drain_pending();
        } else {
            let slot = self.pending.entry(start as u64).or_default();
            if payload.len() > slot.len() {
                *slot = payload.to_vec();
            }
        }
    }

    fn drain_pending(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.delivered {
                break;
            }
            let data = entry.remove();
            let end = start + data.len() as u64;
            if end > self.delivered {
                let skip = usize::try_from(self.delivered - start).unwrap_or(0);
                self.push(data.get(skip..).unwrap_or_default());
            }
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.delivered += data.len() as u64;
        if self.failed.is_some() {
            self.skipped += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// Frames the delivered bytes into records.
    fn frame(&mut self, time: Duration, conn: u32, records: &mut Vec<Record>) {
        if self.failed.is_some() || self.buf.is_empty() {
            return;
        }
        let mut frames = Frames::new(&self.buf);
        let mut messages = Vec::new();
        let mut error = None;
        for f in frames.by_ref() {
            match f {
                Ok(msg) => messages.push(msg.to_vec()),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let consumed = frames.consumed();
        for bytes in messages {
            records.push(Record {
                time,
                conn,
                dir: self.label(),
                idx: None,
                event: Event::Message(MessageRecord::new(bytes)),
            });
        }
        let rest = self.buf.get(consumed..).unwrap_or_default();
        let at = self.framed + consumed as u64;
        if let Some(e) = error {
            let rest_len = rest.len() as u64;
            let head = rest.get(..StreamError::HEAD_LEN).unwrap_or(rest).to_vec();
            self.failed = Some(records.len());
            self.skipped = rest_len;
            records.push(Record {
                time,
                conn,
                dir: self.label(),
                idx: None,
                event: Event::StreamError(StreamError {
                    error: Some(DecodeError::new(
                        e.kind(),
                        usize::try_from(at).unwrap_or(usize::MAX),
                    )),
                    stream_offset: at,
                    skipped: rest_len,
                    missing: 0,
                    head,
                }),
            });
            self.buf.clear();
        } else {
            self.buf.drain(..consumed);
            self.framed = at;
        }
    }

    /// Reports what is left at the end of the capture: a gap, or a message cut off.
    fn finish(&mut self, conn: u32, records: &mut Vec<Record>) {
        if let Some(i) = self.failed {
            if let Some(Record {
                event: Event::StreamError(e),
                ..
            }) = records.get_mut(i)
            {
                e.skipped =
                    self.skipped + self.pending.values().map(|p| p.len() as u64).sum::<u64>();
            }
            return;
        }
        let time = self.last_time;
        if let Some((&first, _)) = self.pending.first_key_value() {
            let pending: u64 = self.pending.values().map(|p| p.len() as u64).sum();
            let mut head = self.buf.clone();
            if head.is_empty() {
                head = self.pending.values().next().cloned().unwrap_or_default();
            }
            head.truncate(StreamError::HEAD_LEN);
            records.push(Record {
                time,
                conn,
                dir: self.label(),
                idx: None,
                event: Event::StreamError(StreamError {
                    error: None,
                    stream_offset: self.delivered,
                    skipped: self.buf.len() as u64 + pending,
                    missing: first - self.delivered,
                    head,
                }),
            });
        } else if !self.buf.is_empty() {
            let mut m = MessageRecord::new(std::mem::take(&mut self.buf));
            m.note = Some("the capture ends inside this message");
            records.push(Record {
                time,
                conn,
                dir: self.label(),
                idx: None,
                event: Event::Message(m),
            });
        }
        self.pending.clear();
        self.buf.clear();
    }
}

/// A TCP connection: `halves[0]` is the direction of the first packet seen.
#[derive(Debug)]
struct Conn {
    number: u32,
    halves: [Half; 2],
    finished: bool,
}

impl Conn {
    fn half_index(&self, src: SocketAddr) -> usize {
        usize::from(self.halves.first().is_some_and(|h| h.src != src))
    }

    /// Whether a SYN (without ACK) from `src` opens a new connection on this 4-tuple.
    fn is_new_syn(&self, src: SocketAddr, seq: u32) -> bool {
        let closed = self
            .halves
            .iter()
            .any(|h| h.seen & (SEEN_FIN | SEEN_RST) != 0);
        let restarted = self
            .halves
            .get(self.half_index(src))
            .is_some_and(|h| h.isn.is_some_and(|isn| isn != seq));
        closed || restarted
    }

    fn finish(&mut self, records: &mut Vec<Record>) {
        if !self.finished {
            for h in &mut self.halves {
                h.finish(self.number, records);
            }
            self.finished = true;
        }
    }
}

#[derive(Debug, Default)]
struct Tracker {
    first: Option<Duration>,
    packets: u64,
    conns: Vec<Conn>,
    by_key: HashMap<(SocketAddr, SocketAddr), usize>,
    records: Vec<Record>,
    input_errors: Vec<String>,
    undecodable: u64,
    fragments: u64,
    unsupported: BTreeSet<u32>,
}

impl Tracker {
    fn input_error(&mut self, e: String) {
        self.input_errors.push(e);
    }

    fn packet(&mut self, ts: Duration, link: DataLink, data: &[u8]) {
        self.packets += 1;
        let first = *self.first.get_or_insert(ts);
        let time = ts.saturating_sub(first);
        let sliced = match slice_packet(link, data) {
            None => {
                self.unsupported.insert(link.into());
                return;
            }
            Some(Err(_)) => {
                self.undecodable += 1;
                return;
            }
            Some(Ok(s)) => s,
        };
        let (src, dst) = match &sliced.net {
            Some(NetSlice::Ipv4(v4)) => {
                if v4.is_payload_fragmented() {
                    self.fragments += 1;
                    return;
                }
                let h = v4.header();
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                )
            }
            Some(NetSlice::Ipv6(v6)) => {
                if v6.is_payload_fragmented() {
                    self.fragments += 1;
                    return;
                }
                let h = v6.header();
                (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                )
            }
            _ => return,
        };
        let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
            return;
        };
        if tcp.source_port() != FAILOVER_PORT && tcp.destination_port() != FAILOVER_PORT {
            return;
        }
        let src = SocketAddr::new(src, tcp.source_port());
        let dst = SocketAddr::new(dst, tcp.destination_port());
        self.segment(time, src, dst, tcp);
    }

    fn segment(&mut self, time: Duration, src: SocketAddr, dst: SocketAddr, tcp: &TcpSlice<'_>) {
        let key = if src <= dst { (src, dst) } else { (dst, src) };
        let seq = tcp.sequence_number();
        let existing = self.by_key.get(&key).copied();
        let index = match existing {
            Some(i)
                if !(tcp.syn()
                    && !tcp.ack()
                    && self.conns.get(i).is_some_and(|c| c.is_new_syn(src, seq))) =>
            {
                i
            }
            _ => {
                if let Some(old) = existing.and_then(|i| self.conns.get_mut(i)) {
                    old.finish(&mut self.records);
                }
                let number = u32::try_from(self.conns.len() + 1).unwrap_or(u32::MAX);
                self.conns.push(Conn {
                    number,
                    halves: [Half::new(src, dst), Half::new(dst, src)],
                    finished: false,
                });
                let i = self.conns.len() - 1;
                self.by_key.insert(key, i);
                i
            }
        };
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let number = conn.number;
        let h = conn.half_index(src);
        let Some(half) = conn.halves.get_mut(h) else {
            return;
        };
        half.last_time = time;
        let records = &mut self.records;
        let event = |half: &Half, flags: &str, records: &mut Vec<Record>| {
            records.push(Record {
                time,
                conn: number,
                dir: half.label(),
                idx: None,
                event: Event::Tcp {
                    flags: flags.to_owned(),
                },
            });
        };
        if tcp.syn() && half.seen & SEEN_SYN == 0 {
            half.seen |= SEEN_SYN;
            half.isn = Some(seq);
            half.origin.get_or_insert(seq.wrapping_add(1));
            event(half, if tcp.ack() { "SYN+ACK" } else { "SYN" }, records);
        }
        let payload = tcp.payload();
        if !payload.is_empty() {
            let data_seq = if tcp.syn() { seq.wrapping_add(1) } else { seq };
            half.add(data_seq, payload);
            half.frame(time, number, records);
        }
        if tcp.fin() && half.seen & SEEN_FIN == 0 {
            half.seen |= SEEN_FIN;
            event(half, "FIN", records);
        }
        if tcp.rst() && half.seen & SEEN_RST == 0 {
            half.seen |= SEEN_RST;
            event(half, "RST", records);
        }
    }

    fn finish(mut self) -> Decoded {
        for c in &mut self.conns {
            c.finish(&mut self.records);
        }
        let mut notes = Vec::new();
        if self.undecodable > 0 {
            notes.push(format!(
                "{} packets could not be parsed and were skipped",
                self.undecodable
            ));
        }
        if self.fragments > 0 {
            notes.push(format!(
                "{} IP fragments were skipped (not reassembled)",
                self.fragments
            ));
        }
        for link in &self.unsupported {
            notes.push(format!(
                "link type {link} is not supported: its packets were skipped"
            ));
        }
        if self.conns.is_empty() {
            notes.push(format!(
                "no TCP traffic on port {FAILOVER_PORT} in {} packets",
                self.packets
            ));
        }
        Decoded {
            records: self.records,
            input_errors: self.input_errors,
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn pcapng_timestamps() {
        assert_eq!(scale_timestamp(3_212_716, 6), Duration::new(3, 212_716_000));
        assert_eq!(
            scale_timestamp(1_500_000_001, 9),
            Duration::new(1, 500_000_001)
        );
        assert_eq!(
            scale_timestamp(3 << 20 | 1 << 19, 0x80 | 20),
            Duration::new(3, 500_000_000)
        );
        assert_eq!(scale_timestamp(7, 0), Duration::from_secs(7));
    }

    fn half() -> Half {
        Half::new(
            "10.0.0.1:1000".parse().unwrap(),
            "10.0.0.2:647".parse().unwrap(),
        )
    }

    #[test]
    fn reassembly_orders_and_deduplicates() {
        let mut h = half();
        h.origin = Some(u32::MAX - 2); // wraps inside the stream
        h.add(u32::MAX - 2, b"abc"); // stream offsets 0..3
        h.add(6, b"jkl"); // out of order: offsets 9..12
        h.add(u32::MAX - 2, b"abc"); // duplicate
        h.add(0, b"def"); // offsets 3..6
        assert_eq!(h.buf, b"abcdef");
        assert_eq!(h.pending.len(), 1);
        h.add(2, b"fGHIj"); // offsets 5..10: overlaps both sides, fills the gap
        assert_eq!(h.buf, b"abcdefGHIjkl");
        assert!(h.pending.is_empty());
        assert_eq!(h.delivered, 12);
    }

    #[test]
    fn gap_and_cut_off_message_are_reported() {
        let contact = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut h = half();
        h.add(100, &contact[..5]);
        let mut records = Vec::new();
        h.frame(Duration::ZERO, 1, &mut records);
        assert!(records.is_empty());
        h.finish(1, &mut records);
        let Event::Message(m) = &records[0].event else {
            panic!()
        };
        assert_eq!(m.bytes, &contact[..5]);
        assert!(m.problem.is_some());

        let mut h = half();
        h.add(100, &contact);
        h.add(120, &contact); // 8 bytes missing before it
        let mut records = Vec::new();
        h.frame(Duration::ZERO, 1, &mut records);
        assert_eq!(records.len(), 1);
        h.finish(1, &mut records);
        let Event::StreamError(e) = &records[1].event else {
            panic!()
        };
        assert_eq!(
            (e.error, e.missing, e.skipped, e.stream_offset),
            (None, 8, 12, 12)
        );
    }

    #[test]
    fn bad_length_stops_the_direction() {
        let contact = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut h = half();
        let mut stream = contact.to_vec();
        stream.extend_from_slice(&[0xff, 0xff, 1, 2, 3]);
        h.add(1, &stream);
        let mut records = Vec::new();
        h.frame(Duration::ZERO, 1, &mut records);
        h.add(1 + stream.len() as u32, &contact);
        h.frame(Duration::ZERO, 1, &mut records);
        h.finish(1, &mut records);
        assert_eq!(records.len(), 2);
        assert!(!records[0].is_error());
        let Event::StreamError(e) = &records[1].event else {
            panic!()
        };
        assert_eq!(e.stream_offset, 12);
        assert_eq!(e.error.unwrap().offset(), 12);
        assert_eq!(e.skipped, 5 + 12);
        assert_eq!(e.head, [0xff, 0xff, 1, 2, 3]);
    }
}
