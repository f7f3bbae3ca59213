//! Online log template miner.
//!
//! Each message is split on whitespace and every token is masked ([`mask_token`]): each run of
//! word characters that holds a digit becomes `<*>` (`uid=0` → `uid=<*>`, `/data/part-7.log` →
//! `/data/part-<*>.log`), a token left without any letter becomes a single `<*>` (a number, an
//! address, a time), and so does a hex string of 12 or more characters. Nothing else is masked
//! up front: a quoted string or a path without digits stays as it is, and becomes `<*>` only when
//! messages that otherwise agree differ there (step 2). The masked token sequence is the
//! message's *shape*.
//!
//! 1. **Exact shape cache.** Most lines of a real log repeat a shape that was already seen, so the
//!    shape (masked tokens joined into one reusable buffer) is looked up in a hash map first. A hit
//!    costs one tokenizer pass and one hash: no allocation.
//! 2. **Candidate search.** On a miss the message is compared with the templates of the same
//!    token count whose first token agrees (a variable first token has its own bucket). The
//!    similarity is the share of positions that agree, where a variable in the template agrees
//!    with anything. The best template at or above `sim_threshold` is generalised (differing
//!    positions become `<*>`); otherwise a new template starts. Two constant words that differ
//!    never merge when either looks like an enumeration constant (`RUNNING`, `FAILED`), because
//!    such words name different events rather than values.
//! 3. **Template merging.** When generalising makes a template equal to another template in its
//!    bucket, the two are merged (union–find), so ids handed out earlier resolve to the survivor
//!    with [`Miner::resolve`].
//!
//! Memory is bounded by `max_templates`: past it, the least recently used templates are evicted
//! (an eighth at a time, by a scan of the live templates only), and the shape cache is cleared
//! when it outgrows its own cap. An evicted or merged template frees its slot and everything it
//! held but 4 bytes for its id, so that ids handed out earlier still resolve.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use regex::Regex;

/// The placeholder for a variable position in a template.
pub const WILDCARD: &str = "<*>";

/// Tuning of the [`Miner`]. The defaults are the single configuration measured on loghub-2k.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// Share of agreeing positions (0..=1) a message needs to join an existing template.
    pub sim_threshold: f64,
    /// Live templates kept at most; past it the least recently used are evicted.
    pub max_templates: usize,
    /// Regexes replaced by `<*>` before tokenizing (for example a system's id formats).
    pub extra_masks: Vec<String>,
    /// Entries of the exact shape cache kept at most (it is cleared when full).
    pub max_cached_shapes: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            sim_threshold: 0.7,
            max_templates: 10_000,
            extra_masks: Vec::new(),
            max_cached_shapes: 200_000,
        }
    }
}

/// A small, fast non-cryptographic hasher (multiply–rotate, in the style of FxHash) for the
/// miner's internal maps; keys are log text, not attacker-chosen map flooding input for a server.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ v).wrapping_mul(SEED);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(SEED);
        }
        self.0 = h;
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(SEED);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(SEED);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(SEED);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // final avalanche so that the low bits used by the table depend on all input bits
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Appends the masked form of one token to `out`: every run of word characters (letters,
/// digits, `_`) that holds a digit becomes `<*>`, so `uid=0` → `uid=<*>`, `blk_-42` →
/// `blk_-<*>`, `CPU#1` → `CPU#<*>`. A token left without any letter (an address, a number, a
/// time, `[42]`) becomes a single `<*>`, and so do long hex strings and an existing `<*>`.
pub fn mask_token(tok: &str, out: &mut String) {
    let b = tok.as_bytes();
    if !has_digit(b) {
        if b.len() >= 12 && b.iter().all(u8::is_ascii_hexdigit) {
            out.push_str(WILDCARD);
        } else {
            out.push_str(tok);
        }
        return;
    }
    let start = out.len();
    let mut letters = false;
    let mut i = 0;
    let n = b.len();
    while i < n {
        if is_word_byte(b, i) {
            let s = i;
            let mut class = 0u8;
            i += 1;
            while i < n {
                let c = BYTE_CLASS[b[i] as usize];
                if c & C_WORD == 0 && !(b[i] == b'-' && is_word_byte(b, i)) {
                    break;
                }
                class |= c;
                i += 1;
            }
            class |= BYTE_CLASS[b[s] as usize];
            if class & C_DIGIT != 0 {
                out.push_str(WILDCARD);
            } else {
                letters = true;
                out.push_str(&tok[s..i]);
            }
        } else if b[i] < 0x80 {
            out.push(b[i] as char);
            i += 1;
        } else {
            // copy one multi-byte character
            let ch = tok[i..].chars().next().unwrap_or(' ');
            letters |= ch.is_alphabetic();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    if !letters {
        out.truncate(start);
        out.push_str(WILDCARD);
    }
}

/// Letters, digits and `_` are word characters; so is a minus sign that starts a number
/// (`blk_-42`, `x=-5`) rather than joining two words (`node-7`).
#[inline]
fn is_word_byte(b: &[u8], i: usize) -> bool {
    let c = b[i];
    c.is_ascii_alphanumeric()
        || c == b'_'
        || (c == b'-'
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric()))
}

/// Appends the masked tokens of `content`, joined by single spaces, to `out`.
///
/// One pass over the bytes: each token is scanned eight bytes at a time for its end and for a
/// digit together. Text that needs no change (tokens without a digit, single spaces between
/// them) is copied in runs, so a line with few variables costs a few copies, not one per token.
#[inline]
pub fn build_shape(content: &str, out: &mut String) {
    let b = content.as_bytes();
    let n = b.len();
    let mut i = skip_space(b, 0);
    // start of the text not yet copied; everything in `run..i` goes out unchanged
    let mut run = i;
    while i < n {
        let start = i;
        let (end, digit) = scan_token(b, i);
        if digit || (end - start >= 12 && b[start..end].iter().all(u8::is_ascii_hexdigit)) {
            out.push_str(&content[run..start]);
            mask_token(&content[start..end], out);
            run = end;
        }
        i = skip_space(b, end);
        if i == n || i != end + 1 || b[end] != b' ' {
            // the end, or whitespace other than one space: copy up to the token's end and
            // write a single space instead
            out.push_str(&content[run..end]);
            if i < n {
                out.push(' ');
            }
            run = i;
        }
    }
}

/// Index of the first byte above `b' '` in `b[i..]`, or `b.len()`.
#[inline]
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] <= b' ' {
        i += 1;
    }
    i
}

/// The end of the token starting at `i` (as [`find_space`]) and whether it holds an ASCII digit.
#[inline]
fn scan_token(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut digit = 0u64;
    while i + 8 <= b.len() {
        let w = word_at(b, i);
        // high bit of each byte below 0x21; the lowest flagged byte is always a true one
        let space = w.wrapping_sub(0x21 * LO) & !w & HI;
        // high bit of each digit byte (and possibly of bytes above a true one)
        let t = w ^ (0x30 * LO);
        let dig = t.wrapping_sub(0x0a * LO) & !t & HI;
        if space != 0 {
            // digits below the first space only
            let below = (space & space.wrapping_neg()) - 1;
            return (
                i + (space.trailing_zeros() / 8) as usize,
                digit | (dig & below) != 0,
            );
        }
        digit |= dig;
        i += 8;
    }
    let mut d = digit != 0;
    while i < b.len() && b[i] > b' ' {
        d |= b[i].is_ascii_digit();
        i += 1;
    }
    (i, d)
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
pub(crate) fn word_at(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Index of the first byte at or below `b' '` (whitespace and control characters) in `b[i..]`,
/// or `b.len()`; eight bytes at a time.
#[inline]
pub(crate) fn find_space(b: &[u8], mut i: usize) -> usize {
    while i + 8 <= b.len() {
        let w = word_at(b, i);
        // high bit set in each byte < 0x21; the lowest flagged byte is always a true one
        let m = w.wrapping_sub(0x21 * LO) & !w & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] > b' ' {
        i += 1;
    }
    i
}

/// Does `b` hold an ASCII digit? Eight bytes at a time.
#[inline]
pub(crate) fn has_digit(b: &[u8]) -> bool {
    let mut i = 0;
    while i + 8 <= b.len() {
        // digits become 0x00..=0x09 after `^ 0x30`, and only digits do
        let t = word_at(b, i) ^ (0x30 * LO);
        if t.wrapping_sub(0x0a * LO) & !t & HI != 0 {
            return true;
        }
        i += 8;
    }
    b[i..].iter().any(u8::is_ascii_digit)
}

const C_DIGIT: u8 = 2;
const C_WORD: u8 = 4;
/// Word-character and digit classes of every byte, for the masking loop.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        if b.is_ascii_alphabetic() || b == b'_' {
            t[c] = C_WORD;
        }
        if b.is_ascii_digit() {
            t[c] = C_WORD | C_DIGIT;
        }
        c += 1;
    }
    t
};

/// Is this token (as it stands in the text) a value rather than part of the wording?
pub fn is_variable(tok: &str) -> bool {
    let mut s = String::new();
    mask_token(tok, &mut s);
    s == WILDCARD
}

/// Words that name one of a fixed set of states (`RUNNING`, `NEW`, `FAIL_TASK_CLEANUP`):
/// two different such words distinguish events rather than fill a variable.
fn is_enum_word(tok: &str) -> bool {
    let b = tok.as_bytes();
    b.len() >= 2
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || *c == b'_' || *c == b'-')
}

#[derive(Debug, Clone, Default)]
struct Cluster {
    /// The template's id, as handed out by [`Miner::add`].
    id: u32,
    /// Template tokens; `<*>` marks a variable position.
    tokens: Vec<Box<str>>,
    /// Per position: a variable that has only ever held masked values (numbers, ids).
    numeric: Vec<bool>,
    /// Key of the bucket the cluster lives in.
    bucket: (usize, Box<str>),
    count: u64,
    last_used: u64,
    /// False for a free slot.
    alive: bool,
}

/// An entry of [`Miner::nodes`] with this bit set holds the slot of a live template.
const LIVE: u32 = 1 << 31;
/// The entry of an evicted template.
const GONE: u32 = u32::MAX;
/// Ids handed out at most (ids stay below [`LIVE`], slots below `LIVE - 1`).
const MAX_IDS: u32 = LIVE - 1;
/// Returned by [`Miner::add`] for a new template once [`MAX_IDS`] ids were handed out (4 bytes
/// each: 8 GiB of them): an unknown id, without a template.
pub const NO_ID: u32 = u32::MAX;

/// Online, streaming template miner; see the module documentation for the algorithm.
#[derive(Debug)]
pub struct Miner {
    cfg: MinerConfig,
    masks: Vec<Regex>,
    /// The live templates, in slots that are reused once freed, so never more than
    /// `max_templates + 1` of them.
    clusters: Vec<Cluster>,
    /// Free slots of `clusters`.
    free: Vec<u32>,
    /// Per id ever handed out: the id it was merged into (union–find parent), `LIVE | slot` for
    /// a live template, or `GONE` once evicted. The only memory a template keeps after eviction
    /// (4 bytes), so that old ids still resolve.
    nodes: Vec<u32>,
    /// Slots of the live templates by token count and first token, in order of creation.
    buckets: FastMap<(usize, Box<str>), Vec<u32>>,
    /// Shape → id (possibly merged or evicted since).
    shapes: FastMap<Box<str>, u32>,
    live: usize,
    clock: u64,
    shape_buf: String,
    masked_buf: String,
}

impl Miner {
    /// A miner with this configuration. Invalid `extra_masks` are ignored.
    pub fn new(cfg: MinerConfig) -> Self {
        let masks = cfg
            .extra_masks
            .iter()
            .filter_map(|m| Regex::new(m).ok())
            .collect();
        Miner {
            cfg,
            masks,
            clusters: Vec::new(),
            free: Vec::new(),
            nodes: Vec::new(),
            buckets: FastMap::default(),
            shapes: FastMap::default(),
            live: 0,
            clock: 0,
            shape_buf: String::with_capacity(256),
            masked_buf: String::new(),
        }
    }

    /// Number of live templates.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no template is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds one message; returns the id of the template it now belongs to.
    pub fn add(&mut self, content: &str) -> u32 {
        self.clock += 1;
        if self.masks.is_empty() {
            self.add_masked(content)
        } else {
            let mut masked = std::mem::take(&mut self.masked_buf);
            masked.clear();
            masked.push_str(content);
            for re in &self.masks {
                if re.is_match(&masked) {
                    masked = re.replace_all(&masked, WILDCARD).into_owned();
                }
            }
            let id = self.add_masked(&masked);
            self.masked_buf = masked;
            id
        }
    }

    fn add_masked(&mut self, content: &str) -> u32 {
        // 1. shape: masked tokens joined by single spaces, in a reusable buffer
        let mut shape = std::mem::take(&mut self.shape_buf);
        shape.clear();
        build_shape(content, &mut shape);
        if let Some(&id) = self.shapes.get(shape.as_str()) {
            if let (root, Some(slot)) = self.locate(id) {
                let c = &mut self.clusters[slot];
                c.count += 1;
                c.last_used = self.clock;
                self.shape_buf = shape;
                return root;
            }
            self.shapes.remove(shape.as_str());
        }
        // 2. slow path: compare with the templates of the bucket
        let toks: Vec<&str> = if shape.is_empty() {
            Vec::new()
        } else {
            shape.split(' ').collect()
        };
        let id = self.place(&toks);
        if id != NO_ID {
            if self.shapes.len() >= self.cfg.max_cached_shapes {
                self.shapes.clear();
            }
            self.shapes.insert(shape.as_str().into(), id);
        }
        self.shape_buf = shape;
        id
    }

    fn bucket_key(toks: &[&str]) -> (usize, Box<str>) {
        (toks.len(), toks.first().copied().unwrap_or("").into())
    }

    fn place(&mut self, toks: &[&str]) -> u32 {
        let key = Self::bucket_key(toks);
        let mut best: Option<(u32, f64)> = None;
        if let Some(slots) = self.buckets.get(&key) {
            for &slot in slots {
                let c = &self.clusters[slot as usize];
                if let Some(sim) = similarity(c, toks) {
                    if sim >= self.cfg.sim_threshold && best.is_none_or(|(_, b)| sim > b) {
                        best = Some((slot, sim));
                    }
                }
            }
        }
        match best {
            Some((slot, _)) => {
                let c = &mut self.clusters[slot as usize];
                c.count += 1;
                c.last_used = self.clock;
                let mut changed = false;
                for ((t, m), num) in c.tokens.iter_mut().zip(toks).zip(c.numeric.iter_mut()) {
                    if *num && *m != WILDCARD {
                        *num = false;
                    }
                    match tok_match(t, m) {
                        TokMatch::Same | TokMatch::Block => {}
                        TokMatch::Differ => {
                            *t = WILDCARD.into();
                            changed = true;
                        }
                        TokMatch::DifferKey => {
                            let key = t.split_once('=').map_or("", |kv| kv.0);
                            *t = format!("{key}={WILDCARD}").into();
                            changed = true;
                        }
                    }
                }
                if changed {
                    self.merge_equal(slot, &key);
                }
                self.clusters[slot as usize].id
            }
            None => self.create(toks, key),
        }
    }

    fn create(&mut self, toks: &[&str], key: (usize, Box<str>)) -> u32 {
        let Some(id) = u32::try_from(self.nodes.len())
            .ok()
            .filter(|id| *id < MAX_IDS)
        else {
            return NO_ID;
        };
        let cluster = Cluster {
            id,
            tokens: toks.iter().map(|t| (*t).into()).collect(),
            numeric: toks.iter().map(|t| *t == WILDCARD).collect(),
            bucket: key.clone(),
            count: 1,
            last_used: self.clock,
            alive: true,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.clusters[slot as usize] = cluster;
                slot
            }
            None => {
                self.clusters.push(cluster);
                // below `id`, so below MAX_IDS
                (self.clusters.len() - 1) as u32
            }
        };
        self.nodes.push(LIVE | slot);
        self.buckets.entry(key).or_default().push(slot);
        self.live += 1;
        if self.live > self.cfg.max_templates {
            self.evict(slot);
        }
        id
    }

    /// Frees the slot of a template that is no longer live; `to` is what its id now points to
    /// (the id it was merged into, or `GONE`). Returns its count and last use.
    fn release(&mut self, slot: u32, to: u32) -> (u64, u64) {
        let c = std::mem::take(&mut self.clusters[slot as usize]);
        self.nodes[c.id as usize] = to;
        self.free.push(slot);
        self.live -= 1;
        (c.count, c.last_used)
    }

    /// After the template in `slot` was generalised: fold every other template of its bucket
    /// `key` that is now identical (or fully covered by it) into it.
    fn merge_equal(&mut self, slot: u32, key: &(usize, Box<str>)) {
        let Some(slots) = self.buckets.get(key) else {
            return;
        };
        let tokens = &self.clusters[slot as usize].tokens;
        let absorbed: Vec<u32> = slots
            .iter()
            .copied()
            .filter(|other| {
                *other != slot
                    && tokens
                        .iter()
                        .zip(self.clusters[*other as usize].tokens.iter())
                        .all(|(x, y)| &**x == WILDCARD || x == y)
            })
            .collect();
        if absorbed.is_empty() {
            return;
        }
        let id = self.clusters[slot as usize].id;
        for &other in &absorbed {
            let (cnt, last) = self.release(other, id);
            let c = &mut self.clusters[slot as usize];
            c.count += cnt;
            c.last_used = c.last_used.max(last);
        }
        if let Some(slots) = self.buckets.get_mut(key) {
            slots.retain(|s| !absorbed.contains(s));
        }
    }

    /// Evicts the least recently used eighth of the templates (never the one in `keep`). Scans
    /// the slots only, that is the live templates and the few free slots.
    fn evict(&mut self, keep: u32) {
        let mut lru: Vec<(u64, u32)> = self
            .clusters
            .iter()
            .zip(0u32..)
            .filter(|(c, slot)| c.alive && *slot != keep)
            .map(|(c, slot)| (c.last_used, slot))
            .collect();
        let n = (self.cfg.max_templates / 8).max(1).min(lru.len());
        if n == 0 {
            return;
        }
        lru.select_nth_unstable(n - 1);
        for &(_, slot) in &lru[..n] {
            let key = std::mem::take(&mut self.clusters[slot as usize].bucket);
            self.release(slot, GONE);
            if let Some(slots) = self.buckets.get_mut(&key) {
                slots.retain(|s| *s != slot);
                if slots.is_empty() {
                    self.buckets.remove(&key);
                }
            }
        }
    }

    /// The root `id` resolves to, and the slot of its template when it is live. `id` must have
    /// been handed out.
    #[inline]
    fn locate(&self, mut id: u32) -> (u32, Option<usize>) {
        loop {
            match self.nodes[id as usize] {
                GONE => return (id, None),
                n if n & LIVE != 0 => return (id, Some((n & !LIVE) as usize)),
                parent => id = parent,
            }
        }
    }

    /// The live template of a handed-out id, resolved through merges.
    fn cluster(&self, id: u32) -> Option<&Cluster> {
        if id as usize >= self.nodes.len() {
            return None;
        }
        self.locate(id).1.map(|slot| &self.clusters[slot])
    }

    /// The id a template id handed out earlier now resolves to (templates merge as they
    /// generalise). Unknown ids are returned unchanged.
    pub fn resolve(&self, id: u32) -> u32 {
        if (id as usize) < self.nodes.len() {
            self.locate(id).0
        } else {
            id
        }
    }

    /// The template text of `id` (resolved through merges), `<*>` marking variables; `None` for an
    /// unknown or evicted id.
    pub fn template(&self, id: u32) -> Option<String> {
        self.cluster(id).map(|c| c.tokens.join(" "))
    }

    /// How many messages the template `id` (resolved) has taken.
    pub fn count(&self, id: u32) -> u64 {
        self.cluster(id).map_or(0, |c| c.count)
    }

    /// Live templates: (id, template, count), in order of creation.
    pub fn templates(&self) -> impl Iterator<Item = (u32, String, u64)> + '_ {
        let mut live: Vec<&Cluster> = self.clusters.iter().filter(|c| c.alive).collect();
        live.sort_by_key(|c| c.id);
        live.into_iter()
            .map(|c| (c.id, c.tokens.join(" "), c.count))
    }
}

/// How a template token relates to a message token at the same position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokMatch {
    /// Equal, or covered by the template's variable.
    Same,
    /// Different values of one variable: generalise to `<*>` (`Key` keeps a `key=` prefix).
    Differ,
    DifferKey,
    /// Different words that name different events: never merge.
    Block,
}

/// Splits `key=value` (first `=`); `None` when the token has no `=`.
fn key_value(tok: &str) -> Option<(&str, &str)> {
    tok.split_once('=')
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphabetic() || c == b'_')
}

fn is_punctuation(tok: &str) -> bool {
    !tok.contains(WILDCARD) && tok.bytes().all(|c| c.is_ascii_punctuation())
}

fn tok_match(t: &str, m: &str) -> TokMatch {
    if t == m || t == WILDCARD {
        return TokMatch::Same;
    }
    if m == WILDCARD && is_punctuation(t) {
        return TokMatch::Block;
    }
    match (key_value(t), key_value(m)) {
        (Some((tk, tv)), Some((mk, mv))) => {
            if tk != mk || tv.is_empty() || mv.is_empty() {
                // a different key, or a value present on one side only
                TokMatch::Block
            } else if tv == WILDCARD {
                TokMatch::Same
            } else if is_identifier(tv) && is_identifier(mv) {
                // `mode=strict` / `mode=lenient`: settings name different cases
                TokMatch::Block
            } else {
                TokMatch::DifferKey
            }
        }
        _ if is_enum_word(t) && is_enum_word(m) => TokMatch::Block,
        _ => TokMatch::Differ,
    }
}

/// Share of positions where the template agrees with the message; `None` when the two cannot
/// belong together at all.
fn similarity(c: &Cluster, toks: &[&str]) -> Option<f64> {
    let tmpl = &c.tokens;
    if tmpl.len() != toks.len() {
        return None;
    }
    if tmpl.is_empty() {
        return Some(1.0);
    }
    let mut same = 0usize;
    for ((t, m), num) in tmpl.iter().zip(toks).zip(&c.numeric) {
        if *num && *m != WILDCARD {
            // a slot that only held numbers and ids does not take a word as such: it takes it
            // as a difference, and never takes bare punctuation (`****`, `-`)
            if is_punctuation(m) {
                return None;
            }
            continue;
        }
        match tok_match(t, m) {
            TokMatch::Same => same += 1,
            TokMatch::Differ | TokMatch::DifferKey => {}
            TokMatch::Block => return None,
        }
    }
    Some(same as f64 / tmpl.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_treats_numbers_ids_and_addresses_as_variables() {
        for v in [
            "42",
            "10.0.0.1:8080",
            "blk_-123",
            "0x1f",
            "<*>",
            "2024-01-02",
            "abcdefabcdef",
        ] {
            assert!(is_variable(v), "{v}");
        }
        for c in ["session", "opened", "RUNNING", "(uid", "user=", "deadbeef"] {
            assert!(!is_variable(c), "{c}");
        }
    }

    #[test]
    fn quoted_strings_and_paths_are_masked_only_where_they_hold_digits() {
        let masked = |t: &str| {
            let mut s = String::new();
            mask_token(t, &mut s);
            s
        };
        assert_eq!(masked("\"orders\""), "\"orders\"");
        assert_eq!(masked("/var/log/app.log"), "/var/log/app.log");
        assert_eq!(masked("/data/part-7.log"), "/data/part-<*>.log");
        // no letter left once `user42` is masked: the whole token is a variable
        assert_eq!(masked("\"user42\""), "<*>");
    }

    #[test]
    fn same_shape_lines_share_a_template() {
        let mut m = Miner::new(MinerConfig::default());
        let a = m.add("Received block blk_1 of size 67108864 from 10.0.0.1");
        let b = m.add("Received block blk_2 of size 12 from 10.0.0.2");
        assert_eq!(a, b);
        assert_eq!(
            m.template(a).unwrap(),
            "Received block <*> of size <*> from <*>"
        );
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn differing_words_generalise_into_a_variable() {
        let mut m = Miner::new(MinerConfig::default());
        let a = m.add("session closed for user root");
        let b = m.add("session closed for user alice");
        assert_eq!(a, b);
        assert_eq!(m.template(a).unwrap(), "session closed for user <*>");
    }

    #[test]
    fn short_messages_differing_in_a_word_stay_apart() {
        let mut m = Miner::new(MinerConfig::default());
        let a = m.add("cupsd startup succeeded");
        let b = m.add("cupsd shutdown succeeded");
        let c = m.add("syslogd startup succeeded");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn enumeration_words_keep_events_apart() {
        let mut m = Miner::new(MinerConfig::default());
        let a = m.add("attempt_1 TaskAttempt Transitioned from NEW to UNASSIGNED");
        let b = m.add("attempt_2 TaskAttempt Transitioned from RUNNING to SUCCEEDED");
        let c = m.add("attempt_3 TaskAttempt Transitioned from NEW to UNASSIGNED");
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn extra_masks_apply_before_tokenizing() {
        let cfg = MinerConfig {
            extra_masks: vec![r"\b[KGTM]?B\b".into()],
            ..MinerConfig::default()
        };
        let mut m = Miner::new(cfg);
        let a = m.add("stored 3 KB in memory");
        let b = m.add("stored 3 MB in memory");
        assert_eq!(a, b);
        assert_eq!(m.template(a).unwrap(), "stored <*> <*> in memory");
    }

    #[test]
    fn template_cap_evicts_least_recently_used() {
        let cfg = MinerConfig {
            max_templates: 8,
            ..MinerConfig::default()
        };
        let mut m = Miner::new(cfg);
        let keep = m.add("alpha beta gamma");
        for i in 0..100 {
            let words = [
                "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            ];
            let line = format!(
                "{} {} {}",
                words[i % 10],
                words[(i / 10) % 10],
                "x y z w".repeat(i % 3 + 1)
            );
            m.add(&line);
            m.add("alpha beta gamma");
        }
        assert!(m.len() <= 8, "{}", m.len());
        assert_eq!(m.template(keep).as_deref(), Some("alpha beta gamma"));
    }

    /// `n` as letters only (no digits, so nothing is masked): a, b, …, z, ba, bb, …
    fn word(mut n: usize) -> String {
        let mut w = Vec::new();
        loop {
            w.push(b'a' + (n % 26) as u8);
            n /= 26;
            if n == 0 {
                break;
            }
        }
        w.reverse();
        String::from_utf8(w).unwrap()
    }

    #[test]
    fn an_endless_stream_of_new_templates_keeps_memory_bounded() {
        let cfg = MinerConfig {
            max_templates: 64,
            max_cached_shapes: 500,
            ..MinerConfig::default()
        };
        let mut m = Miner::new(cfg);
        let first = m.add("zzz first template");
        let mut last = first;
        for i in 0..50_000 {
            // a new first word each time: a new bucket, a new template
            last = m.add(&format!("{} happened here", word(i)));
            if i % 997 == 0 {
                assert!(m.len() <= 64, "{}", m.len());
                assert!(m.buckets.len() <= 64, "{}", m.buckets.len());
                assert!(m.clusters.len() <= 65, "{}", m.clusters.len());
                assert!(m.free.len() <= 65, "{}", m.free.len());
                assert!(m.shapes.len() <= 500, "{}", m.shapes.len());
                // free slots hold nothing
                assert!(m
                    .clusters
                    .iter()
                    .filter(|c| !c.alive)
                    .all(|c| c.tokens.is_empty() && c.numeric.is_empty() && c.bucket.1.is_empty()));
            }
        }
        // what stays per template ever seen: its id's 4-byte entry
        assert_eq!(m.nodes.len(), 50_001);
        assert_eq!(
            m.template(last).unwrap(),
            format!("{} happened here", word(49_999))
        );
        assert_eq!(m.template(first), None);
        assert_eq!(m.resolve(first), first);
        assert_eq!(m.count(first), 0);
        assert_eq!(m.templates().count(), m.len());
        // an evicted shape comes back as a new template
        let again = m.add("zzz first template");
        assert_ne!(again, first);
        assert_eq!(m.template(again).unwrap(), "zzz first template");
    }

    #[test]
    fn merged_templates_free_their_slots_for_new_ones() {
        let mut m = Miner::new(MinerConfig::default());
        let a = m.add("start one two three a b c d e");
        let b = m.add("start uno dos tres a b c d e");
        m.add("start one two tres a b c d e");
        m.add("start uno two three a b c d e");
        m.add("start one dos three a b c d e");
        assert_eq!(m.resolve(b), a);
        assert_eq!(m.free.len(), 1);
        let c = m.add("something else entirely");
        assert_eq!(m.free.len(), 0);
        assert_eq!(m.clusters.len(), 2);
        assert_eq!(m.template(c).unwrap(), "something else entirely");
        assert_eq!(m.template(b).unwrap(), "start <*> <*> <*> a b c d e");
        let ids: Vec<u32> = m.templates().map(|t| t.0).collect();
        assert_eq!(ids, [a, c]);
    }

    #[test]
    fn templates_that_generalise_into_each_other_merge() {
        let mut m = Miner::new(MinerConfig::default());
        let a = m.add("start one two three a b c d e");
        // three of nine words differ: too far from `a`, a template of its own
        let b = m.add("start uno dos tres a b c d e");
        assert_ne!(a, b);
        assert_eq!(m.len(), 2);
        // lines that each differ from `a` in one word generalise it step by step …
        m.add("start one two tres a b c d e");
        m.add("start uno two three a b c d e");
        let c = m.add("start one dos three a b c d e");
        // … until it covers `b`, which is folded into it
        assert_eq!(m.len(), 1);
        assert_eq!(m.resolve(b), a);
        assert_eq!(c, a);
        assert_eq!(m.template(b).unwrap(), "start <*> <*> <*> a b c d e");
        assert_eq!(m.count(b), 5);
    }
}
