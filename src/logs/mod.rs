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

use std::io::{self, BufRead, Write};

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
pub fn mine_csv(format: Option<&str>, input: impl BufRead, out: impl Write) -> io::Result<()> {
    let cfg = MinerConfig {
        max_templates: usize::MAX,
        ..MinerConfig::default()
    };
    mine_csv_with(cfg, format, input, out)
}

/// [`mine_csv`] with an explicit miner configuration (for example extra masks).
pub fn mine_csv_with(
    cfg: MinerConfig,
    format: Option<&str>,
    mut input: impl BufRead,
    out: impl Write,
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
        Ok(text) => text.split_terminator('\n').for_each(&mut add_line),
        Err(_) => block
            .split(|b| *b == b'\n')
            .take(block.iter().filter(|b| **b == b'\n').count())
            .for_each(|l| add_line(&String::from_utf8_lossy(l))),
    };
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = input.fill_buf()?;
        let len = chunk.len();
        if len == 0 {
            break;
        }
        match chunk.iter().rposition(|b| *b == b'\n') {
            None => carry.extend_from_slice(chunk),
            Some(last) => {
                if carry.is_empty() {
                    add_block(&chunk[..=last]);
                } else {
                    carry.extend_from_slice(&chunk[..=last]);
                    add_block(&carry);
                    carry.clear();
                }
                carry.extend_from_slice(&chunk[last + 1..]);
            }
        }
        input.consume(len);
    }
    if !carry.is_empty() {
        carry.push(b'\n');
        add_block(&carry);
    }
    // final ids and their CSV-quoted templates, computed once per template
    let mut quoted: miner::FastMap<u32, String> = miner::FastMap::default();
    let mut w = io::BufWriter::with_capacity(1 << 16, out);
    w.write_all(b"LineId,EventId,Template\n")?;
    let mut row = String::with_capacity(256);
    for (i, id) in ids.iter().enumerate() {
        let fin = miner.resolve(*id);
        let t = quoted.entry(fin).or_insert_with(|| {
            let mut s = String::new();
            ga::push_csv_field(&mut s, &miner.template(fin).unwrap_or_default());
            s
        });
        row.clear();
        push_num(&mut row, i as u64 + 1);
        row.push(',');
        push_num(&mut row, fin as u64);
        row.push(',');
        row.push_str(t);
        row.push('\n');
        w.write_all(row.as_bytes())?;
    }
    w.flush()
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

    #[test]
    fn mine_csv_rejects_a_format_without_fields() {
        let err = mine_csv(Some("plain"), "x\n".as_bytes(), Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
