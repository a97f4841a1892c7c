//! BNDUPD (§7.1) and BNDACK (§7.2): batched binding transactions, as a lazily decoded
//! [`BindingList`].

use core::fmt;

use super::{Body, digest_len, digest_of, missing, put_digest};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::option::{CodeSet, ExtraOptions, OptionCode, OptionWriter, Options, scan};
use crate::value::MessageDigest;

use super::binding::{Binding, BindingAck, Transaction};

/// Splits a validated binding region into transactions: each starts at an assigned-IP-address
/// and runs to the next one or to the message-digest.
#[derive(Debug, Clone)]
struct Transactions<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Transactions<'a> {
    type Item = (&'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let mut len = 0;
        for o in Options::new(self.rest, self.offset) {
            let Ok(o) = o else { break };
            if (len > 0 && o.code == 2) || o.code == 17 {
                break;
            }
            len += o.wire_len();
        }
        if len == 0 {
            return None;
        }
        let (txn, rest) = self.rest.split_at_checked(len)?;
        let at = self.offset;
        self.rest = rest;
        self.offset += len;
        Some((txn, at))
    }
}

/// The binding transactions of a BNDUPD or BNDACK: decoded lazily from the wire, or a slice
/// given by the sender.
///
/// A list decoded from the wire (already validated by `parse`) is re-emitted as it was received,
/// byte for byte; a list built from a slice is encoded from its typed values.
#[derive(Clone, Copy)]
pub struct BindingList<'a, T> {
    inner: ListInner<'a, T>,
}

#[derive(Clone, Copy)]
enum ListInner<'a, T> {
    Wire { raw: &'a [u8], offset: usize },
    Slice(&'a [T]),
}

impl<'a, T: Transaction<'a>> BindingList<'a, T> {
    /// The transactions of `items`, to be encoded in that order.
    pub const fn from_slice(items: &'a [T]) -> Self {
        BindingList {
            inner: ListInner::Slice(items),
        }
    }

    /// One transaction.
    pub const fn single(item: &'a T) -> Self {
        Self::from_slice(core::slice::from_ref(item))
    }

    /// Iterates over the transactions.
    pub fn iter(&self) -> BindingIter<'a, T> {
        match self.inner {
            ListInner::Wire { raw, offset } => BindingIter {
                inner: IterInner::Wire(Transactions { rest: raw, offset }),
            },
            ListInner::Slice(s) => BindingIter {
                inner: IterInner::Slice(s.iter()),
            },
        }
    }

    /// The first transaction.
    pub fn first(&self) -> Option<T> {
        self.iter().next()
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        match self.inner {
            // Validated when the message was parsed: count the transactions' boundaries
            // without decoding their fields.
            ListInner::Wire { raw, offset } => Transactions { rest: raw, offset }.count(),
            ListInner::Slice(s) => s.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        match self.inner {
            // A parsed region starts with an assigned-IP-address: empty or one transaction+.
            ListInner::Wire { raw, .. } => raw.is_empty(),
            ListInner::Slice(s) => s.is_empty(),
        }
    }

    fn wire_len(&self) -> usize {
        match self.inner {
            ListInner::Wire { raw, .. } => raw.len(),
            ListInner::Slice(s) => s.iter().map(T::wire_len).sum(),
        }
    }

    fn write(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
        if self.is_empty() {
            return Err(EncodeError::NoBinding);
        }
        match self.inner {
            // Validated options, re-encoded byte for byte: copy them as they are.
            ListInner::Wire { raw, .. } => w.put_encoded(raw),
            ListInner::Slice(s) => s.iter().try_for_each(|t| t.write(w)),
        }
    }
}

/// Iterator over a [`BindingList`].
#[derive(Debug, Clone)]
pub struct BindingIter<'a, T> {
    inner: IterInner<'a, T>,
}

#[derive(Debug, Clone)]
enum IterInner<'a, T> {
    Wire(Transactions<'a>),
    Slice(core::slice::Iter<'a, T>),
}

impl<'a, T: Transaction<'a>> Iterator for BindingIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.inner {
            // Validated when the message was parsed, so this cannot fail.
            IterInner::Wire(t) => t.next().and_then(|(raw, at)| T::parse_txn(raw, at).ok()),
            IterInner::Slice(s) => s.next().copied(),
        }
    }
}

impl<'a, T: Transaction<'a> + PartialEq> PartialEq for BindingList<'a, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: Transaction<'a> + Eq> Eq for BindingList<'a, T> {}

impl<'a, T: Transaction<'a> + fmt::Debug> fmt::Debug for BindingList<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<'a, T: Transaction<'a> + defmt::Format> defmt::Format for BindingList<'a, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for t in self.iter() {
            defmt::write!(f, "{}, ", t);
        }
        defmt::write!(f, "]");
    }
}

/// Parses the payload of a batched message: message-level options, then transactions.
fn parse_batched<'a, T: Transaction<'a>>(
    payload: &'a [u8],
    base: usize,
    binding_codes: CodeSet,
) -> Result<
    (
        ExtraOptions<'a>,
        BindingList<'a, T>,
        Option<MessageDigest<'a>>,
    ),
    DecodeError,
> {
    let mut first: Option<usize> = None;
    let mut digest = None;
    // Where the binding region ends: at the message-digest (always last), else at the end.
    let mut end = payload.len();
    let mut transactions = 0usize;
    scan(payload, base, true, |o| {
        if o.code == 2 {
            transactions += 1;
            first.get_or_insert(o.offset - base);
        } else if o.code == 17 {
            digest = Some(digest_of(&o));
            end = o.offset - base;
        } else if first.is_none() && binding_codes.contains(o.code) {
            return Err(DecodeError::new(
                DecodeErrorKind::OptionOutsideBinding(o.code),
                o.offset,
            ));
        }
        Ok(())
    })?;
    let Some(first) = first else {
        return Err(missing(OptionCode::AssignedIpAddress, base));
    };
    let head = payload.get(..first).unwrap_or_default();
    // The transactions, back to back: validated options from the first assigned-IP-address up
    // to the message-digest.
    let raw = payload.get(first..end).unwrap_or_default();
    let offset = base + first;
    if transactions == 1 {
        // The only transaction is the whole region (ISC always sends one): no need to split.
        T::parse_txn(raw, offset)?;
    } else {
        for (t, at) in (Transactions { rest: raw, offset }) {
            T::parse_txn(t, at)?;
        }
    }
    Ok((
        ExtraOptions::from_wire(head, base, CodeSet::of(&[17])),
        BindingList {
            inner: ListInner::Wire { raw, offset },
        },
        digest,
    ))
}

/// Codes that only belong inside a binding transaction of a BNDUPD.
const BNDUPD_BINDING_CODES: CodeSet = CodeSet::of(&[3, 4, 5, 6, 7, 8, 9, 12, 13, 18, 25]);
/// Codes that only belong inside a binding transaction of a BNDACK.
const BNDACK_BINDING_CODES: CodeSet = CodeSet::of(&[3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 18, 21, 25]);

/// Defines a batched message (BNDUPD, BNDACK): message-level options, then transactions of
/// type `$txn` in the field `$list`, then the digest. `$codes` are the codes that only belong
/// inside a transaction.
macro_rules! batched_message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<'a> {
            $(#[$xid_meta:meta])* xid,
            $(#[$list_meta:meta])* $list:ident: $txn:ident,
            $(#[$extra_meta:meta])* extra,
        }
        $(#[$single_meta:meta])*
        fn single($one:ident);
        codes: $codes:expr;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// Header time.
            pub time: u32,
            $(#[$xid_meta])*
            pub xid: u32,
            $(#[$list_meta])*
            pub $list: BindingList<'a, $txn<'a>>,
            $(#[$extra_meta])*
            pub extra: ExtraOptions<'a>,
            /// message-digest.
            pub digest: Option<MessageDigest<'a>>,
        }

        impl<'a> $name<'a> {
            $(#[$single_meta])*
            pub const fn single(time: u32, xid: u32, $one: &'a $txn<'a>) -> Self {
                $name {
                    time,
                    xid,
                    $list: BindingList::single($one),
                    extra: ExtraOptions::EMPTY,
                    digest: None,
                }
            }
        }

        impl<'a> Body<'a> for $name<'a> {
            fn parse_payload(
                time: u32,
                xid: u32,
                payload: &'a [u8],
                base: usize,
            ) -> Result<Self, DecodeError> {
                let (extra, $list, digest) = parse_batched(payload, base, $codes)?;
                Ok($name {
                    time,
                    xid,
                    $list,
                    extra,
                    digest,
                })
            }

            fn payload_len(&self) -> usize {
                self.extra.wire_len() + self.$list.wire_len() + digest_len(&self.digest)
            }

            fn emit_payload(&self, w: &mut OptionWriter<'_>) -> Result<(), EncodeError> {
                self.extra.write(w)?;
                self.$list.write(w)?;
                put_digest(w, &self.digest)
            }
        }

        message_api!($name);
    };
}

batched_message! {
    /// BNDUPD (§7.1): one or more binding updates. ISC dhcpd sends and accepts exactly one.
    pub struct BndUpd<'a> {
        /// Header xid; the BNDACK echoes it.
        xid,
        /// The binding transactions.
        bindings: Binding,
        /// Message-level options not modelled here (before the first binding).
        extra,
    }
    /// A BNDUPD carrying one binding, as ISC dhcpd sends them.
    fn single(binding);
    codes: BNDUPD_BINDING_CODES;
}

batched_message! {
    /// BNDACK (§7.2): the answer to a BNDUPD, with its xid; one transaction per binding.
    pub struct BndAck<'a> {
        /// Header xid (the BNDUPD's).
        xid,
        /// One acknowledgement per binding of the BNDUPD.
        acks: BindingAck,
        /// Message-level options not modelled here.
        extra,
    }
    /// A BNDACK answering one binding.
    fn single(ack);
    codes: BNDACK_BINDING_CODES;
}
