//! Pure log analysis: no cluster access, only text in and structured results out.
//!
//! - [`miner`]: an online template miner (clusters messages into templates such as
//!   `Received block <*> of size <*>`), measured with [`ga::grouping_accuracy`] on loghub-2k.
//! - [`format`]: loghub-style log formats (`<Date> <Time> <Level>: <Content>`).
//! - [`analyze`]: levels, templates, exceptions, first error, error rate and likely causes over
//!   the logs of many pods and containers.

pub mod analyze;
pub mod format;
pub mod ga;
pub mod miner;

use std::io::{self, Read, Write};

pub use analyze::{
    analyze, Analysis, AnalyzeOptions, ErrorBucket, ExceptionGroup, FirstError, Hint, Level,
    LevelCounts, LogLine, SourceCount, TemplateSummary,
};
pub use format::{FormatError, LogFormat, ParsedLine};
pub use ga::grouping_accuracy;
pub use miner::{Miner, MinerConfig, WILDCARD};

/// For `aiops-mcp logs mine [--format F] < FILE`: mines templates from `input` (one log line per
/// line; with `format`, only its `Content` field, lines that do not match going in whole) and
/// writes CSV `LineId,EventId,Template`, one row per input line, `LineId` from 1. `EventId` is the
/// line's *final* template id (after the whole input, so merges are resolved).
///
/// `input` is read in large blocks and `out` is written in large blocks: neither needs a buffer
/// of its own.
pub fn mine_csv(format: Option<&str>, input: impl Read, out: impl Write) -> io::Result<()> {
    let cfg = MinerConfig {
        max_templates: usize::MAX,
        ..MinerConfig::default()
    };
    mine_csv_with(cfg, format, input, out)
}

/// Bytes read from the input at a time (the buffer grows for a longer line).
const READ_BLOCK: usize = 1 << 20;
/// Bytes of CSV collected before one write.
const WRITE_BLOCK: usize = 1 << 20;

/// [`mine_csv`] with an explicit miner configuration (for example extra masks).
pub fn mine_csv_with(
    cfg: MinerConfig,
    format: Option<&str>,
    mut input: impl Read,
    mut out: impl Write,
) -> io::Result<()> {
    let fmt = match format {
        Some(f) => {
            Some(LogFormat::parse(f).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?)
        }
        None => None,
    };
    let mut miner = Miner::new(cfg);
    let mut ids: Vec<u32> = Vec::new();
    let mut spans = Vec::new();
    let mut add_line = |line: &str| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let content = match &fmt {
            Some(f) => f.content(line, &mut spans),
            None => line,
        };
        ids.push(miner.add(content));
    };
    // whole blocks of lines at a time: one UTF-8 check per block, no copy per line
    let mut add_block = |block: &[u8]| match std::str::from_utf8(block) {
        Ok(text) => for_each_line(text.as_bytes(), |s, e| add_line(&text[s..e])),
        Err(_) => for_each_line(block, |s, e| {
            add_line(&String::from_utf8_lossy(&block[s..e]))
        }),
    };
    let mut buf = vec![0u8; READ_BLOCK];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // one line longer than the buffer
            buf.resize(buf.len() * 2, 0);
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        // complete lines only, except at the end of the input
        let upto = if n == 0 {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[filled - n..filled]) {
                Some(p) => filled - n + p + 1,
                None => continue,
            }
        };
        add_block(&buf[..upto]);
        buf.copy_within(upto..filled, 0);
        filled -= upto;
        if n == 0 {
            break;
        }
    }
    write_csv(&miner, &ids, &mut out)
}

/// Calls `f(start, end)` for every line of `b`: pieces ended by `\n`, and a last piece without
/// one when it is not empty.
#[inline]
fn for_each_line(b: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', b) {
        f(start, nl);
        start = nl + 1;
    }
    if start < b.len() {
        f(start, b.len());
    }
}

/// Writes the CSV: one row per line with its final template id; the `,EventId,Template` part of
/// each row is formatted once per template.
fn write_csv(miner: &Miner, ids: &[u32], out: &mut impl Write) -> io::Result<()> {
    let mut tails: Vec<Option<Box<[u8]>>> = Vec::new();
    let mut w: Vec<u8> = Vec::with_capacity(WRITE_BLOCK + 4096);
    w.extend_from_slice(b"LineId,EventId,Template\n");
    let mut line_no = Counter::default();
    for id in ids {
        let fin = miner.resolve(*id);
        let slot = fin as usize;
        if slot >= tails.len() {
            tails.resize(slot + 1, None);
        }
        let tail = tails[slot].get_or_insert_with(|| {
            let mut s = String::from(",");
            push_num(&mut s, fin as u64);
            s.push(',');
            ga::push_csv_field(&mut s, &miner.template(fin).unwrap_or_default());
            s.push('\n');
            s.into_bytes().into_boxed_slice()
        });
        line_no.increment();
        w.extend_from_slice(line_no.digits());
        w.extend_from_slice(tail);
        if w.len() >= WRITE_BLOCK {
            out.write_all(&w)?;
            w.clear();
        }
    }
    out.write_all(&w)?;
    out.flush()
}

/// A decimal counter kept as ASCII digits, so that counting up needs no division.
struct Counter {
    buf: [u8; 20],
    start: usize,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            buf: [b'0'; 20],
            start: 19,
        }
    }
}

impl Counter {
    fn increment(&mut self) {
        let mut i = self.buf.len();
        loop {
            i -= 1;
            if self.buf[i] == b'9' {
                self.buf[i] = b'0';
            } else {
                self.buf[i] += 1;
                break;
            }
        }
        self.start = self.start.min(i);
    }

    fn digits(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn push_num(s: &mut String, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // the bytes are ASCII digits
    s.push_str(std::str::from_utf8(&tmp[i..]).unwrap_or("0"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mine_csv_writes_one_row_per_line_with_final_ids() {
        let input = "2024-01-01 10:00:00 INFO: session closed for user root\r\n\
                     2024-01-01 10:00:01 INFO: session closed for user alice\n\
                     not matching, \"quoted\"";
        let mut out = Vec::new();
        mine_csv(
            Some("<Date> <Time> <Level>: <Content>"),
            input.as_bytes(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows = ga::parse_csv(&text);
        assert_eq!(rows[0], vec!["LineId", "EventId", "Template"]);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1][0], "1");
        assert_eq!(rows[1][1], rows[2][1]);
        assert_eq!(rows[1][2], "session closed for user <*>");
        assert_eq!(rows[3][2], "not matching, \"quoted\"");
        assert_ne!(rows[3][1], rows[1][1]);
    }

    /// A reader that hands out a few bytes per call, so lines straddle reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn mine_csv_is_the_same_however_the_input_is_split_into_reads() {
        let mut input = String::new();
        for i in 0..300 {
            input.push_str(&format!("INFO: job {i} done in {} ms\r\n", i * 7));
            input.push_str("INFO: cache cleared\n\n");
        }
        // one line longer than the read buffer, and a last line without a newline
        input.push_str(&format!("INFO: {}\n", "word ".repeat(READ_BLOCK / 4)));
        input.push_str("INFO: job 5 done in 1 ms");
        let fmt = Some("<Level>: <Content>");
        let mut whole = Vec::new();
        mine_csv(fmt, input.as_bytes(), &mut whole).unwrap();
        let mut split = Vec::new();
        mine_csv(fmt, Trickle(input.as_bytes()), &mut split).unwrap();
        assert!(whole == split);
        let rows = ga::parse_csv(&String::from_utf8(whole).unwrap());
        assert_eq!(rows.len(), 1 + 300 * 3 + 2);
        assert_eq!(rows[1][2], "job <*> done in <*> ms");
        assert_eq!(rows[2][2], "cache cleared");
        assert_eq!(rows[3][2], "");
        assert_eq!(rows[902][0], "902");
        assert_eq!(rows[902][1], rows[1][1]);
    }

    #[test]
    fn line_counter_counts_in_decimal() {
        let mut c = Counter::default();
        for n in 1..=10_001u64 {
            c.increment();
            assert_eq!(c.digits(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn mine_csv_rejects_a_format_without_fields() {
        let err = mine_csv(Some("plain"), "x\n".as_bytes(), Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
