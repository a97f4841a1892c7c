//! Hex vector files: `idx time_s conn dir type len xid hex`, one message per line.

use std::time::Duration;

use super::{Decoded, Event, MessageRecord, Record};

/// Decodes a hex vector file.
///
/// Lines starting with `#` are comments; those of the form `# tcp conn=N FLAGS DIR t=SECONDS`
/// become TCP event records. Every other non-empty line is one message; a line that cannot be
/// read is reported in [`Decoded::input_errors`] and skipped.
pub fn decode_hex(text: &str) -> Decoded {
    let mut decoded = Decoded::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(record) = tcp_comment(comment) {
                decoded.records.push(record);
            }
            continue;
        }
        match message_line(line) {
            Ok(record) => decoded.records.push(record),
            Err(e) => decoded.input_errors.push(format!("line {}: {e}", n + 1)),
        }
    }
    decoded
}

/// `idx time_s conn dir type len xid hex`.
fn message_line(line: &str) -> Result<Record, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [idx, time, conn, dir, _ty, _len, _xid, hex] = fields.as_slice() else {
        return Err(format!(
            "expected 8 fields (idx time_s conn dir type len xid hex), found {}",
            fields.len()
        ));
    };
    let idx = idx.parse().map_err(|_| format!("bad idx {idx:?}"))?;
    let time = parse_seconds(time).ok_or_else(|| format!("bad time {time:?}"))?;
    let conn = conn.parse().map_err(|_| format!("bad conn {conn:?}"))?;
    let bytes = parse_hex(hex).ok_or_else(|| "bad hex message".to_owned())?;
    Ok(Record {
        time,
        conn,
        dir: (*dir).to_owned(),
        idx: Some(idx),
        event: Event::Message(MessageRecord::new(bytes)),
    })
}

/// ` tcp conn=2 SYN+ACK P:647>S:53341 t=3.212255`.
fn tcp_comment(comment: &str) -> Option<Record> {
    let fields: Vec<&str> = comment.split_whitespace().collect();
    let ["tcp", conn, flags, dir, time, ..] = fields.as_slice() else {
        return None;
    };
    Some(Record {
        time: parse_seconds(time.strip_prefix("t=")?)?,
        conn: conn.strip_prefix("conn=")?.parse().ok()?,
        dir: (*dir).to_owned(),
        idx: None,
        event: Event::Tcp {
            flags: (*flags).to_owned(),
        },
    })
}

/// Non-negative decimal seconds, to the nanosecond.
pub(crate) fn parse_seconds(s: &str) -> Option<Duration> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    Some(Duration::new(secs, nanos))
}

/// An even number of hex digits.
pub(crate) fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::decode::Problem;

    #[test]
    fn seconds() {
        assert_eq!(
            parse_seconds("3.212716"),
            Some(Duration::new(3, 212_716_000))
        );
        assert_eq!(parse_seconds("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_seconds("0.000000001"), Some(Duration::new(0, 1)));
        assert_eq!(parse_seconds("-1.0"), None);
        assert_eq!(parse_seconds(".5"), None);
        assert_eq!(parse_seconds("1.2.3"), None);
        assert_eq!(parse_seconds("1.0000000001"), None);
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("00ffA0"), Some(vec![0, 0xff, 0xa0]));
        assert_eq!(parse_hex("0"), None);
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(""), Some(vec![]));
    }

    #[test]
    fn lines_comments_and_errors() {
        let text = "# columns: idx time_s conn dir type len xid hex\n\
                    # tcp conn=2 SYN+ACK P:647>S:53341 t=3.212255\n\
                    \n\
                    1 3.5 2 P>S CONTACT 12 0x00000001 000c0b0c0000000000000001\n\
                    2 3.6 2 S>P CONTACT 12 0x00000001 000c0b0c00000000000000\n\
                    3 3.7 2 S>P CONTACT 12 0x00000001 000c0b0c000000000000000g\n\
                    4 3.8 2 S>P CONTACT\n";
        let d = decode_hex(text);
        assert_eq!(d.records.len(), 3);
        assert_eq!(
            d.records[0].event,
            Event::Tcp {
                flags: "SYN+ACK".into()
            }
        );
        assert_eq!(d.records[0].conn, 2);
        assert_eq!(d.records[0].dir, "P:647>S:53341");
        assert_eq!(d.records[1].idx, Some(1));
        assert_eq!(d.records[1].time, Duration::from_millis(3500));
        assert!(!d.records[1].is_error());
        // 11 bytes of a 12-byte message.
        let Event::Message(m) = &d.records[2].event else {
            panic!()
        };
        assert!(matches!(m.problem, Some(Problem::Decode(_))));
        assert_eq!(d.message_count(), 2);
        assert_eq!(d.error_count(), 1);
        assert_eq!(d.input_errors.len(), 2, "{:?}", d.input_errors);
        assert!(d.input_errors[0].starts_with("line 6: bad hex"));
        assert!(d.input_errors[1].starts_with("line 7: expected 8 fields"));
        assert_eq!(d.exit_status(), 2);
    }
}
