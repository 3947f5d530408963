//! The trace of a run: every step, every packet sent and delivered (its bytes), every final
//! state, folded into one SHA-256 digest. The same seed gives the same digest on any machine:
//! nothing in a run depends on wall-clock time, thread timing or hash order.

use ring::digest::{Context, SHA256};

pub struct Trace {
    hash: Context,
    /// The most recent lines, for the report of a violation.
    recent: std::collections::VecDeque<String>,
    /// Print every line (`--verbose`).
    pub echo: bool,
}

const RECENT: usize = 12;

impl Trace {
    pub fn new(seed: u64) -> Trace {
        let mut hash = Context::new(&SHA256);
        hash.update(b"fqsim trace v1\n");
        hash.update(&seed.to_le_bytes());
        Trace {
            hash,
            recent: std::collections::VecDeque::new(),
            echo: false,
        }
    }

    /// A line of the trace.
    pub fn note(&mut self, line: &str) {
        self.hash.update(line.as_bytes());
        self.hash.update(b"\n");
        if self.echo {
            println!("  {line}");
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_owned());
    }

    /// A packet sent or delivered: its description and its bytes.
    pub fn packet(&mut self, what: &str, describe: &str, bytes: &[u8]) {
        self.note(&format!("{what} {describe}"));
        self.hash.update(&(bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
    }

    /// Raw state folded in (final states).
    pub fn state(&mut self, bytes: &[u8]) {
        self.hash.update(&(bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
    }

    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }

    pub fn finish(self) -> [u8; 32] {
        let d = self.hash.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
