//! The candidate index of a listener's rules: which rules a request can match at all,
//! found by lookups instead of evaluating every rule.
//!
//! Each rule is indexed by one of its conditions — host, else path, else an HTTP header,
//! else query string — when every value of that condition has a literal part a match
//! must contain: the whole value (`api.example.com`), a literal prefix (`/api/v2/*`) or
//! a literal suffix (`*.example.com`, `*.js`). Such a rule can only match a request whose
//! field equals, starts with or ends with one of those literals, which hash lookups find
//! (one per configured literal length, not per rule). A rule with no such condition is
//! always a candidate. Candidates are evaluated in full and in priority order by the
//! caller, so the outcome is the same as evaluating every rule; the index only leaves
//! out rules that cannot match.
//!
//! Only configured literals are stored, so a client can neither grow nor skew the
//! tables. It does not evaluate conditions (see [`super::Condition::matches`]).

use super::{literal_prefix, CompiledRule, Condition, Pattern, RequestView};

/// The most candidate lists one request may gather; beyond it every rule is evaluated.
pub(super) const MAX_LISTS: usize = 32;
/// Longest literal prefix or suffix indexed (longer ones are cut to it): the lengths
/// stored fit a bit set.
const MAX_AFFIX: usize = 62;

const FNV_SEED: u64 = 0xcbf29ce484222325;
const FNV_PRIME: u64 = 0x100000001b3;

/// One FNV-1a step, over the ASCII-lowercased byte when `fold` (case-insensitive keys).
#[inline]
fn step(h: u64, c: u8, fold: bool) -> u64 {
    let c = if fold { c.to_ascii_lowercase() } else { c };
    (h ^ c as u64).wrapping_mul(FNV_PRIME)
}

#[inline]
fn hash(b: impl Iterator<Item = u8>, fold: bool) -> u64 {
    b.fold(FNV_SEED, |h, c| step(h, c, fold))
}

#[inline]
fn length_bit(n: usize) -> u64 {
    1 << n.min(63)
}

/// Keys to the rules they lead to, sorted by hash for a binary search.
#[derive(Default)]
struct KeyTable {
    /// (hash, key, rule indices in priority order); keys are lowercased when folded.
    entries: Vec<(u64, Box<[u8]>, Vec<u32>)>,
    /// Bit n set when a key of length n is stored (bit 63: 63 or longer), so most
    /// misses cost no hashing.
    lengths: u64,
    /// The bytes prefix keys end with and suffix keys start with (lowercased when
    /// folded), as a bit set: a lookup at a length whose inner end byte is none of them
    /// costs no hashing (`.` for `*.example.com`, `/` for `/api/*`).
    inner: [u64; 4],
}

impl KeyTable {
    fn add_inner(&mut self, c: u8) {
        self.inner[usize::from(c >> 6)] |= 1 << (c & 63);
    }

    #[inline]
    fn has_inner(&self, c: u8) -> bool {
        self.inner[usize::from(c >> 6)] & (1 << (c & 63)) != 0
    }

    fn add(&mut self, key: &[u8], h: u64, fold: bool, rule: u32) {
        let same = |k: &[u8]| {
            if fold {
                k.eq_ignore_ascii_case(key)
            } else {
                k == key
            }
        };
        match self
            .entries
            .iter_mut()
            .find(|(eh, k, _)| *eh == h && same(k))
        {
            Some((_, _, rules)) => {
                if rules.last() != Some(&rule) {
                    rules.push(rule);
                }
            }
            None => {
                let key = if fold {
                    key.to_ascii_lowercase()
                } else {
                    key.to_vec()
                };
                self.lengths |= length_bit(key.len());
                self.entries.push((h, key.into(), vec![rule]));
            }
        }
    }

    fn finish(&mut self) {
        self.entries.sort_by_key(|e| e.0);
    }

    /// The rules under the key with hash `h` equal to `key`.
    #[inline]
    fn get(&self, h: u64, key: &[u8], fold: bool) -> &[u32] {
        let start = self.entries.partition_point(|e| e.0 < h);
        self.entries[start..]
            .iter()
            .take_while(|e| e.0 == h)
            .find(|e| {
                if fold {
                    e.1.eq_ignore_ascii_case(key)
                } else {
                    *e.1 == *key
                }
            })
            .map_or(&[], |e| &e.2)
    }
}

/// What a pattern's matches must contain, as the index stores it.
enum Literal<'a> {
    Whole(&'a [u8]),
    Prefix(&'a [u8]),
    Suffix(&'a [u8]),
}

/// The literal bytes every match of `p` ends with.
fn literal_suffix(p: &Pattern) -> &[u8] {
    match p {
        Pattern::Any | Pattern::Prefix(_) => &[],
        Pattern::Exact(b) | Pattern::Suffix(b) => b,
        Pattern::Glob(b) => {
            let start = b
                .iter()
                .rposition(|&c| c == b'*' || c == b'?')
                .map_or(0, |i| i + 1);
            &b[start..]
        }
    }
}

/// The literal an index can find `p`'s matches by, if it has one.
fn literal(p: &Pattern) -> Option<Literal<'_>> {
    if let Pattern::Exact(b) = p {
        return Some(Literal::Whole(b));
    }
    let pre = literal_prefix(p);
    let suf = literal_suffix(p);
    if pre.is_empty() && suf.is_empty() {
        None
    } else if pre.len() >= suf.len() {
        Some(Literal::Prefix(&pre[..pre.len().min(MAX_AFFIX)]))
    } else {
        Some(Literal::Suffix(
            &suf[suf.len() - suf.len().min(MAX_AFFIX)..],
        ))
    }
}

/// Up to [`MAX_LISTS`] candidate lists, each a slice of rule indices in priority order.
pub(super) struct Lists<'a> {
    pub(super) lists: [&'a [u32]; MAX_LISTS],
    pub(super) n: usize,
}

impl<'a> Lists<'a> {
    pub(super) fn new() -> Lists<'a> {
        Lists {
            lists: [&[]; MAX_LISTS],
            n: 0,
        }
    }

    /// Adds a list; false when there is no room left.
    #[inline]
    fn push(&mut self, l: &'a [u32]) -> bool {
        if l.is_empty() {
            return true;
        }
        if self.n == MAX_LISTS {
            return false;
        }
        self.lists[self.n] = l;
        self.n += 1;
        true
    }
}

/// Whole values, literal prefixes and literal suffixes of one request field's patterns.
#[derive(Default)]
struct FieldIndex {
    /// Case-insensitive (host, header and query values) or not (paths).
    fold: bool,
    whole: KeyTable,
    prefix: KeyTable,
    /// Hashed from the last byte backwards.
    suffix: KeyTable,
}

impl FieldIndex {
    fn new(fold: bool) -> FieldIndex {
        FieldIndex {
            fold,
            ..FieldIndex::default()
        }
    }

    /// Whether every pattern has a literal the index can find it by.
    fn can_index(pats: &[Pattern]) -> bool {
        pats.iter().all(|p| literal(p).is_some())
    }

    fn add(&mut self, pats: &[Pattern], rule: u32) {
        let fold = self.fold;
        for p in pats {
            match literal(p) {
                Some(Literal::Whole(b)) => {
                    self.whole.add(b, hash(b.iter().copied(), fold), fold, rule)
                }
                Some(Literal::Prefix(b)) => {
                    let last = b[b.len() - 1];
                    self.prefix.add_inner(if fold {
                        last.to_ascii_lowercase()
                    } else {
                        last
                    });
                    self.prefix
                        .add(b, hash(b.iter().copied(), fold), fold, rule)
                }
                Some(Literal::Suffix(b)) => {
                    let first = b[0];
                    self.suffix.add_inner(if fold {
                        first.to_ascii_lowercase()
                    } else {
                        first
                    });
                    self.suffix
                        .add(b, hash(b.iter().rev().copied(), fold), fold, rule)
                }
                None => unreachable!("only patterns with a literal are indexed"),
            }
        }
    }

    fn finish(&mut self) {
        self.whole.finish();
        self.prefix.finish();
        self.suffix.finish();
    }

    /// Adds the lists of the rules whose literals `v` equals, starts or ends with; false
    /// when they do not fit.
    #[inline]
    fn lookup<'a>(&'a self, v: &[u8], out: &mut Lists<'a>) -> bool {
        let fold = self.fold;
        let w = &self.whole;
        if w.lengths & length_bit(v.len()) != 0
            && !out.push(w.get(hash(v.iter().copied(), fold), v, fold))
        {
            return false;
        }
        let p = &self.prefix;
        if p.lengths != 0 {
            let longest = 63 - p.lengths.leading_zeros() as usize;
            let mut h = FNV_SEED;
            for (i, &c) in v.iter().take(longest).enumerate() {
                h = step(h, c, fold);
                let c = if fold { c.to_ascii_lowercase() } else { c };
                if p.lengths & (1 << (i + 1)) != 0
                    && p.has_inner(c)
                    && !out.push(p.get(h, &v[..=i], fold))
                {
                    return false;
                }
            }
        }
        let s = &self.suffix;
        if s.lengths != 0 {
            let longest = 63 - s.lengths.leading_zeros() as usize;
            let mut h = FNV_SEED;
            for (i, &c) in v.iter().rev().take(longest).enumerate() {
                h = step(h, c, fold);
                let c = if fold { c.to_ascii_lowercase() } else { c };
                if s.lengths & (1 << (i + 1)) != 0
                    && s.has_inner(c)
                    && !out.push(s.get(h, &v[v.len() - i - 1..], fold))
                {
                    return false;
                }
            }
        }
        true
    }
}

/// The index of a listener's rules.
#[derive(Default)]
pub(super) struct RuleIndex {
    host: FieldIndex,
    path: FieldIndex,
    /// By header name.
    headers: Vec<(http::HeaderName, FieldIndex)>,
    /// By query key (lowercased): rules whose query condition names its keys exactly.
    query: Vec<(Box<[u8]>, FieldIndex)>,
    /// Rules the index cannot rule out, in priority order.
    always: Vec<u32>,
}

impl RuleIndex {
    pub(super) fn build(rules: &[CompiledRule]) -> RuleIndex {
        let mut ix = RuleIndex {
            host: FieldIndex::new(true),
            path: FieldIndex::new(false),
            ..RuleIndex::default()
        };
        for (i, rule) in rules.iter().enumerate() {
            if !ix.add(&rule.conditions, i as u32) {
                ix.always.push(i as u32);
            }
        }
        ix.host.finish();
        ix.path.finish();
        let fields = ix.headers.iter_mut().map(|(_, f)| f);
        for f in fields.chain(ix.query.iter_mut().map(|(_, f)| f)) {
            f.finish();
        }
        ix
    }

    /// Indexes rule `i` by the first condition that allows it; false when none does.
    fn add(&mut self, conditions: &[Condition], i: u32) -> bool {
        let find = |want: &dyn Fn(&Condition) -> bool| conditions.iter().find(|c| want(c));
        if let Some(Condition::Host(p)) =
            find(&|c| matches!(c, Condition::Host(p) if FieldIndex::can_index(p)))
        {
            self.host.add(p, i);
            return true;
        }
        if let Some(Condition::Path(p)) =
            find(&|c| matches!(c, Condition::Path(p) if FieldIndex::can_index(p)))
        {
            self.path.add(p, i);
            return true;
        }
        if let Some(Condition::Header(name, p)) =
            find(&|c| matches!(c, Condition::Header(_, p) if FieldIndex::can_index(p)))
        {
            let at = match self.headers.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    self.headers.push((name.clone(), FieldIndex::new(true)));
                    self.headers.len() - 1
                }
            };
            self.headers[at].1.add(p, i);
            return true;
        }
        let query_indexable = |pairs: &[(Option<Pattern>, Pattern)]| {
            pairs.iter().all(|(k, v)| {
                matches!(k, Some(Pattern::Exact(_)))
                    && FieldIndex::can_index(std::slice::from_ref(v))
            })
        };
        if let Some(Condition::Query(pairs)) =
            find(&|c| matches!(c, Condition::Query(p) if query_indexable(p)))
        {
            for (k, v) in pairs {
                let Some(Pattern::Exact(key)) = k else {
                    unreachable!("only exact query keys are indexed")
                };
                let at = match self
                    .query
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(key))
                {
                    Some(at) => at,
                    None => {
                        self.query
                            .push((key.to_ascii_lowercase().into(), FieldIndex::new(true)));
                        self.query.len() - 1
                    }
                };
                self.query[at].1.add(std::slice::from_ref(v), i);
            }
            return true;
        }
        false
    }

    /// How many rules are always candidates.
    #[cfg(test)]
    pub(super) fn always_len(&self) -> usize {
        self.always.len()
    }

    /// Gathers the candidate lists for a request; false when there are too many (then
    /// every rule has to be evaluated).
    #[inline]
    pub(super) fn candidates<'a>(&'a self, r: &RequestView<'_>, out: &mut Lists<'a>) -> bool {
        if !out.push(&self.always)
            || !self.host.lookup(r.host.as_bytes(), out)
            || !self.path.lookup(r.path.as_bytes(), out)
        {
            return false;
        }
        for (name, f) in &self.headers {
            let mut fits = true;
            r.headers.any(name, |v| {
                fits = f.lookup(v, out);
                !fits
            });
            if !fits {
                return false;
            }
        }
        if !self.query.is_empty() {
            if let Some(q) = r.query {
                for kv in q.split('&') {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    for (key, f) in &self.query {
                        if key.eq_ignore_ascii_case(k.as_bytes()) && !f.lookup(v.as_bytes(), out) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}
