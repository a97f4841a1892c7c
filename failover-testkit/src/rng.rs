//! A small deterministic PRNG (SplitMix64): every choice of a simulation run comes from one of
//! these, seeded by the run's seed, so a seed replays exactly.
//!
//! Tape mode ([`Rng::from_tape`], the `pair` fuzz target's): the choices are read from the
//! input bytes first — `below(n)` takes just enough bytes for `n` (1 for up to 256 values, 2
//! for up to 65,536, ...), little-endian, modulo `n`; `next_u64` takes 8 — so each byte of the
//! input steers one decision (configuration, clients, faults, latencies) in the order the run
//! makes them. Once the tape is used up, the choices come from SplitMix64 seeded from a hash of
//! the tape, so every input gives a complete, deterministic run. [`Rng::recording`] writes down
//! the tape that replays a seeded run's choices.

/// The most of a fuzz input that is read as a tape.
pub const MAX_TAPE: usize = 4096;

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    /// Tape mode: the input, and how much of it has been read.
    tape: Vec<u8>,
    pos: usize,
    /// Recording: every choice so far, as the tape that replays it.
    record: Option<Vec<u8>>,
}

/// How many tape bytes a choice among `n` values takes (none for `n == 1`).
fn width(n: u64) -> usize {
    let bits = 64 - (n - 1).leading_zeros() as usize;
    bits.div_ceil(8)
}

/// FNV-1a over `bytes`.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // Decorrelate neighbouring seeds.
        let mut r = Rng {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
            tape: Vec::new(),
            pos: 0,
            record: None,
        };
        r.splitmix();
        r
    }

    /// Choices read from `bytes` (at most [`MAX_TAPE`] of them), then from SplitMix64 seeded
    /// with [`Rng::tape_hash`] of them.
    pub fn from_tape(bytes: &[u8]) -> Self {
        let tape = bytes[..bytes.len().min(MAX_TAPE)].to_vec();
        let mut r = Rng::new(fnv(&tape));
        r.tape = tape;
        r
    }

    /// The hash of a tape: it seeds the choices after the tape, and names the run.
    pub fn tape_hash(bytes: &[u8]) -> u64 {
        fnv(&bytes[..bytes.len().min(MAX_TAPE)])
    }

    /// `Rng::new(seed)` that also writes down its choices (see [`Rng::take_record`]).
    pub fn recording(seed: u64) -> Self {
        let mut r = Rng::new(seed);
        r.record = Some(Vec::new());
        r
    }

    /// The tape that replays the choices made so far (empty unless [`Rng::recording`]).
    pub fn take_record(&mut self) -> Vec<u8> {
        self.record.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// How many tape bytes have been read.
    pub fn tape_used(&self) -> usize {
        self.pos
    }

    fn splitmix(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next `width` bytes of the tape, little-endian (fewer at its end); `None` once it
    /// is used up.
    fn read_tape(&mut self, width: usize) -> Option<u64> {
        let rest = self.tape.get(self.pos..).filter(|r| !r.is_empty())?;
        let take = &rest[..width.min(rest.len())];
        self.pos += take.len();
        Some(
            take.iter()
                .rev()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        )
    }

    fn write_record(&mut self, v: u64, width: usize) {
        if let Some(rec) = self.record.as_mut() {
            rec.extend_from_slice(&v.to_le_bytes()[..width]);
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let v = match self.read_tape(8) {
            Some(v) => v,
            None => self.splitmix(),
        };
        self.write_record(v, 8);
        v
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let w = width(n);
        let v = match self.read_tape(w) {
            Some(v) => v % n,
            None => self.splitmix() % n,
        };
        self.write_record(v, w);
        v
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Choices drawn from a second generator, `side`, but taped as `main`'s: a seeded run draws
/// them from `side` alone (so that adding them left every earlier seed's run as it was), a
/// recording writes them into `main`'s tape, and a tape run reads them from there. Without
/// this a tape replays a seed's run only until the first of them.
pub(crate) struct Side<'a> {
    pub(crate) main: &'a mut Rng,
    pub(crate) side: &'a mut Rng,
}

impl Side<'_> {
    /// Uniform in `0..n` (0 when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let w = width(n);
        let taped = if self.main.tape.is_empty() {
            None
        } else {
            self.main.read_tape(w)
        };
        let v = match taped {
            Some(v) => v % n,
            None => self.side.splitmix() % n,
        };
        self.main.write_record(v, w);
        v
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[test]
fn rng_is_deterministic_and_spread() {
    let mut a = Rng::new(42);
    let mut b = Rng::new(42);
    let xs: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
    let ys: Vec<u64> = (0..100).map(|_| b.below(10)).collect();
    assert_eq!(xs, ys);
    for v in 0..10 {
        assert!(xs.contains(&v), "value {v} never drawn");
    }
    assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
}

#[test]
fn seeded_choices_are_unchanged() {
    // The values SplitMix64 gave before tape mode existed: old seeds replay the same run.
    let mut r = Rng::new(11);
    let got = [
        r.next_u64(),
        r.below(1000),
        r.range(30, 300),
        r.below(u64::MAX),
    ];
    assert_eq!(
        got,
        [0x010f_a8c2_d530_53a2, 507, 236, 0x893d_bded_f954_b81a]
    );
}

#[test]
fn a_tape_steers_each_choice_then_a_hash_of_it_takes_over() {
    let mut r = Rng::from_tape(&[7, 0x34, 0x12, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(r.below(10), 7);
    assert_eq!(r.below(60_000), 0x1234);
    assert!(r.chance(1)); // 200 % 100 == 0
    assert_eq!(r.next_u64(), 0x0807_0605_0403_0201);
    // One byte left: a wide choice takes what there is.
    assert_eq!(r.below(1 << 40), 9);
    assert_eq!(r.tape_used(), 13);
    // Then SplitMix64 from the tape's hash: the same for the same tape, not for another.
    let tape = [7u8, 0x34, 0x12, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let mut after = Rng::new(Rng::tape_hash(&tape));
    assert_eq!(r.next_u64(), after.next_u64());
    assert_ne!(Rng::tape_hash(&tape), Rng::tape_hash(&tape[..12]));
    // Input past MAX_TAPE is not read.
    let long = vec![1u8; MAX_TAPE + 100];
    let mut r = Rng::from_tape(&long);
    assert!((0..MAX_TAPE).all(|_| r.below(256) == 1));
    assert_eq!(r.tape_used(), MAX_TAPE);
    let mut after = Rng::new(Rng::tape_hash(&long[..MAX_TAPE]));
    assert_eq!(r.next_u64(), after.next_u64());
}

#[test]
fn a_recording_replays_as_a_tape() {
    let mut seeded = Rng::recording(5);
    let draws: Vec<u64> = (0..200)
        .map(|i| match i % 4 {
            0 => seeded.below(3),
            1 => seeded.range(500, 6000),
            2 => seeded.next_u64(),
            _ => seeded.below(u64::from(u32::MAX) + 7),
        })
        .collect();
    let mut plain = Rng::new(5);
    let mut tape = Rng::from_tape(&seeded.take_record());
    for (i, &d) in draws.iter().enumerate() {
        let (p, t) = match i % 4 {
            0 => (plain.below(3), tape.below(3)),
            1 => (plain.range(500, 6000), tape.range(500, 6000)),
            2 => (plain.next_u64(), tape.next_u64()),
            _ => (
                plain.below(u64::from(u32::MAX) + 7),
                tape.below(u64::from(u32::MAX) + 7),
            ),
        };
        assert_eq!((p, t), (d, d), "draw {i}");
    }
}
