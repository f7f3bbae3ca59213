//! Loghub-style log formats: `<Date> <Time> <Level> \[<Component>\]: <Content>`.
//!
//! `<Name>` is a field; the text between fields is a regex fragment in which a run of spaces
//! matches any run of whitespace. Fields match lazily (as little as possible), so each field ends
//! at the first place where the rest of the format can follow; the last field takes the rest of
//! the line. On the fast engine (below) a field followed by whitespace holds no whitespace
//! itself, which keeps lines that do not match cheap to reject.
//!
//! Formats whose fragments are plain text, escaped punctuation, spaces and optional groups
//! `( … )?` (for example `<Component>(\[<PID>\])?: <Content>`) run on a small hand-written
//! matcher that allocates nothing per line; any other regex syntax falls back to the `regex`
//! crate with the same semantics.

use regex::Regex;

/// Error in a log format string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("log format has no <Field>")]
    NoFields,
    #[error("log format is not a valid pattern: {0}")]
    Pattern(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    /// One or more whitespace characters (greedy; any byte up to `b' '` counts).
    Ws,
    /// Literal text.
    Text(String),
    /// Field number (index into `names`).
    Field(usize),
}

#[derive(Debug, Clone)]
enum Engine {
    /// Alternatives (from optional groups, the "group present" variants first).
    Fast(Vec<Vec<Seg>>),
    Regex {
        re: Regex,
        groups: Vec<usize>,
    },
}

/// A compiled log format.
#[derive(Debug, Clone)]
pub struct LogFormat {
    names: Vec<String>,
    engine: Engine,
    content: Option<usize>,
    /// When the format is `<A> <B> … <Content>` (fields separated by whitespace only, no
    /// optional parts, `Content` last): the number of separators before `Content`. The content
    /// then starts after that many runs of whitespace, found without matching the other fields.
    flat: Option<usize>,
}

/// One parsed line: field name → text. Lines that do not match the format have only `Content`,
/// the whole line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub fields: Vec<(&'a str, &'a str)>,
}

impl<'a> ParsedLine<'a> {
    /// The value of field `name` (exact name), if the line has it.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
    /// The message part of the line.
    pub fn content(&self) -> &'a str {
        self.get("Content").unwrap_or("")
    }
    /// The `Level` field, if any.
    pub fn level(&self) -> Option<&'a str> {
        self.get("Level")
    }
    /// `Date` and `Time` (or `Timestamp`) joined by a space, whichever exist.
    pub fn timestamp(&self) -> Option<String> {
        match (self.get("Date"), self.get("Time"), self.get("Timestamp")) {
            (Some(d), Some(t), _) => Some(format!("{d} {t}")),
            (Some(d), None, _) => Some(d.to_string()),
            (None, Some(t), _) => Some(t.to_string()),
            (None, None, Some(ts)) => Some(ts.to_string()),
            _ => None,
        }
    }
}

/// Splits a format string into fragments and field names: `[frag0, name0, frag1, name1, …, fragN]`.
fn split_format(fmt: &str) -> (Vec<&str>, Vec<&str>) {
    let mut frags = Vec::new();
    let mut names = Vec::new();
    let mut rest = fmt;
    loop {
        // a field is `<name>` with a name free of `<`, `>` and whitespace
        let found = rest.char_indices().find_map(|(i, c)| {
            if c != '<' {
                return None;
            }
            let after = &rest[i + 1..];
            let end = after.find(['<', '>'])?;
            let name = &after[..end];
            (after.as_bytes()[end] == b'>'
                && !name.is_empty()
                && !name.contains(char::is_whitespace))
            .then_some((i, name))
        });
        match found {
            Some((i, name)) => {
                frags.push(&rest[..i]);
                names.push(name);
                rest = &rest[i + name.len() + 2..];
            }
            None => {
                frags.push(rest);
                return (frags, names);
            }
        }
    }
}

/// Parses a fragment for the fast engine: `None` when it uses regex syntax the fast engine does
/// not cover. Produces a list of alternatives-to-be: items are either segments or an optional
/// group (its own item list).
#[derive(Debug, Clone)]
enum Item {
    Seg(Seg),
    Opt(Vec<Item>),
}

fn parse_fast(format_frags: &[&str], field_count: usize) -> Option<Vec<Item>> {
    // interleave fragments and fields into one character stream with field markers
    let mut items: Vec<Vec<Item>> = vec![Vec::new()];
    let mut text = String::new();
    fn flush(text: &mut String, items: &mut [Vec<Item>]) {
        if !text.is_empty() {
            items
                .last_mut()
                .unwrap()
                .push(Item::Seg(Seg::Text(std::mem::take(text))));
        }
    }
    for (fi, frag) in format_frags.iter().enumerate() {
        let mut chars = frag.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let e = chars.next()?;
                    match e {
                        's' => {
                            if chars.peek() == Some(&'+') {
                                chars.next();
                            }
                            flush(&mut text, &mut items);
                            push_ws(items.last_mut().unwrap());
                        }
                        e if e.is_ascii_punctuation() => text.push(e),
                        _ => return None,
                    }
                }
                ' ' => {
                    while chars.peek() == Some(&' ') {
                        chars.next();
                    }
                    flush(&mut text, &mut items);
                    push_ws(items.last_mut().unwrap());
                }
                '(' => {
                    flush(&mut text, &mut items);
                    items.push(Vec::new());
                }
                ')' => {
                    if chars.next() != Some('?') || items.len() < 2 {
                        return None;
                    }
                    flush(&mut text, &mut items);
                    let group = items.pop().unwrap();
                    items.last_mut().unwrap().push(Item::Opt(group));
                }
                '.' | '*' | '+' | '?' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => return None,
                c => text.push(c),
            }
        }
        if fi < field_count {
            flush(&mut text, &mut items);
            items.last_mut().unwrap().push(Item::Seg(Seg::Field(fi)));
        }
    }
    flush(&mut text, &mut items);
    if items.len() != 1 {
        return None;
    }
    items.pop()
}

fn push_ws(items: &mut Vec<Item>) {
    if !matches!(items.last(), Some(Item::Seg(Seg::Ws))) {
        items.push(Item::Seg(Seg::Ws));
    }
}

/// Expands optional groups into alternatives, "present" before "absent", at most 16.
fn expand(items: &[Item]) -> Vec<Vec<Seg>> {
    let mut alts: Vec<Vec<Seg>> = vec![Vec::new()];
    for it in items {
        match it {
            Item::Seg(s) => alts.iter_mut().for_each(|a| a.push(s.clone())),
            Item::Opt(inner) => {
                let inner_alts = expand(inner);
                let mut next = Vec::new();
                for a in &alts {
                    for ia in &inner_alts {
                        let mut x = a.clone();
                        x.extend(ia.iter().cloned());
                        next.push(x);
                    }
                    next.push(a.clone());
                }
                alts = next;
            }
        }
        if alts.len() > 16 {
            alts.truncate(16);
        }
    }
    // merge adjacent Ws produced by expansion
    for a in &mut alts {
        a.dedup_by(|x, y| *x == Seg::Ws && *y == Seg::Ws);
    }
    alts
}

impl LogFormat {
    /// Compiles a loghub-style format string.
    pub fn parse(fmt: &str) -> Result<LogFormat, FormatError> {
        let (frags, names) = split_format(fmt);
        if names.is_empty() {
            return Err(FormatError::NoFields);
        }
        let content = names.iter().position(|n| *n == "Content");
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let engine = match parse_fast(&frags, names.len()) {
            Some(items) => Engine::Fast(expand(&items)),
            None => {
                let mut pat = String::from("^");
                for (i, frag) in frags.iter().enumerate() {
                    let mut prev_space = false;
                    for c in frag.chars() {
                        if c == ' ' {
                            if !prev_space {
                                pat.push_str(r"\s+");
                            }
                            prev_space = true;
                        } else {
                            pat.push(c);
                            prev_space = false;
                        }
                    }
                    if i < names.len() {
                        pat.push_str(&format!("(?P<f{i}>.*?)"));
                    }
                }
                pat.push('$');
                let re = Regex::new(&pat).map_err(|e| FormatError::Pattern(e.to_string()))?;
                let groups = (0..names.len())
                    .map(|i| {
                        let want = format!("f{i}");
                        re.capture_names()
                            .position(|n| n == Some(want.as_str()))
                            .unwrap_or(0)
                    })
                    .collect();
                Engine::Regex { re, groups }
            }
        };
        let flat = match (&engine, content) {
            (Engine::Fast(alts), Some(ci)) if alts.len() == 1 => flat_separators(&alts[0], ci),
            _ => None,
        };
        Ok(LogFormat {
            names: owned,
            engine,
            content,
            flat,
        })
    }

    /// Field names in format order.
    pub fn field_names(&self) -> &[String] {
        &self.names
    }

    /// Matches `line`, filling `spans` with one byte range per field (`(0, 0)` for a field of an
    /// absent optional group). False (spans unspecified) when the line does not match.
    pub fn match_spans(&self, line: &str, spans: &mut Vec<(usize, usize)>) -> bool {
        if spans.len() != self.names.len() {
            spans.clear();
            spans.resize(self.names.len(), (0, 0));
        }
        match &self.engine {
            // one alternative sets every field when it matches
            Engine::Fast(alts) if alts.len() == 1 => {
                match_segs(&alts[0], line.as_bytes(), 0, spans)
            }
            Engine::Fast(alts) => alts.iter().any(|segs| {
                // a field of an absent optional group stays (0, 0)
                spans.iter_mut().for_each(|s| *s = (0, 0));
                match_segs(segs, line.as_bytes(), 0, spans)
            }),
            Engine::Regex { re, groups } => match re.captures(line) {
                Some(caps) => {
                    for (i, g) in groups.iter().enumerate() {
                        spans[i] = caps.get(*g).map_or((0, 0), |m| (m.start(), m.end()));
                    }
                    true
                }
                None => false,
            },
        }
    }

    /// The `Content` field of `line`, or the whole line when it does not match (or the format has
    /// no `Content`).
    pub fn content<'a>(&self, line: &'a str, spans: &mut Vec<(usize, usize)>) -> &'a str {
        if let Some(n) = self.flat {
            return match after_ws_runs(line.as_bytes(), n) {
                // after whitespace (ASCII), so on a character boundary
                Some(at) => &line[at..],
                None => line,
            };
        }
        match self.content {
            Some(ci) if self.match_spans(line, spans) => {
                let (s, e) = spans[ci];
                &line[s..e]
            }
            _ => line,
        }
    }

    /// Parses `line` into named fields; a line that does not match has only `Content` (the whole
    /// line).
    pub fn parse_line<'a>(&'a self, line: &'a str) -> ParsedLine<'a> {
        let mut spans = Vec::new();
        if self.match_spans(line, &mut spans) {
            ParsedLine {
                fields: self
                    .names
                    .iter()
                    .zip(&spans)
                    .map(|(n, (s, e))| (n.as_str(), &line[*s..*e]))
                    .collect(),
            }
        } else {
            ParsedLine {
                fields: vec![("Content", line)],
            }
        }
    }
}

/// For segments `Field Ws Field Ws … Field` whose last field is `content`: the number of `Ws`.
fn flat_separators(segs: &[Seg], content: usize) -> Option<usize> {
    if segs.len() % 2 == 0 || segs.last() != Some(&Seg::Field(content)) {
        return None;
    }
    let ok = segs.iter().enumerate().all(|(k, seg)| match seg {
        Seg::Field(_) => k % 2 == 0,
        Seg::Ws => k % 2 == 1,
        Seg::Text(_) => false,
    });
    ok.then_some(segs.len() / 2)
}

/// The position just after the `n`-th maximal run of whitespace (bytes up to `b' '`) of `s`, or
/// `None` when `s` has fewer runs; `Some(0)` for `n == 0`.
///
/// This is where `Content` starts for a format `<F1> <F2> … <Content>` with `n` separators: a
/// field followed by whitespace ends at the first whitespace byte, and the separator takes the
/// whole run (a line that starts with whitespace has an empty first field). Eight bytes at a
/// time: a mask of the whitespace bytes, of the bytes that start a run, and a count of those.
#[inline]
fn after_ws_runs(s: &[u8], n: usize) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    let mut need = n;
    let mut i = 0;
    // was the byte before `i` whitespace?
    let mut prev_ws = 0u64;
    while i + 8 <= s.len() {
        let w = super::miner::word_at(s, i);
        // high bit of each byte <= b' ': (x & 0x7f) + 0x5f stays below 0x80 exactly for
        // x & 0x7f <= 0x20, and bytes >= 0x80 are excluded by `| w`; no carries between bytes
        let ws = !(((w & !HI) + 0x5F * LO) | w) & HI;
        let starts = ws & !((ws << 8) | prev_ws);
        // run starts in this word: one bit per byte at bit 7; summing the bytes by a multiply
        // is cheaper than count_ones on x86-64 without POPCNT (the default target)
        let c = ((starts >> 7).wrapping_mul(LO) >> 56) as usize;
        if c >= need {
            let mut st = starts;
            for _ in 1..need {
                st &= st - 1;
            }
            let at = i + (st.trailing_zeros() / 8) as usize;
            return Some(skip_ws(s, at));
        }
        need -= c;
        prev_ws = (ws >> 56) & 0x80;
        i += 8;
    }
    let mut prev = prev_ws != 0;
    while i < s.len() {
        let is = s[i] <= b' ';
        if is && !prev {
            need -= 1;
            if need == 0 {
                return Some(skip_ws(s, i));
            }
        }
        prev = is;
        i += 1;
    }
    None
}

/// Index of the first byte above `b' '` in `s[i..]`, or `s.len()`.
#[inline]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i] <= b' ' {
        i += 1;
    }
    i
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Position of `needle` (non-empty) in `hay`.
#[inline]
fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(off) = memchr::memchr(first, &hay[from..]) {
        let at = from + off;
        if starts_with(&hay[at + 1..], rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `hay.starts_with(needle)` for the short literals of a format, without a `memcmp` call.
#[inline]
fn starts_with(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.iter().zip(needle).all(|(a, b)| a == b)
}

/// Backtracking matcher: lazy fields, greedy whitespace, anchored at both ends.
///
/// Whitespace, literals and fields followed by whitespace never backtrack (such a field ends at
/// the first whitespace), so they are matched in a loop; only a field followed by a literal or by
/// another field tries several ends, recursing for the rest of the format at each.
fn match_segs(segs: &[Seg], s: &[u8], mut pos: usize, spans: &mut [(usize, usize)]) -> bool {
    let mut k = 0;
    loop {
        let Some(seg) = segs.get(k) else {
            return pos == s.len();
        };
        k += 1;
        match seg {
            Seg::Ws => {
                let start = pos;
                while pos < s.len() && s[pos] <= b' ' {
                    pos += 1;
                }
                if pos == start {
                    return false;
                }
            }
            Seg::Text(t) => {
                if !starts_with(&s[pos..], t.as_bytes()) {
                    return false;
                }
                pos += t.len();
            }
            Seg::Field(i) => {
                let rest = &segs[k..];
                match rest.first() {
                    None => {
                        spans[*i] = (pos, s.len());
                        return true;
                    }
                    Some(Seg::Ws) => {
                        // the field holds no whitespace: it ends at the first one (an ASCII
                        // byte, so never inside a UTF-8 character)
                        let end = super::miner::find_space(s, pos);
                        spans[*i] = (pos, end);
                        pos = end;
                    }
                    Some(next) => return match_field(*i, next, rest, s, pos, spans),
                }
            }
        }
    }
}

/// A field `i` starting at `pos` followed by `rest` (which starts with `next`, a literal or a
/// field): the shortest end from which the rest of the format matches.
fn match_field(
    i: usize,
    next: &Seg,
    rest: &[Seg],
    s: &[u8],
    pos: usize,
    spans: &mut [(usize, usize)],
) -> bool {
    let mut end = pos;
    loop {
        // jump to the next place where the following segment can start
        if let Seg::Text(t) = next {
            match find_bytes(&s[end..], t.as_bytes()) {
                Some(off) => end += off,
                None => return false,
            }
        }
        if end > s.len() {
            return false;
        }
        // never split a UTF-8 character
        if end == s.len() || (s[end] as i8) >= -0x40 {
            spans[i] = (pos, end);
            if match_segs(rest, s, end, spans) {
                return true;
            }
        }
        if end >= s.len() {
            return false;
        }
        end += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `after_ws_runs` one byte at a time.
    fn after_ws_runs_naive(s: &[u8], n: usize) -> Option<usize> {
        if n == 0 {
            return Some(0);
        }
        let mut seen = 0;
        let mut prev = false;
        for (i, &c) in s.iter().enumerate() {
            let ws = c <= b' ';
            if ws && !prev {
                seen += 1;
                if seen == n {
                    return Some(skip_ws(s, i));
                }
            }
            prev = ws;
        }
        None
    }

    #[test]
    fn whitespace_runs_are_counted_across_word_boundaries_like_byte_by_byte() {
        // runs of every length placed at every offset of the 8-byte words, tabs and leading blanks
        let mut lines = vec![String::new(), " ".into(), "a".into()];
        for gap in 1..=10 {
            for lead in 0..9 {
                let sep = if gap % 3 == 0 { "\t" } else { " " }.repeat(gap);
                let fields: Vec<String> = (0..12)
                    .map(|i| "x".repeat((i * 7 + lead) % 11 + 1))
                    .collect();
                lines.push(format!("{}{}", " ".repeat(lead % 3), fields.join(&sep)));
            }
        }
        for l in &lines {
            for n in 0..15 {
                assert_eq!(
                    after_ws_runs(l.as_bytes(), n),
                    after_ws_runs_naive(l.as_bytes(), n),
                    "{l:?} n={n}"
                );
            }
        }
    }

    #[test]
    fn format_extracts_named_fields() {
        let f = LogFormat::parse("<Date> <Time> <Pid> <Level> <Component>: <Content>").unwrap();
        let p = f.parse_line("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_3 terminating");
        assert_eq!(p.get("Date"), Some("081109"));
        assert_eq!(p.level(), Some("INFO"));
        assert_eq!(p.get("Component"), Some("dfs.DataNode$PacketResponder"));
        assert_eq!(p.content(), "PacketResponder 1 for block blk_3 terminating");
        assert_eq!(p.timestamp().as_deref(), Some("081109 203615"));
    }

    #[test]
    fn format_handles_escaped_brackets_and_multiple_spaces() {
        let f =
            LogFormat::parse(r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>")
                .unwrap();
        let p = f.parse_line("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200");
        assert_eq!(p.level(), Some("INFO"));
        assert_eq!(p.get("Node"), Some("QuorumPeer[myid=1]/0"));
        assert_eq!(
            p.get("Component"),
            Some("0:0:0:0:0:0:0:2181:FastLeaderElection")
        );
        assert_eq!(p.get("Id"), Some("774"));
        assert_eq!(p.content(), "Notification time out: 3200");
    }

    #[test]
    fn format_optional_group_present_or_absent() {
        let f =
            LogFormat::parse(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
                .unwrap();
        assert!(matches!(f.engine, Engine::Fast(_)));
        let p =
            f.parse_line("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown");
        assert_eq!(p.get("Component"), Some("sshd(pam_unix)"));
        assert_eq!(p.get("PID"), Some("19939"));
        assert_eq!(p.content(), "check pass; user unknown");
        let p = f.parse_line("Jun 14 15:16:01 combo kernel: Linux version 2.6.5");
        assert_eq!(p.get("Component"), Some("kernel"));
        assert_eq!(p.get("PID"), Some(""));
        assert_eq!(p.content(), "Linux version 2.6.5");
    }

    #[test]
    fn lines_that_do_not_match_are_whole_content() {
        let f = LogFormat::parse(r"\[<Time>\] \[<Level>\] <Content>").unwrap();
        let p = f.parse_line("no brackets here");
        assert_eq!(p.fields, vec![("Content", "no brackets here")]);
        let mut spans = Vec::new();
        assert_eq!(
            f.content("no brackets here", &mut spans),
            "no brackets here"
        );
        assert_eq!(
            f.content(
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
                &mut spans
            ),
            "workerEnv.init() ok"
        );
    }

    #[test]
    fn flat_formats_find_the_content_like_the_matcher() {
        let f = LogFormat::parse("<A> <B> <C> <Content>").unwrap();
        assert_eq!(f.flat, Some(3));
        let lines = [
            "a b c the rest  of it ",
            "  a b c d",
            "a\tb  c",
            "a b c",
            "a b c ",
            "a b",
            "",
            "   ",
            "längere zeile mit ümlauten und noch mehr text hier",
            "x0123456789 y0123456789abcdef z0123456789 \t\t content over  eight bytes",
            "a b\x01c d",
        ];
        let slow = LogFormat {
            flat: None,
            ..f.clone()
        };
        let mut spans = Vec::new();
        for line in lines {
            assert_eq!(
                f.content(line, &mut spans),
                slow.content(line, &mut spans),
                "{line:?}"
            );
        }
        assert_eq!(LogFormat::parse("<A>: <Content>").unwrap().flat, None);
        assert_eq!(LogFormat::parse("<Content> <A>").unwrap().flat, None);
    }

    #[test]
    fn regex_syntax_falls_back_to_the_regex_engine() {
        let f = LogFormat::parse(r"<Level>\d* <Content>").unwrap();
        assert!(matches!(f.engine, Engine::Regex { .. }));
        let p = f.parse_line("E0102 boom happened");
        assert_eq!(p.level(), Some("E"));
        assert_eq!(p.content(), "boom happened");
        assert_eq!(
            LogFormat::parse("no fields").unwrap_err(),
            FormatError::NoFields
        );
        assert!(matches!(
            LogFormat::parse("<A> (<B>"),
            Err(FormatError::Pattern(_))
        ));
    }
}
