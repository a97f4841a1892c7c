//! Option TLVs (§6.2): codes, a lazy iterator, a writer, and the validation every message shares.

use byteorder::{BigEndian, ByteOrder};
use core::fmt;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::value::code_enum;

code_enum! {
    /// A failover option code (§12). Codes outside 1..=29 are kept as `Unknown`, which
    /// covers the vendor codes 30..=41 Microsoft servers send.
    pub enum OptionCode: u16 {
        /// 1, addresses-transferred (§12.1).
        AddressesTransferred = 1 => "addresses-transferred",
        /// 2, assigned-IP-address (§12.2).
        AssignedIpAddress = 2 => "assigned-IP-address",
        /// 3, binding-status (§12.3).
        BindingStatus = 3 => "binding-status",
        /// 4, client-identifier (§12.4).
        ClientIdentifier = 4 => "client-identifier",
        /// 5, client-hardware-address (§12.5).
        ClientHardwareAddress = 5 => "client-hardware-address",
        /// 6, client-last-transaction-time (§12.6).
        ClientLastTransactionTime = 6 => "client-last-transaction-time",
        /// 7, client-reply-options (§12.7).
        ClientReplyOptions = 7 => "client-reply-options",
        /// 8, client-request-options (§12.8).
        ClientRequestOptions = 8 => "client-request-options",
        /// 9, DDNS (§12.9).
        Ddns = 9 => "DDNS",
        /// 10, delayed-service-parameter (§12.10).
        DelayedServiceParameter = 10 => "delayed-service-parameter",
        /// 11, hash-bucket-assignment (§12.11).
        HashBucketAssignment = 11 => "hash-bucket-assignment",
        /// 12, IP-flags (§12.12).
        IpFlags = 12 => "IP-flags",
        /// 13, lease-expiration-time (§12.13).
        LeaseExpirationTime = 13 => "lease-expiration-time",
        /// 14, max-unacked-bndupd (§12.14).
        MaxUnackedBndupd = 14 => "max-unacked-bndupd",
        /// 15, MCLT (§12.15).
        Mclt = 15 => "MCLT",
        /// 16, message (§12.16).
        Message = 16 => "message",
        /// 17, message-digest (§12.17).
        MessageDigest = 17 => "message-digest",
        /// 18, potential-expiration-time (§12.18).
        PotentialExpirationTime = 18 => "potential-expiration-time",
        /// 19, receive-timer (§12.19).
        ReceiveTimer = 19 => "receive-timer",
        /// 20, protocol-version (§12.20).
        ProtocolVersion = 20 => "protocol-version",
        /// 21, reject-reason (§12.21).
        RejectReason = 21 => "reject-reason",
        /// 22, relationship-name (§12.22).
        RelationshipName = 22 => "relationship-name",
        /// 23, server-flags (§12.23).
        ServerFlags = 23 => "server-flags",
        /// 24, server-state (§12.24).
        ServerState = 24 => "server-state",
        /// 25, start-time-of-state (§12.25).
        StartTimeOfState = 25 => "start-time-of-state",
        /// 26, TLS-reply (§12.26).
        TlsReply = 26 => "TLS-reply",
        /// 27, TLS-request (§12.27).
        TlsRequest = 27 => "TLS-request",
        /// 28, vendor-class-identifier (§12.28).
        VendorClassIdentifier = 28 => "vendor-class-identifier",
        /// 29, vendor-specific-options (§12.29).
        VendorSpecificOptions = 29 => "vendor-specific-options",
    }
    /// A code outside the draft's 1..=29.
    Unknown => "unknown";
    /// The draft's name of the option.
    fn name;
}

impl fmt::Display for OptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), u16::from(*self))
    }
}

/// Whether `len` is a valid data length for option `code` (§12; ISC checks the same sizes).
///
/// IP-flags accepts 1 byte as the low byte of the field (Microsoft sends that, §12.12 draws
/// "Len 1"); everything fixed-size must match exactly. Unknown codes accept any length.
pub const fn length_ok(code: u16, len: usize) -> bool {
    match code {
        1 | 2 | 6 | 13 | 14 | 15 | 18 | 19 | 25 => len == 4,
        3 | 10 | 20 | 21 | 23 | 24 | 26 | 27 => len == 1,
        11 => len == 32,
        12 => len == 1 || len == 2,
        5 | 17 => len >= 1,
        9 => len >= 2,
        7 | 8 => len >= 4,
        _ => true,
    }
}

/// The highest code the draft defines.
pub(crate) const MAX_KNOWN_CODE: u16 = 29;

/// A set of draft-12 option codes 0..=31 as a bit mask (the draft's codes are 1..=29). One
/// machine word on a 32-bit microcontroller: the parser keeps one per message and per binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CodeSet(u32);

impl CodeSet {
    /// No code.
    pub const EMPTY: CodeSet = CodeSet(0);

    /// The set of the given codes (each ≤ 31; larger codes are ignored).
    #[allow(clippy::indexing_slicing)] // i < codes.len(); const fn cannot use get()
    pub const fn of(codes: &[u16]) -> CodeSet {
        let mut set = CodeSet::EMPTY;
        let mut i = 0;
        while i < codes.len() {
            set.insert(codes[i]);
            i += 1;
        }
        set
    }

    /// Whether `code` is in the set.
    pub const fn contains(self, code: u16) -> bool {
        code < 32 && self.0 & (1 << code) != 0
    }

    /// The codes of both sets.
    #[must_use]
    pub const fn union(self, other: CodeSet) -> CodeSet {
        CodeSet(self.0 | other.0)
    }

    pub(crate) const fn insert(&mut self, code: u16) {
        if code < 32 {
            self.0 |= 1 << code;
        }
    }
}

/// A set of option codes 0..=255 as a bit mask, for RFC 8156 (its codes reach 134). Kept apart
/// from [`CodeSet`] so that the draft-12 parser keeps its one-word sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WideCodeSet([u64; 4]);

impl WideCodeSet {
    /// No code.
    pub const EMPTY: WideCodeSet = WideCodeSet([0; 4]);

    /// The set of the given codes (each ≤ 255; larger codes are ignored).
    #[allow(clippy::indexing_slicing)] // i < codes.len(); const fn cannot use get()
    pub const fn of(codes: &[u16]) -> WideCodeSet {
        let mut set = WideCodeSet::EMPTY;
        let mut i = 0;
        while i < codes.len() {
            set.insert(codes[i]);
            i += 1;
        }
        set
    }

    /// Whether `code` is in the set.
    #[allow(clippy::indexing_slicing)] // code < 256, so code >> 6 < 4
    pub const fn contains(self, code: u16) -> bool {
        code < 256 && self.0[(code >> 6) as usize] & (1 << (code & 63)) != 0
    }

    /// The codes of both sets.
    #[must_use]
    pub const fn union(self, other: WideCodeSet) -> WideCodeSet {
        let (a, b) = (self.0, other.0);
        WideCodeSet([a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]])
    }

    #[allow(clippy::indexing_slicing)] // code < 256, so code >> 6 < 4
    pub(crate) const fn insert(&mut self, code: u16) {
        if code < 256 {
            self.0[(code >> 6) as usize] |= 1 << (code & 63);
        }
    }
}

/// Which codes [`ExtraOptions`] leaves out: a draft-12 set by value, or an RFC 8156 set by
/// reference (they are constants), so that the draft-12 messages stay small.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Skip {
    Narrow(CodeSet),
    Wide(&'static WideCodeSet),
}

impl Skip {
    const fn contains(self, code: u16) -> bool {
        match self {
            Skip::Narrow(s) => s.contains(code),
            Skip::Wide(s) => s.contains(code),
        }
    }
}

impl Default for Skip {
    fn default() -> Self {
        Skip::Narrow(CodeSet::EMPTY)
    }
}

/// One option as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RawOption<'a> {
    /// The option code.
    pub code: u16,
    /// The option data.
    pub data: &'a [u8],
    /// Offset of the option's code field from the start of the message.
    pub offset: usize,
}

impl RawOption<'_> {
    /// The typed code.
    pub fn option_code(&self) -> OptionCode {
        OptionCode::from(self.code)
    }

    /// Bytes the option takes on the wire.
    pub const fn wire_len(&self) -> usize {
        4 + self.data.len()
    }

    /// The data as a big-endian u32 (0 unless 4 bytes long).
    pub fn u32(&self) -> u32 {
        if self.data.len() == 4 {
            BigEndian::read_u32(self.data)
        } else {
            0
        }
    }

    /// The first data byte (0 when empty).
    pub fn u8(&self) -> u8 {
        self.data.first().copied().unwrap_or(0)
    }
}

/// A lazy iterator over the options of a payload (§6.2).
///
/// It checks only the TLV structure: an option running past the end yields an error and ends
/// the iteration. Use [`crate::Repr`] for the full per-message rules.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Options<'a> {
    /// Options of `payload`, whose first byte is at `offset` in the message.
    pub const fn new(payload: &'a [u8], offset: usize) -> Self {
        Options {
            rest: payload,
            offset,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let at = self.offset;
        let Some((head, body)) = self.rest.split_first_chunk::<4>() else {
            let code = match self.rest {
                [a, b, ..] => u16::from_be_bytes([*a, *b]),
                _ => 0,
            };
            self.rest = &[];
            return Some(Err(DecodeError::new(
                DecodeErrorKind::OptionOverrun { code },
                at,
            )));
        };
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some((data, rest)) = body.split_at_checked(len) else {
            self.rest = &[];
            return Some(Err(DecodeError::new(
                DecodeErrorKind::OptionOverrun { code },
                at,
            )));
        };
        self.rest = rest;
        self.offset += 4 + len;
        Some(Ok(RawOption {
            code,
            data,
            offset: at,
        }))
    }
}

impl core::iter::FusedIterator for Options<'_> {}

/// Walks `payload` with the rules every message shares and hands each option to `visit`:
/// TLV structure, exact lengths of known options, no known option twice (per binding
/// transaction when `batched`), message-digest last.
pub(crate) fn scan<'a>(
    payload: &'a [u8],
    base: usize,
    batched: bool,
    mut visit: impl FnMut(RawOption<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut seen = CodeSet::EMPTY;
    let mut digest_at: Option<usize> = None;
    for opt in Options::new(payload, base) {
        let opt = opt?;
        if digest_at.is_some() {
            return Err(DecodeError::new(DecodeErrorKind::DigestNotLast, opt.offset));
        }
        let code = opt.code;
        if code != 0 && code <= MAX_KNOWN_CODE {
            if !length_ok(code, opt.data.len()) {
                return Err(DecodeError::new(
                    DecodeErrorKind::OptionLength {
                        code,
                        len: opt.data.len() as u16,
                    },
                    opt.offset,
                ));
            }
            if batched && code == 2 {
                seen = CodeSet::EMPTY;
            }
            if seen.contains(code) {
                return Err(DecodeError::new(
                    DecodeErrorKind::DuplicateOption(code),
                    opt.offset,
                ));
            }
            seen.insert(code);
            if code == 17 {
                digest_at = Some(opt.offset);
            }
        }
        visit(opt)?;
    }
    Ok(())
}

/// Options a typed message does not model (vendor codes, or known codes out of place), kept so
/// that a decode/encode cycle loses nothing. The encoder writes them after the typed options, in
/// the order received, and before any message-digest.
#[derive(Clone, Copy, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExtraOptions<'a> {
    raw: &'a [u8],
    offset: usize,
    skip: Skip,
}

impl<'a> ExtraOptions<'a> {
    /// No extra option.
    pub const EMPTY: ExtraOptions<'static> = ExtraOptions {
        raw: &[],
        offset: 0,
        skip: Skip::Narrow(CodeSet::EMPTY),
    };

    /// Extra options from already encoded TLVs, for building a message. They must not repeat a
    /// code the message models, or the result will not parse back.
    pub const fn from_encoded(raw: &'a [u8]) -> Self {
        ExtraOptions {
            raw,
            offset: 0,
            skip: Skip::Narrow(CodeSet::EMPTY),
        }
    }

    /// The options of `raw` (at `offset` in a message) except those with a code in `modeled`.
    pub(crate) const fn from_wire(raw: &'a [u8], offset: usize, modeled: CodeSet) -> Self {
        ExtraOptions {
            raw,
            offset,
            skip: Skip::Narrow(modeled),
        }
    }

    /// [`ExtraOptions::from_wire`] for RFC 8156 messages.
    pub(crate) const fn from_wire_wide(
        raw: &'a [u8],
        offset: usize,
        modeled: &'static WideCodeSet,
    ) -> Self {
        ExtraOptions {
            raw,
            offset,
            skip: Skip::Wide(modeled),
        }
    }

    /// Iterates over the extra options. Offsets are relative to the message they came from.
    pub fn iter(&self) -> impl Iterator<Item = RawOption<'a>> + 'a {
        let skip = self.skip;
        Options::new(self.raw, self.offset)
            .map_while(Result::ok)
            .filter(move |o| !skip.contains(o.code))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Bytes they take on the wire.
    pub fn wire_len(&self) -> usize {
        self.iter().map(|o| o.wire_len()).sum()
    }

    pub(crate) fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        // The usual case, in every message written: not even the iterator's setup.
        if self.raw.is_empty() {
            return Ok(());
        }
        for o in self.iter() {
            w.put(o.code, o.data)?;
        }
        Ok(())
    }
}

impl PartialEq for ExtraOptions<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter()
            .map(|o| (o.code, o.data))
            .eq(other.iter().map(|o| (o.code, o.data)))
    }
}

impl Eq for ExtraOptions<'_> {}

impl fmt::Debug for ExtraOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|o| (o.code, o.data)))
            .finish()
    }
}

fn write_tl(head: &mut [u8; 4], code: u16, len: u16) {
    let (c, l) = head.split_at_mut(2);
    BigEndian::write_u16(c, code);
    BigEndian::write_u16(l, len);
}

/// Writes option TLVs into a buffer.
#[derive(Debug)]
pub struct OptionWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OptionWriter<'a> {
    /// A writer that starts at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        OptionWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Appends option `code` with `data`.
    pub fn put(&mut self, code: u16, data: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + 4 + data.len();
        let len =
            u16::try_from(data.len()).map_err(|_| EncodeError::MessageTooLong { len: end })?;
        let out = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall { required: end })?;
        let (head, body) = out
            .split_first_chunk_mut::<4>()
            .ok_or(EncodeError::BufferTooSmall { required: end })?;
        write_tl(head, code, len);
        body.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    /// Appends the 4-byte header of an option whose `len` data bytes the caller writes next
    /// (a container: RFC 8156's nested options).
    pub(crate) fn begin(&mut self, code: u16, len: usize) -> Result<(), EncodeError> {
        let end = self.pos + 4;
        let len = u16::try_from(len).map_err(|_| EncodeError::V6TooLong { len })?;
        let head = self
            .buf
            .get_mut(self.pos..end)
            .and_then(|h| h.first_chunk_mut::<4>())
            .ok_or(EncodeError::BufferTooSmall { required: end })?;
        write_tl(head, code, len);
        self.pos = end;
        Ok(())
    }

    /// Appends options that are already encoded (whole, valid TLVs) as they are.
    pub(crate) fn put_encoded(&mut self, encoded: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + encoded.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall { required: end })?
            .copy_from_slice(encoded);
        self.pos = end;
        Ok(())
    }

    /// Appends a one-byte option.
    pub fn put_u8(&mut self, code: u16, value: u8) -> Result<(), EncodeError> {
        self.put(code, &[value])
    }

    /// Appends a two-byte option.
    pub fn put_u16(&mut self, code: u16, value: u16) -> Result<(), EncodeError> {
        self.put(code, &value.to_be_bytes())
    }

    /// Appends a four-byte option.
    pub fn put_u32(&mut self, code: u16, value: u32) -> Result<(), EncodeError> {
        self.put(code, &value.to_be_bytes())
    }

    /// Appends an option whose data is `a` followed by `b`.
    pub fn put2(&mut self, code: u16, a: &[u8], b: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + 4 + a.len() + b.len();
        let len = u16::try_from(a.len() + b.len())
            .map_err(|_| EncodeError::MessageTooLong { len: end })?;
        let out = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall { required: end })?;
        let (head, body) = out
            .split_first_chunk_mut::<4>()
            .ok_or(EncodeError::BufferTooSmall { required: end })?;
        write_tl(head, code, len);
        let (x, y) = body.split_at_mut(a.len());
        x.copy_from_slice(a);
        y.copy_from_slice(b);
        self.pos = end;
        Ok(())
    }
}
