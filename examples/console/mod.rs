//! Terminal output and argument parsing shared by the `pair` demo and the `peer` program.
//!
//! * [`Console`]: one line per event, stamped with the time since the program started and the
//!   speaker (`primary`, `secondary`, …); a progress line redrawn in place on a terminal
//!   (printed as ordinary lines otherwise); colours on a terminal unless `NO_COLOR` is set.
//! * [`Args`]: a tiny `--flag value` / `--flag=value` parser (the programs have a handful of
//!   flags each, not worth a dependency).
//! * Formatting helpers: [`mac`], [`state_name`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use failover_fsm::ServerState;

/// A colour (or emphasis) for a piece of text, used only on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Bold.
    Bold,
    /// Dimmed: secondary information.
    Dim,
    /// Green: success, NORMAL.
    Green,
    /// Yellow: degraded, waiting.
    Yellow,
    /// Red: failure, PARTNER-DOWN, a killed process.
    Red,
    /// Cyan: recovery states.
    Cyan,
    /// Blue: the primary.
    Blue,
    /// Magenta: the secondary.
    Magenta,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Red => "31",
            Style::Cyan => "36",
            Style::Blue => "34",
            Style::Magenta => "35",
        }
    }
}

/// The style of a failover state: green NORMAL, yellow COMMUNICATIONS-INTERRUPTED, red
/// PARTNER-DOWN and the conflict states, cyan the recovery states.
pub fn state_style(state: ServerState) -> Style {
    match state {
        ServerState::Normal => Style::Green,
        ServerState::CommunicationsInterrupted | ServerState::ResolutionInterrupted => {
            Style::Yellow
        }
        ServerState::PartnerDown
        | ServerState::PotentialConflict
        | ServerState::ConflictDone
        | ServerState::Shutdown => Style::Red,
        ServerState::Recover | ServerState::RecoverWait | ServerState::RecoverDone => Style::Cyan,
        _ => Style::Bold,
    }
}

/// The draft's name of a state (`COMMUNICATIONS-INTERRUPTED`, …).
pub fn state_name(state: ServerState) -> String {
    state.to_string()
}

/// A hardware address as `aa:bb:cc:dd:ee:ff`.
pub fn mac(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A count with thousands separators: `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Inner {
    out: Box<dyn Write + Send>,
    /// A progress line is on screen without its newline.
    progress: bool,
}

/// Where the programs print: timestamped lines, a progress line, a summary. Cheap to clone;
/// clones share the output and the start time.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
    tty: bool,
    color: bool,
    quiet: bool,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("tty", &self.tty)
            .field("color", &self.color)
            .field("quiet", &self.quiet)
            .finish_non_exhaustive()
    }
}

/// What a [`Console::capture`] console printed.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything printed so far.
    pub fn text(&self) -> String {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&g).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Console {
    /// Standard output: progress redrawn in place and colours when it is a terminal (colours
    /// off with `NO_COLOR`). `quiet` drops the timeline ([`Console::line`],
    /// [`Console::progress`]) and keeps [`Console::plain`] (the summary).
    pub fn stdout(quiet: bool) -> Console {
        let tty = io::stdout().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Console::new(Box::new(io::stdout()), tty, color, quiet)
    }

    /// A console that prints into memory, as a pipe would get it (no colours, progress as
    /// lines); for tests.
    pub fn capture(quiet: bool) -> (Console, Captured) {
        let captured = Captured::default();
        (
            Console::new(Box::new(captured.clone()), false, false, quiet),
            captured,
        )
    }

    fn new(out: Box<dyn Write + Send>, tty: bool, color: bool, quiet: bool) -> Console {
        Console {
            inner: Arc::new(Mutex::new(Inner {
                out,
                progress: false,
            })),
            start: Instant::now(),
            tty,
            color,
            quiet,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Time since the console was made (the program's start).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Whether the output is a terminal.
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// Whether the timeline is suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// `text` in `style` when colours are on, as is otherwise.
    pub fn paint(&self, style: Style, text: impl fmt::Display) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_string()
        }
    }

    /// A state name in its colour.
    pub fn state(&self, state: ServerState) -> String {
        self.paint(state_style(state), state_name(state))
    }

    fn stamp(&self, who: &str, who_style: Option<Style>, text: &str) -> String {
        let t = self.elapsed().as_secs_f64();
        let who = format!("{who:<9}");
        let who = match who_style {
            Some(s) => self.paint(s, who),
            None => who,
        };
        format!(
            "{} {who} {text}",
            self.paint(Style::Dim, format!("{t:>8.3}s"))
        )
    }

    fn write_line(&self, line: &str) {
        let mut g = self.lock();
        Self::put_line(&mut g, line);
    }

    fn put_line(g: &mut Inner, line: &str) {
        if g.progress {
            let _ = g.out.write_all(b"\r\x1b[2K");
            g.progress = false;
        }
        let _ = g.out.write_all(line.as_bytes());
        let _ = g.out.write_all(b"\n");
        let _ = g.out.flush();
    }

    /// A timeline line: `   1.234s primary   text`.
    pub fn line(&self, who: &str, text: impl AsRef<str>) {
        self.styled_line(who, None, text);
    }

    /// A timeline line with the speaker in `style`.
    pub fn styled_line(&self, who: &str, style: Option<Style>, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        // Stamped under the lock, so that the times of the lines go up.
        let mut g = self.lock();
        let line = self.stamp(who, style, text.as_ref());
        Self::put_line(&mut g, &line);
    }

    /// The progress line: redrawn in place on a terminal, an ordinary timeline line
    /// otherwise (call it less often then).
    pub fn progress(&self, who: &str, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let mut g = self.lock();
        let line = self.stamp(who, None, text.as_ref());
        if self.tty {
            let _ = g.out.write_all(b"\r\x1b[2K");
            let _ = g.out.write_all(line.as_bytes());
            let _ = g.out.flush();
            g.progress = true;
        } else {
            Self::put_line(&mut g, &line);
        }
    }

    /// A line without time stamp, printed even when quiet (summaries, verdicts).
    pub fn plain(&self, text: impl AsRef<str>) {
        self.write_line(text.as_ref());
    }
}

/// A command-line error: what was wrong, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// The arguments of a program, consumed flag by flag. `--flag=value` is the same as
/// `--flag value`.
#[derive(Debug, Clone)]
pub struct Args {
    items: VecDeque<String>,
}

impl Args {
    /// The arguments after the program name.
    pub fn new<I, S>(args: I) -> Args
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut items = VecDeque::new();
        for a in args {
            let a: String = a.into();
            match a.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    items.push_back(flag.to_string());
                    items.push_back(value.to_string());
                }
                _ => items.push_back(a),
            }
        }
        Args { items }
    }

    /// The next flag, or `None` at the end. Anything not starting with `-` is an error.
    pub fn next_flag(&mut self) -> Result<Option<String>, ArgError> {
        match self.items.pop_front() {
            None => Ok(None),
            Some(f) if f.starts_with('-') => Ok(Some(f)),
            Some(other) => Err(ArgError(format!("unexpected argument `{other}`"))),
        }
    }

    /// The value of `flag`, parsed.
    pub fn value<T>(&mut self, flag: &str) -> Result<T, ArgError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self
            .items
            .pop_front()
            .ok_or_else(|| ArgError(format!("{flag} needs a value")))?;
        raw.parse()
            .map_err(|e| ArgError(format!("{flag} {raw}: {e}")))
    }
}
