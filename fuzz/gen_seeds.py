#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets from the captured ISC test vectors.

* corpus/message/<sha1>: every message of every failover-proto/tests/vectors/*.hex file.
* corpus/frame/<sha1>: for each capture, TCP connection and direction, the concatenation of
  that direction's messages (the byte stream as it was on the wire), plus the same stream cut
  in the middle of its last message.
* A few hand-made boundary cases the captures lack: 2048-byte messages (and 2049), payload
  offset 8 and a padded header, an optional message type, streams that end on a bad length.

Files are named by the SHA-1 of their content, as libFuzzer names what it finds, so running
this again adds nothing twice. Standard library only: `python3 fuzz/gen_seeds.py`, or
`python3 fuzz/gen_seeds.py --boundary` for the hand-made cases alone (run after `cargo fuzz
cmin`, which drops those that add no coverage, so that the replay test keeps checking them).
"""

import hashlib
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "failover-proto" / "tests" / "vectors"


def write(folder: pathlib.Path, data: bytes) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha1(data).hexdigest()
    if path.exists():
        return False
    path.write_bytes(data)
    return True


def message(msg_type: int, options: bytes, poff: int = 12, pad: bytes = b"") -> bytes:
    """A message: 12-byte header (time 0x6553f105, xid 7), `pad`, then `options`."""
    length = 12 + len(pad) + len(options)
    head = struct.pack(">HBBII", length, msg_type, poff, 0x6553F105, 7)
    return head + pad + options


def opt(code: int, data: bytes) -> bytes:
    return struct.pack(">HH", code, len(data)) + data


def boundary_seeds() -> tuple[list[bytes], list[bytes]]:
    """(messages, streams) at the edges the ISC captures never reach."""
    binding = opt(2, bytes([192, 0, 2, 10])) + opt(3, bytes([1]))
    # A BNDUPD of exactly 2048 bytes: one FREE binding padded with a vendor option (code 250).
    fill = 2048 - 12 - len(binding) - 4
    bndupd_max = message(3, binding + opt(250, bytes(fill)))
    bndupd_over = message(3, binding + opt(250, bytes(fill + 1)))
    assert len(bndupd_max) == 2048 and len(bndupd_over) == 2049
    contact = message(11, b"")
    state = message(10, opt(24, b"\x01") + opt(23, b"\x00") + opt(25, bytes(4)))
    msgs = [
        bndupd_max,
        bndupd_over,
        # Payload offset 8 (the draft's text, read as 12) and 12 with 4 padding bytes (16).
        message(10, state[12:], poff=8),
        message(10, state[12:], poff=16, pad=b"\xde\xad\xbe\xef"),
        # Optional type 200 with a vendor option, and with a digest.
        message(200, opt(300, b"vendor") + opt(17, b"\x01" + bytes(16))),
        # Two bindings in one BNDUPD, then a BNDACK rejecting the second.
        message(3, binding + opt(2, bytes([192, 0, 2, 11])) + opt(3, bytes([7]))),
        message(4, opt(2, bytes([192, 0, 2, 10])) + opt(2, bytes([192, 0, 2, 11]))
                + opt(21, bytes([16])) + opt(16, b"outdated")),
    ]
    streams = [
        bndupd_max + contact + bndupd_max + state,
        contact + state + b"\x08\x01" + bytes(30),
        contact + b"\x00\x0b",
        state + bndupd_max[:1500],
    ]
    return msgs, streams


def main() -> None:
    messages = HERE / "corpus" / "message"
    frames = HERE / "corpus" / "frame"
    n_msg = n_frame = 0
    captures = [] if "--boundary" in sys.argv[1:] else sorted(VECTORS.glob("*.hex"))
    for hexfile in captures:
        streams: dict[tuple[str, str], list[bytes]] = {}
        for line in hexfile.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            # columns: idx time_s conn dir type len xid hex
            fields = line.split()
            conn, direction, raw = fields[2], fields[3], bytes.fromhex(fields[-1])
            n_msg += write(messages, raw)
            streams.setdefault((conn, direction), []).append(raw)
        for msgs in streams.values():
            stream = b"".join(msgs)
            n_frame += write(frames, stream)
            cut = len(stream) - len(msgs[-1]) // 2
            n_frame += write(frames, stream[:cut])
    extra_msgs, extra_streams = boundary_seeds()
    for m in extra_msgs:
        n_msg += write(messages, m)
    for st in extra_streams:
        n_frame += write(frames, st)
    print(f"wrote {n_msg} message seeds and {n_frame} frame seeds")


if __name__ == "__main__":
    main()
