//! Subject index: which subscriptions match a published subject.
//!
//! Modelled on nats-server 2.9.10 `server/sublist.go`: a trie with one level per subject token,
//! each level holding literal children plus at most one `*` child and one `>` child, and a bounded
//! front cache from published literal subject to the (shared, immutable) match result.
//!
//! Pure module: no clock, no sockets, no async. Mutation takes `&mut self`; matching takes `&self`
//! and only touches the cache (behind a `std::sync::RwLock`, never held across an `.await`, never
//! held while walking the trie) and a few atomic counters. Because the trie cannot change while a
//! `&self` borrow exists, a result computed from the trie and stored in the cache can never be
//! stale: every change goes through `insert`/`remove`, which drop the cache entries it affects.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::fast::RandomState;
use indexmap::{IndexMap, IndexSet};

/// Above this many cached subjects the cache is swept (nats-server `slCacheMax`).
const CACHE_MAX: usize = 1024;
/// A sweep drops entries until this many are left (nats-server `slCacheSweep`).
const CACHE_SWEEP_TO: usize = 512;

/// Most tokens a subscription subject may have. nats-server has no such limit, but its trie walks
/// recurse (and Go stacks grow); ours recurse too, on fixed-size thread stacks, so the trie depth
/// is bounded here. Publish subjects need no bound: their walk only recurses as deep as the trie.
pub const MAX_SUBJECT_TOKENS: usize = 1024;

/// Token separator and wildcard tokens (nats-server `btsep`, `pwcs`, `fwcs`).
const SEP: char = '.';
const PWC: &str = "*";
const FWC: &str = ">";

/// Errors of [`Sublist::insert`] and [`Sublist::remove`] (nats-server `ErrInvalidSubject`,
/// `ErrNotFound`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SublistError {
    /// The subject is not a valid subscription subject (see [`is_valid_subject`]), has more
    /// than [`MAX_SUBJECT_TOKENS`] tokens, or the queue group name is empty.
    #[error("sublist: invalid subject")]
    InvalidSubject,
    /// No subscription with this subject, queue group and item exists.
    #[error("sublist: no matches found")]
    NotFound,
}

/// Subscriptions of one queue group that match a subject. The broker delivers to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMatch<T> {
    pub name: Arc<str>,
    pub members: Vec<T>,
}

/// Everything that matches one published subject. Shared (behind an `Arc`) between the cache and
/// every caller; never mutated after construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchResult<T> {
    /// Plain (non-queue) subscriptions; every one gets the message.
    pub plain: Vec<T>,
    /// One entry per queue group name, even when its members subscribed on different subjects
    /// (nats-server `findQSlot` merges them the same way).
    pub queues: Vec<QueueMatch<T>>,
}

impl<T> MatchResult<T> {
    /// An empty result.
    pub fn empty() -> Self {
        MatchResult {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// True when nobody is interested.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }

    /// Number of deliveries: plain subscriptions plus one per queue group (nats-server counts
    /// fanout the same way in `Sublist.Stats`).
    pub fn fanout(&self) -> usize {
        self.plain.len() + self.queues.len()
    }
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        Self::empty()
    }
}

/// Counters reported on `/subsz`; field names as nats-server's `SublistStats` JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SublistStats {
    pub num_subscriptions: u32,
    pub num_cache: u32,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
    pub cache_hit_rate: f64,
    pub max_fanout: u32,
    pub avg_fanout: f64,
}

/// Hashing: foldhash's fast hasher, several times cheaper than SipHash on short subject tokens
/// (the cache lookup is the publish hot path). Its seeds are random per process and per map, so
/// clients cannot precompute colliding subjects offline ("minimally DoS-resistant" in its docs).
type FastSet<T> = IndexSet<T, RandomState>;

/// One trie node: the subscriptions whose subject ends here, and the level below.
/// `IndexSet`s keep a deterministic order (insertion order, with `swap_remove` on removal) and
/// O(1) removal even with very many subscribers on one subject.
struct Node<T> {
    next: Option<Box<Level<T>>>,
    plain: FastSet<T>,
    queues: IndexMap<Arc<str>, FastSet<T>, RandomState>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            next: None,
            plain: FastSet::default(),
            queues: IndexMap::default(),
        }
    }
}

impl<T> Node<T> {
    fn has_subs(&self) -> bool {
        !self.plain.is_empty() || !self.queues.is_empty()
    }

    /// Prunable: no subscriptions here and nothing below (an empty level below is always
    /// dropped on removal, see `remove_in_level`).
    fn is_empty(&self) -> bool {
        !self.has_subs() && self.next.is_none()
    }
}

/// One trie level: children keyed by literal token, plus the wildcard children.
struct Level<T> {
    literal: HashMap<Box<str>, Node<T>, RandomState>,
    pwc: Option<Box<Node<T>>>,
    fwc: Option<Box<Node<T>>>,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Level {
            literal: HashMap::default(),
            pwc: None,
            fwc: None,
        }
    }
}

impl<T> Level<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }
}

/// The front cache: published literal subject → shared result.
struct Cache<T> {
    map: HashMap<Box<str>, Arc<MatchResult<T>>, RandomState>,
    /// Where the next sweep starts in iteration order. Rotated so that a sweep does not always
    /// spare the same hash buckets (nats-server relies on Go's randomised map iteration).
    sweep_offset: usize,
}

/// The subject index. See the module docs.
pub struct Sublist<T> {
    root: Level<T>,
    /// `None` when built with [`Sublist::without_cache`].
    cache: Option<RwLock<Cache<T>>>,
    /// Shared empty result, so that misses and invalid subjects allocate nothing.
    empty: Arc<MatchResult<T>>,
    generation: u64,
    count: usize,
    inserts: u64,
    removes: u64,
    matches: AtomicU64,
    misses: AtomicU64,
}

impl<T: Clone + Eq + Hash> Default for Sublist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Eq + Hash> Sublist<T> {
    /// A sublist with the match cache enabled (nats-server `NewSublistWithCache`).
    pub fn new() -> Self {
        Self::with_cache(true)
    }

    /// A sublist without match cache (nats-server `NewSublistNoCache`): for indexes with a high
    /// churn of interest, where the cache would only be invalidated.
    pub fn without_cache() -> Self {
        Self::with_cache(false)
    }

    fn with_cache(enabled: bool) -> Self {
        Sublist {
            root: Level::default(),
            cache: enabled.then(|| {
                RwLock::new(Cache {
                    map: HashMap::default(),
                    sweep_offset: 0,
                })
            }),
            empty: Arc::new(MatchResult::empty()),
            generation: 0,
            count: 0,
            inserts: 0,
            removes: 0,
            matches: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Adds a subscription. Inserting the same `item` again with the same subject and queue is a
    /// no-op (each subscription is its own `T`, so the server never does that).
    pub fn insert(
        &mut self,
        subject: &str,
        queue: Option<&str>,
        item: T,
    ) -> Result<(), SublistError> {
        // nats-server's Insert only rejects empty tokens and a non-final `>`; we also reject
        // whitespace (IsValidSubject) so that nothing unroutable can enter the index.
        if !is_valid_subject(subject)
            || queue == Some("")
            || subject.split(SEP).nth(MAX_SUBJECT_TOKENS).is_some()
        {
            return Err(SublistError::InvalidSubject);
        }
        let mut level = &mut self.root;
        let mut tokens = subject.split(SEP).peekable();
        let node = loop {
            // A valid subject has at least one token.
            let Some(token) = tokens.next() else {
                return Err(SublistError::InvalidSubject);
            };
            let node: &mut Node<T> = match token {
                PWC => level.pwc.get_or_insert_with(Box::default),
                FWC => level.fwc.get_or_insert_with(Box::default),
                _ => {
                    if !level.literal.contains_key(token) {
                        level.literal.insert(token.into(), Node::default());
                    }
                    match level.literal.get_mut(token) {
                        Some(node) => node,
                        None => return Err(SublistError::InvalidSubject),
                    }
                }
            };
            if tokens.peek().is_none() {
                break node;
            }
            level = node.next.get_or_insert_with(Box::default);
        };
        let added = match queue {
            None => node.plain.insert(item),
            Some(q) => match node.queues.get_mut(q) {
                Some(members) => members.insert(item),
                None => {
                    let mut members = FastSet::default();
                    members.insert(item);
                    node.queues.insert(Arc::from(q), members);
                    true
                }
            },
        };
        if added {
            self.count += 1;
            self.inserts += 1;
            self.generation += 1;
            self.invalidate(subject);
        }
        Ok(())
    }

    /// Removes a subscription added with the same subject, queue and item.
    pub fn remove(
        &mut self,
        subject: &str,
        queue: Option<&str>,
        item: &T,
    ) -> Result<(), SublistError> {
        if !is_valid_subject(subject) || queue == Some("") {
            return Err(SublistError::InvalidSubject);
        }
        if !remove_in_level(&mut self.root, subject, queue, item) {
            return Err(SublistError::NotFound);
        }
        self.count -= 1;
        self.removes += 1;
        self.generation += 1;
        self.invalidate(subject);
        Ok(())
    }

    /// Removes many subscriptions at once (a closing connection, a lost route) and returns how
    /// many were found. Like nats-server `RemoveBatch`, the cache is dropped once at the end
    /// instead of being scanned for every wildcard subscription. Generation bumps once.
    pub fn remove_batch<'a, I>(&mut self, subs: I) -> usize
    where
        I: IntoIterator<Item = (&'a str, Option<&'a str>, &'a T)>,
        T: 'a,
    {
        let mut removed = 0usize;
        for (subject, queue, item) in subs {
            if is_valid_subject(subject)
                && queue != Some("")
                && remove_in_level(&mut self.root, subject, queue, item)
            {
                removed += 1;
            }
        }
        if removed > 0 {
            self.count -= removed;
            self.removes += removed as u64;
            self.generation += 1;
            if let Some(cache) = self.cache.as_mut() {
                match cache.get_mut() {
                    Ok(cache) => cache.map.clear(),
                    Err(poisoned) => poisoned.into_inner().map.clear(),
                }
            }
        }
        removed
    }

    /// Forgets cached results for subscriptions on `subject` and bumps the generation, without
    /// changing the index: for when something a result depends on changed outside it, such as a
    /// remote queue subscription's weight (nats-server `UpdateRemoteQSub`).
    pub fn refresh(&mut self, subject: &str) {
        self.generation += 1;
        self.invalidate(subject);
    }

    /// Drops the cached results that a subscription on `subject` takes part in.
    ///
    /// nats-server (`addToCache`/`removeFromCache`) patches results on insert and drops them on
    /// remove; we drop in both cases, so that a cached result is always exactly what a fresh walk
    /// of the trie returns (same order), at the cost of one walk on the next publish.
    fn invalidate(&mut self, subject: &str) {
        let Some(cache) = self.cache.as_mut() else {
            return;
        };
        let cache = match cache.get_mut() {
            Ok(cache) => cache,
            // A panic elsewhere while holding the lock may have left anything in it: start over.
            Err(poisoned) => {
                let cache = poisoned.into_inner();
                cache.map.clear();
                cache
            }
        };
        if is_literal(subject) {
            cache.map.remove(subject);
        } else {
            cache.map.retain(|key, _| !subject_matches(subject, key));
        }
    }

    /// Everything that matches the published literal `subject`. A subject that is not a valid
    /// literal subject (empty tokens, wildcard tokens) matches nothing.
    ///
    /// A cache hit is one hash lookup under a read lock plus an `Arc` clone.
    pub fn match_subject(&self, subject: &str) -> Arc<MatchResult<T>> {
        self.matches.fetch_add(1, Ordering::Relaxed);
        if let Some(cache) = &self.cache {
            if let Some(hit) = read(cache).map.get(subject) {
                return Arc::clone(hit);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        if !is_match_subject(subject) {
            return Arc::clone(&self.empty);
        }
        let mut plain = Vec::new();
        let mut queues: Vec<QueueMatch<T>> = Vec::new();
        visit_matches(&self.root, subject, &mut |node| {
            collect_node(node, &mut plain, &mut queues);
            false
        });
        let result = if plain.is_empty() && queues.is_empty() {
            Arc::clone(&self.empty)
        } else {
            Arc::new(MatchResult { plain, queues })
        };
        if let Some(cache) = &self.cache {
            let mut cache = write(cache);
            cache.map.insert(subject.into(), Arc::clone(&result));
            if cache.map.len() > CACHE_MAX {
                sweep(&mut cache);
            }
        }
        result
    }

    /// True when at least one subscription matches `subject` (no-responders fast path). Does not
    /// fill the cache and stops at the first match.
    pub fn has_interest(&self, subject: &str) -> bool {
        if let Some(cache) = &self.cache {
            if let Some(hit) = read(cache).map.get(subject) {
                return !hit.is_empty();
            }
        }
        is_match_subject(subject) && visit_matches(&self.root, subject, &mut |node| node.has_subs())
    }

    /// Bumped on every insert and remove that changed the index; callers keep their own caches
    /// keyed by it (nats-server `genid`, used by the per-client L1 cache).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of subscriptions.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Number of cached subjects.
    pub fn cache_count(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| read(c).map.len())
    }

    /// `/subsz` statistics (nats-server `Sublist.Stats`): fanout figures are over the cached
    /// results.
    pub fn stats(&self) -> SublistStats {
        let matches = self.matches.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed).min(matches);
        let mut stats = SublistStats {
            num_subscriptions: saturate_u32(self.count),
            num_inserts: self.inserts,
            num_removes: self.removes,
            num_matches: matches,
            ..SublistStats::default()
        };
        if matches > 0 {
            stats.cache_hit_rate = (matches - misses) as f64 / matches as f64;
        }
        if let Some(cache) = &self.cache {
            let cache = read(cache);
            let (mut total, mut max) = (0usize, 0usize);
            for result in cache.map.values() {
                let fanout = result.fanout();
                total += fanout;
                max = max.max(fanout);
            }
            stats.num_cache = saturate_u32(cache.map.len());
            stats.max_fanout = saturate_u32(max);
            if total > 0 {
                stats.avg_fanout = total as f64 / cache.map.len() as f64;
            }
        }
        stats
    }

    /// Every subscription as (subject, queue, item), in trie order (nats-server `Sublist.All`).
    pub fn all(&self) -> Vec<(String, Option<String>, T)> {
        let mut out = Vec::with_capacity(self.count);
        let mut path = String::new();
        collect_all(&self.root, &mut path, &mut out);
        out
    }
}

fn read<T>(lock: &RwLock<Cache<T>>) -> RwLockReadGuard<'_, Cache<T>> {
    // The cache holds only complete entries between statements, so a poisoned lock is usable.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<Cache<T>>) -> RwLockWriteGuard<'_, Cache<T>> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn saturate_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Drops cache entries down to `CACHE_SWEEP_TO`, choosing a rotating window of victims
/// (nats-server `reduceCacheCount` drops in random map order).
fn sweep<T>(cache: &mut Cache<T>) {
    let len = cache.map.len();
    let drop = len.saturating_sub(CACHE_SWEEP_TO);
    let start = cache.sweep_offset % len.max(1);
    let mut index = 0usize;
    cache.map.retain(|_, _| {
        // Position relative to the window start, wrapping around.
        let rel = (index + len - start) % len;
        index += 1;
        rel >= drop
    });
    cache.sweep_offset = cache.sweep_offset.wrapping_add(drop);
}

/// Splits off the first token.
fn split_first(subject: &str) -> (&str, Option<&str>) {
    match subject.split_once(SEP) {
        Some((token, rest)) => (token, Some(rest)),
        None => (subject, None),
    }
}

/// Calls `visit` on every node whose subscriptions match the literal `subject`, in a fixed
/// order: at each level the `>` node, then the `*` subtree, then the literal subtree (the order of
/// nats-server `matchLevel`). Returns true as soon as `visit` returns true.
fn visit_matches<'a, T>(
    mut level: &'a Level<T>,
    mut subject: &str,
    visit: &mut impl FnMut(&'a Node<T>) -> bool,
) -> bool {
    loop {
        let (token, rest) = split_first(subject);
        // `>` matches this token and all that follow (one or more).
        if let Some(fwc) = level.fwc.as_deref() {
            if visit(fwc) {
                return true;
            }
        }
        let Some(rest) = rest else {
            // The last token: the literal node before `*`, in sublist.go matchLevel's
            // order (so several matching subscriptions of one connection get the message
            // in nats-server's order).
            if let Some(node) = level.literal.get(token) {
                if visit(node) {
                    return true;
                }
            }
            return level.pwc.as_deref().is_some_and(&mut *visit);
        };
        if let Some(next) = level.pwc.as_deref().and_then(|p| p.next.as_deref()) {
            if visit_matches(next, rest, visit) {
                return true;
            }
        }
        let Some(next) = level.literal.get(token).and_then(|n| n.next.as_deref()) else {
            return false;
        };
        level = next;
        subject = rest;
    }
}

/// Appends a node's subscriptions to a result under construction.
fn collect_node<T: Clone>(node: &Node<T>, plain: &mut Vec<T>, queues: &mut Vec<QueueMatch<T>>) {
    plain.extend(node.plain.iter().cloned());
    for (name, members) in &node.queues {
        // Linear search like nats-server `findQSlot`: a subject rarely has many queue groups.
        match queues.iter_mut().find(|q| q.name == *name) {
            Some(slot) => slot.members.extend(members.iter().cloned()),
            None => queues.push(QueueMatch {
                name: Arc::clone(name),
                members: members.iter().cloned().collect(),
            }),
        }
    }
}

/// Removes one subscription below `level`, pruning nodes and levels left empty (nats-server
/// `pruneNode`). Returns whether it was found.
fn remove_in_level<T: Eq + Hash>(
    level: &mut Level<T>,
    subject: &str,
    queue: Option<&str>,
    item: &T,
) -> bool {
    let (token, rest) = split_first(subject);
    let node = match token {
        PWC => level.pwc.as_deref_mut(),
        FWC => level.fwc.as_deref_mut(),
        _ => level.literal.get_mut(token),
    };
    let Some(node) = node else {
        return false;
    };
    let found = match rest {
        None => match queue {
            None => node.plain.swap_remove(item),
            Some(q) => match node.queues.get_mut(q) {
                Some(members) => {
                    let found = members.swap_remove(item);
                    if members.is_empty() {
                        node.queues.swap_remove(q);
                    }
                    found
                }
                None => false,
            },
        },
        Some(rest) => match node.next.as_deref_mut() {
            Some(next) => {
                let found = remove_in_level(next, rest, queue, item);
                if next.is_empty() {
                    node.next = None;
                }
                found
            }
            None => false,
        },
    };
    if node.is_empty() {
        match token {
            PWC => level.pwc = None,
            FWC => level.fwc = None,
            _ => {
                level.literal.remove(token);
            }
        }
    }
    found
}

/// Depth-first collection for [`Sublist::all`]; `path` is the subject prefix of `level`.
fn collect_all<T: Clone>(
    level: &Level<T>,
    path: &mut String,
    out: &mut Vec<(String, Option<String>, T)>,
) {
    let children = level
        .literal
        .iter()
        .map(|(token, node)| (&**token, node))
        .chain(level.pwc.as_deref().map(|node| (PWC, node)))
        .chain(level.fwc.as_deref().map(|node| (FWC, node)));
    for (token, node) in children {
        let prefix_len = path.len();
        if !path.is_empty() {
            path.push(SEP);
        }
        path.push_str(token);
        for item in &node.plain {
            out.push((path.clone(), None, item.clone()));
        }
        for (name, members) in &node.queues {
            for item in members {
                out.push((path.clone(), Some(name.to_string()), item.clone()));
            }
        }
        if let Some(next) = node.next.as_deref() {
            collect_all(next, path, out);
        }
        path.truncate(prefix_len);
    }
}

/// Whitespace that makes a subject invalid (nats-server `IsValidSubject`).
fn is_subject_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// A published subject as text for matching. nats-server's subjects are bytes and ours are
/// indexed as text, so a subject that is not UTF-8 is matched with each invalid byte sequence
/// read as U+FFFD. `.` is ASCII, so the tokens stay where they were: wildcards match such a
/// subject as nats-server's do, and no literal subscription equals it (those are UTF-8), unless
/// one spells U+FFFD itself. Deliveries carry the subject's own bytes.
pub fn subject_text(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(raw)
}

/// A valid subscription subject, as nats-server `IsValidSubject`: non-empty tokens separated by
/// `.`, no whitespace, `>` only as the last token. `*` and `>` are wildcards only as whole tokens
/// (`foo*` is a literal token).
pub fn is_valid_subject(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut tokens = s.split(SEP).peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() || token.bytes().any(is_subject_space) {
            return false;
        }
        if token == FWC && tokens.peek().is_some() {
            return false;
        }
    }
    true
}

/// A valid subject without wildcard tokens: what a client may publish to (nats-server
/// `IsValidPublishSubject`, which is `IsValidSubject` plus `IsValidLiteralSubject`).
pub fn is_valid_literal_subject(s: &str) -> bool {
    is_valid_subject(s) && is_literal(s)
}

/// nats-server `IsValidLiteralSubject`, the check `processPub` makes for a pedantic
/// client: no empty token and no wildcard token. Unlike [`is_valid_literal_subject`] it
/// allows whitespace, which only a stray CR can bring into a PUB subject.
pub fn is_literal_subject(s: &str) -> bool {
    is_match_subject(s) && is_literal(s)
}

/// No `*` or `>` token (nats-server `subjectIsLiteral`); says nothing about validity.
fn is_literal(s: &str) -> bool {
    s.split(SEP).all(|token| token != PWC && token != FWC)
}

/// The cheap check a published subject gets on a cache miss: non-empty tokens. Whitespace can
/// reach here only as a stray CR in a PUB subject (nats-server keeps it); no literal
/// subscription holds one, so only wildcards can match such a subject, as in nats-server.
fn is_match_subject(s: &str) -> bool {
    // Wildcard tokens in a published subject are matched as they are, like
    // nats-server's matchLevel: `PUB foo.*` reaches `foo.*`, `foo.>` and `>`
    // subscribers (they live in the wildcard slots), never `foo.bar`.
    !s.is_empty() && s.split(SEP).all(|t| !t.is_empty())
}

/// True when every subject that `subject` (which may contain wildcards) can stand for is also
/// matched by `pattern` (nats-server `subjectIsSubsetMatch`). Used for permissions and route
/// interest: `foo.*` is a subset of `foo.>` and of `*.*`, but not of `foo.bar`.
pub fn subject_is_subset_match(subject: &str, pattern: &str) -> bool {
    let mut subject_tokens = subject.split(SEP);
    let mut pattern_tokens = pattern.split(SEP);
    loop {
        match (subject_tokens.next(), pattern_tokens.next()) {
            (None, None) => return true,
            (Some(s), Some(p)) => {
                if s.is_empty() || p.is_empty() {
                    return false;
                }
                if p == FWC {
                    // Covers this token and everything after it, whatever the subject has
                    // (the subject needs at least this one token, which it has).
                    return !subject_tokens.any(str::is_empty);
                }
                let covered = match s {
                    // Only a `>` (handled above) covers a subject's `>`.
                    FWC => false,
                    PWC => p == PWC,
                    _ => p == PWC || p == s,
                };
                if !covered {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// True when the subscription subject `pattern` matches the subject `literal`, whose tokens are
/// all taken literally (nats-server `matchLiteral` for well-formed input). Invalid input (empty
/// tokens) never matches.
pub fn subject_matches(pattern: &str, literal: &str) -> bool {
    let mut literal_tokens = literal.split(SEP);
    let mut pattern_tokens = pattern.split(SEP);
    loop {
        match (pattern_tokens.next(), literal_tokens.next()) {
            (None, None) => return true,
            (Some(p), Some(l)) => {
                if p.is_empty() || l.is_empty() {
                    return false;
                }
                if p == FWC {
                    return pattern_tokens.next().is_none() && !literal_tokens.any(str::is_empty);
                }
                if p != PWC && p != l {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn plain_of(r: &MatchResult<u32>) -> Vec<u32> {
        let mut v = r.plain.clone();
        v.sort_unstable();
        v
    }

    fn queues_of(r: &MatchResult<u32>) -> BTreeMap<String, Vec<u32>> {
        let mut m = BTreeMap::new();
        for q in &r.queues {
            let mut members = q.members.clone();
            members.sort_unstable();
            assert!(
                m.insert(q.name.to_string(), members).is_none(),
                "queue group {} appears twice",
                q.name
            );
        }
        m
    }

    fn both_kinds() -> [Sublist<u32>; 2] {
        [Sublist::new(), Sublist::without_cache()]
    }

    #[test]
    fn literal_and_multi_token() {
        for mut s in both_kinds() {
            s.insert("foo", None, 1).unwrap();
            s.insert("foo.bar.baz", None, 2).unwrap();
            assert_eq!(plain_of(&s.match_subject("foo")), vec![1]);
            assert_eq!(plain_of(&s.match_subject("foo.bar.baz")), vec![2]);
            assert!(s.match_subject("foo.bar").is_empty());
            assert!(s.match_subject("bar").is_empty());
            assert!(s.match_subject("foo.bar.baz.qux").is_empty());
            assert_eq!(s.count(), 2);
        }
    }

    #[test]
    fn wildcards() {
        for mut s in both_kinds() {
            s.insert("foo.bar", None, 1).unwrap();
            s.insert("foo.*", None, 2).unwrap();
            s.insert("foo.>", None, 3).unwrap();
            s.insert("*.bar", None, 4).unwrap();
            s.insert(">", None, 5).unwrap();
            s.insert("foo.*.baz", None, 6).unwrap();
            s.insert("*", None, 7).unwrap();
            assert_eq!(plain_of(&s.match_subject("foo.bar")), vec![1, 2, 3, 4, 5]);
            assert_eq!(plain_of(&s.match_subject("foo.x.baz")), vec![3, 5, 6]);
            assert_eq!(plain_of(&s.match_subject("foo")), vec![5, 7]);
            // `>` needs at least one token after `foo`.
            assert!(!s.match_subject("foo").plain.contains(&3));
            assert_eq!(plain_of(&s.match_subject("a.b.c.d")), vec![5]);
            // Wildcard characters inside a token are literal (sublist_test.go
            // TestSublistInsertWithWildcardsAsLiterals).
            s.insert("foo.*-", None, 8).unwrap();
            assert_eq!(plain_of(&s.match_subject("foo.*-")), vec![2, 3, 5, 8]);
            assert!(!s.match_subject("foo.x").plain.contains(&8));
        }
    }

    #[test]
    fn same_item_on_two_subjects_appears_twice() {
        let mut s = Sublist::new();
        s.insert("foo.bar", None, 1).unwrap();
        s.insert("foo.*", None, 1).unwrap();
        assert_eq!(s.match_subject("foo.bar").plain, vec![1, 1]);
        // Same subject again is a no-op.
        s.insert("foo.bar", None, 1).unwrap();
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn queue_groups_merge_by_name() {
        for mut s in both_kinds() {
            s.insert("foo.bar", Some("q1"), 1).unwrap();
            s.insert("foo.*", Some("q1"), 2).unwrap();
            s.insert("foo.>", Some("q2"), 3).unwrap();
            s.insert("foo.bar", None, 4).unwrap();
            s.insert("foo.bar", Some("q2"), 5).unwrap();
            let r = s.match_subject("foo.bar");
            assert_eq!(plain_of(&r), vec![4]);
            let q = queues_of(&r);
            assert_eq!(q.len(), 2);
            assert_eq!(q["q1"], vec![1, 2]);
            assert_eq!(q["q2"], vec![3, 5]);
            assert_eq!(r.fanout(), 3);
            // Removing with the wrong queue (or none) does not find it.
            assert_eq!(s.remove("foo.bar", None, &1), Err(SublistError::NotFound));
            assert_eq!(
                s.remove("foo.bar", Some("q2"), &1),
                Err(SublistError::NotFound)
            );
            s.remove("foo.bar", Some("q1"), &1).unwrap();
            s.remove("foo.*", Some("q1"), &2).unwrap();
            let q = queues_of(&s.match_subject("foo.bar"));
            assert_eq!(q.len(), 1, "empty queue group must disappear");
            assert_eq!(q["q2"], vec![3, 5]);
        }
    }

    #[test]
    fn removal_and_pruning() {
        for mut s in both_kinds() {
            s.insert("a.b.c", None, 1).unwrap();
            s.insert("a.*.c", None, 2).unwrap();
            s.insert("a.>", Some("q"), 3).unwrap();
            let g = s.generation();
            assert_eq!(s.remove("a.b", None, &1), Err(SublistError::NotFound));
            assert_eq!(s.remove("a.b.c", None, &9), Err(SublistError::NotFound));
            assert_eq!(s.remove("x.y", None, &1), Err(SublistError::NotFound));
            assert_eq!(s.generation(), g, "failed removes must not bump generation");
            s.remove("a.b.c", None, &1).unwrap();
            assert_eq!(s.remove("a.b.c", None, &1), Err(SublistError::NotFound));
            s.remove("a.*.c", None, &2).unwrap();
            s.remove("a.>", Some("q"), &3).unwrap();
            assert_eq!(s.count(), 0);
            assert!(s.root.is_empty(), "trie must be pruned to nothing");
            assert!(s.match_subject("a.b.c").is_empty());
            assert_eq!(s.generation(), g + 3);
        }
    }

    #[test]
    fn remove_batch() {
        let mut s = Sublist::new();
        let subs = [
            ("a.b", None, 1u32),
            ("a.*", Some("q"), 2),
            ("a.>", None, 3),
            ("c", None, 4),
        ];
        for (subject, queue, item) in subs {
            s.insert(subject, queue, item).unwrap();
        }
        assert_eq!(s.match_subject("a.b").fanout(), 3);
        let g = s.generation();
        let gone = [
            ("a.b", None, &1u32),
            ("a.*", Some("q"), &2),
            ("a.>", None, &3),
            ("a.>", None, &99), // not there
            ("a..b", None, &1), // invalid
        ];
        assert_eq!(s.remove_batch(gone), 3);
        assert_eq!(s.count(), 1);
        assert_eq!(s.generation(), g + 1);
        assert!(s.match_subject("a.b").is_empty());
        assert_eq!(s.match_subject("c").plain, vec![4]);
        assert_eq!(s.stats().num_removes, 3);
        assert_eq!(s.remove_batch([]), 0);
        assert_eq!(s.generation(), g + 1);
    }

    #[test]
    fn deep_subjects_are_bounded() {
        let mut s = Sublist::new();
        let deep = vec!["*"; MAX_SUBJECT_TOKENS].join(".");
        s.insert(&deep, None, 1).unwrap();
        let too_deep = vec!["a"; MAX_SUBJECT_TOKENS + 1].join(".");
        assert_eq!(
            s.insert(&too_deep, None, 2),
            Err(SublistError::InvalidSubject)
        );
        // Matching walks the full depth of `*` nodes; a very long publish subject is fine too.
        let literal = vec!["x"; MAX_SUBJECT_TOKENS].join(".");
        assert_eq!(s.match_subject(&literal).plain, vec![1]);
        let huge = vec!["x"; 100_000].join(".");
        assert!(s.match_subject(&huge).is_empty());
        assert_eq!(s.all().len(), 1);
        s.remove(&deep, None, &1).unwrap();
        assert!(s.root.is_empty());
    }

    #[test]
    fn many_subscribers_on_one_subject() {
        let mut s = Sublist::new();
        for i in 0..5000 {
            s.insert("big", None, i).unwrap();
        }
        assert_eq!(s.match_subject("big").plain.len(), 5000);
        for i in (0..5000).step_by(2) {
            s.remove("big", None, &i).unwrap();
        }
        let r = s.match_subject("big");
        assert_eq!(r.plain.len(), 2500);
        assert!(r.plain.iter().all(|i| i % 2 == 1));
    }

    #[test]
    fn invalid_subjects() {
        let bad = [
            "",
            ".",
            "foo..bar",
            ".foo",
            "foo.",
            "foo.>.bar",
            ">.bar",
            "foo bar",
            "foo\tbar",
            "foo.\n",
            "a.\r",
            "f\x0co",
        ];
        for subject in bad {
            assert!(!is_valid_subject(subject), "{subject:?}");
            assert!(!is_valid_literal_subject(subject), "{subject:?}");
            let mut s = Sublist::new();
            assert_eq!(
                s.insert(subject, None, 1),
                Err(SublistError::InvalidSubject),
                "{subject:?}"
            );
            assert_eq!(
                s.remove(subject, None, &1),
                Err(SublistError::InvalidSubject),
                "{subject:?}"
            );
            assert_eq!(s.count(), 0);
            assert_eq!(s.generation(), 0);
        }
        let mut s = Sublist::new();
        assert_eq!(
            s.insert("foo", Some(""), 1),
            Err(SublistError::InvalidSubject)
        );
        for good in [
            "foo",
            "foo.bar.*",
            "foo.bar.>",
            "*",
            ">",
            "foo*",
            "foo.>>",
            ">bar",
            "*.*",
        ] {
            assert!(is_valid_subject(good), "{good:?}");
        }
        for literal in ["foo", "foo*", "foo.**", "foo>bar", ">bar", "a.b.c"] {
            assert!(is_valid_literal_subject(literal), "{literal:?}");
        }
        for wild in ["*", ">", "foo.*", "foo.>", "*.bar"] {
            assert!(!is_valid_literal_subject(wild), "{wild:?}");
        }
        // nats-server's IsValidLiteralSubject (the pedantic PUB check) lets whitespace pass.
        assert!(is_literal_subject("a\rb.c"));
        assert!(!is_valid_literal_subject("a\rb.c"));
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", ">"] {
            assert!(!is_literal_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn bad_publish_subjects_match_nothing() {
        // sublist_test.go TestSublistMatchWithEmptyTokens, plus wildcard publish subjects.
        for mut s in both_kinds() {
            s.insert(">", None, 1).unwrap();
            s.insert(">", Some("queue"), 2).unwrap();
            s.insert("*.*", None, 3).unwrap();
            for subject in [
                "",
                ".foo",
                "..foo",
                "foo..",
                "foo.",
                "foo..bar",
                "foo...bar",
            ] {
                assert!(s.match_subject(subject).is_empty(), "{subject:?}");
                assert!(!s.has_interest(subject), "{subject:?}");
            }
            assert_eq!(s.cache_count(), 0, "invalid subjects must not be cached");
        }
    }

    #[test]
    fn wildcard_publish_subjects_match_like_nats_server() {
        for mut s in both_kinds() {
            s.insert(">", None, 1).unwrap();
            s.insert("foo.*", None, 2).unwrap();
            s.insert("foo.bar", None, 3).unwrap();
            s.insert("foo.>", None, 4).unwrap();
            let mut got: Vec<u32> = s.match_subject("foo.*").plain.clone();
            got.sort();
            assert_eq!(got, vec![1, 2, 4]);
            // nats-server's matchLevel lets `*` subscriptions match any
            // single published token, `>` included.
            let mut got: Vec<u32> = s.match_subject("foo.>").plain.clone();
            got.sort();
            assert_eq!(got, vec![1, 2, 4]);
        }
    }

    #[test]
    fn has_interest() {
        let mut s = Sublist::new();
        assert!(!s.has_interest("foo.bar"));
        s.insert("foo.*", Some("q"), 1).unwrap();
        assert!(s.has_interest("foo.bar"));
        assert!(!s.has_interest("foo"));
        assert!(!s.has_interest("foo.bar.baz"));
        // Also answered from a cached empty result.
        assert!(s.match_subject("bar").is_empty());
        assert!(!s.has_interest("bar"));
        s.remove("foo.*", Some("q"), &1).unwrap();
        assert!(!s.has_interest("foo.bar"));
    }

    #[test]
    fn cache_hit_is_shared_and_invalidated() {
        let mut s = Sublist::new();
        s.insert("foo.bar", None, 1).unwrap();
        let first = s.match_subject("foo.bar");
        let second = s.match_subject("foo.bar");
        assert!(
            Arc::ptr_eq(&first, &second),
            "second match must be a cache hit"
        );
        assert_eq!(s.cache_count(), 1);

        // A wildcard insert must update the cached literal.
        s.insert("foo.*", None, 2).unwrap();
        assert_eq!(plain_of(&s.match_subject("foo.bar")), vec![1, 2]);
        // A literal insert on another subject leaves this entry alone.
        let before = s.match_subject("foo.bar");
        s.insert("foo.baz", None, 3).unwrap();
        assert!(Arc::ptr_eq(&before, &s.match_subject("foo.bar")));
        // Removals too.
        s.remove("foo.*", None, &2).unwrap();
        assert_eq!(plain_of(&s.match_subject("foo.bar")), vec![1]);
        s.remove("foo.bar", None, &1).unwrap();
        assert!(s.match_subject("foo.bar").is_empty());
        // Cached empty result becomes non-empty on insert.
        assert!(s.match_subject("x.y").is_empty());
        s.insert(">", None, 4).unwrap();
        assert_eq!(plain_of(&s.match_subject("x.y")), vec![4]);
        // The earlier result handed out is unchanged (immutable snapshot).
        assert_eq!(plain_of(&first), vec![1]);
    }

    #[test]
    fn refresh_drops_affected_entries() {
        let mut s = Sublist::new();
        s.insert("a.*", Some("q"), 1).unwrap();
        s.insert("c", None, 2).unwrap();
        let a = s.match_subject("a.b");
        let c = s.match_subject("c");
        let g = s.generation();
        s.refresh("a.*");
        assert_eq!(s.generation(), g + 1);
        assert!(!Arc::ptr_eq(&a, &s.match_subject("a.b")), "a.b recomputed");
        assert!(Arc::ptr_eq(&c, &s.match_subject("c")), "c untouched");
        assert_eq!(*a, *s.match_subject("a.b"));
    }

    #[test]
    fn cache_is_bounded() {
        let mut s = Sublist::new();
        s.insert(">", None, 1).unwrap();
        for i in 0..5000 {
            let r = s.match_subject(&format!("subject.{i}"));
            assert_eq!(r.plain, vec![1]);
            assert!(s.cache_count() <= CACHE_MAX);
        }
        assert!(s.cache_count() >= CACHE_SWEEP_TO);
        let mut wide = Sublist::new();
        wide.insert("x", None, 1).unwrap();
        wide.insert(">", None, 2).unwrap();
        // Sweeps must not break correctness of later lookups.
        for round in 0..3 {
            for i in 0..2000 {
                assert_eq!(
                    wide.match_subject(&format!("s.{i}")).plain,
                    vec![2],
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn stats() {
        let mut s = Sublist::new();
        s.insert("foo", None, 1).unwrap();
        s.insert("foo", Some("q"), 2).unwrap();
        s.insert("foo", Some("q"), 3).unwrap();
        s.insert("bar", None, 4).unwrap();
        s.remove("bar", None, &4).unwrap();
        s.match_subject("foo"); // miss
        s.match_subject("foo"); // hit
        s.match_subject("foo"); // hit
        s.match_subject("baz"); // miss, empty result
        let st = s.stats();
        assert_eq!(st.num_subscriptions, 3);
        assert_eq!(st.num_inserts, 4);
        assert_eq!(st.num_removes, 1);
        assert_eq!(st.num_matches, 4);
        assert_eq!(st.num_cache, 2);
        assert!((st.cache_hit_rate - 0.5).abs() < 1e-9);
        assert_eq!(st.max_fanout, 2); // one plain + one queue group
        assert!((st.avg_fanout - 1.0).abs() < 1e-9);
        let json = serde_json::to_value(st).unwrap();
        for key in [
            "num_subscriptions",
            "num_cache",
            "num_inserts",
            "num_removes",
            "num_matches",
            "cache_hit_rate",
            "max_fanout",
            "avg_fanout",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        let st = Sublist::<u32>::without_cache().stats();
        assert_eq!(st.num_cache, 0);
        assert_eq!(st.cache_hit_rate, 0.0);
    }

    #[test]
    fn all_lists_every_subscription() {
        let mut s = Sublist::new();
        let subs = [
            ("foo", None, 1),
            ("foo.bar", None, 2),
            ("foo.*", Some("q"), 3),
            ("foo.>", None, 4),
            (">", Some("r"), 5),
            ("*.baz.*", None, 6),
        ];
        for (subject, queue, item) in subs {
            s.insert(subject, queue, item).unwrap();
        }
        let mut got: Vec<_> = s.all();
        got.sort_by_key(|entry| entry.2);
        let want: Vec<_> = subs
            .iter()
            .map(|(subject, queue, item)| (subject.to_string(), queue.map(String::from), *item))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn subset_match() {
        // sublist_test.go TestIsSubsetMatch, plus literal cases.
        let cases = [
            ("foo.*", ">", true),
            ("foo.*", "*.*", true),
            ("foo.*", "foo.*", true),
            ("foo.*", "foo.bar", false),
            ("foo.>", ">", true),
            ("foo.>", "*.>", true),
            ("foo.>", "foo.>", true),
            ("foo.>", "foo.bar", false),
            ("foo..bar", "foo.*", false),
            ("foo.*", "foo..bar", false),
            ("foo.bar", "foo.bar", true),
            ("foo.bar", "foo.*", true),
            ("foo.bar", "foo.>", true),
            ("foo", "foo.>", false),
            ("foo.bar.baz", "foo.*", false),
            ("foo.>", "foo.*", false),
            ("foo.*", "foo.*.*", false),
            ("*.bar", "foo.bar", false),
            ("foo.>", "foo.*.>", false),
        ];
        for (subject, pattern, want) in cases {
            assert_eq!(
                subject_is_subset_match(subject, pattern),
                want,
                "{subject} within {pattern}"
            );
        }
    }

    #[test]
    fn one_off_match() {
        // sublist_test.go TestSublistMatchLiterals (arguments swapped: pattern first).
        let cases = [
            ("foo", "foo", true),
            ("bar", "foo", false),
            ("*", "foo", true),
            (">", "foo", true),
            (">", "foo.bar", true),
            ("foo.>", "foo.bar", true),
            ("bar.>", "foo.bar", false),
            ("stats.>", "stats.test.22", true),
            ("stats.*.*", "stats.test.22", true),
            ("foo", "foo.bar", false),
            ("stats.test.foo", "stats.test.foos", false),
            ("stats.test.*", "stats.test", false),
            ("stats.*", "stats.test.foos", false),
            ("stats.*.*.foos", "stats.test.foos", false),
            ("foo.>", "foo", false),
            ("*bar", "*bar", true),
            ("foo*", "foo*", true),
            ("foo.***.bar", "foo.***.bar", true),
            (">bar", ">bar", true),
            ("foo>", "foo>", true),
            ("foo.>>>.bar", "foo.>>>.bar", true),
            ("foo.*", "foo..", false),
            ("foo.>", "foo..bar", false),
        ];
        for (pattern, literal, want) in cases {
            assert_eq!(
                subject_matches(pattern, literal),
                want,
                "{pattern} vs {literal}"
            );
        }
    }

    /// Brute-force reference matcher, written independently of the code under test: token lists
    /// compared position by position.
    fn brute_match(pattern: &str, literal: &str) -> bool {
        let p: Vec<&str> = pattern.split('.').collect();
        let l: Vec<&str> = literal.split('.').collect();
        for (i, pt) in p.iter().enumerate() {
            if *pt == ">" {
                return i == p.len() - 1 && l.len() > i;
            }
            if i >= l.len() || (*pt != "*" && *pt != l[i]) {
                return false;
            }
        }
        p.len() == l.len()
    }

    #[test]
    fn differential_against_brute_force() {
        const TOKENS: [&str; 4] = ["a", "b", "c", "d"];
        const QUEUES: [Option<&str>; 3] = [None, Some("q1"), Some("q2")];
        fn random_subject(rng: &mut StdRng, wildcards: bool) -> String {
            let depth = rng.random_range(1..=4);
            let mut tokens = Vec::new();
            for i in 0..depth {
                let roll = rng.random_range(0..10);
                let token = if wildcards && roll == 0 && i == depth - 1 {
                    ">"
                } else if wildcards && roll < 3 {
                    "*"
                } else {
                    TOKENS[rng.random_range(0..TOKENS.len())]
                };
                tokens.push(token);
            }
            tokens.join(".")
        }

        for seed in [1u64, 2, 3] {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut cached = Sublist::new();
            let mut uncached = Sublist::without_cache();
            let mut model: Vec<(String, Option<&str>, u32)> = Vec::new();
            let mut next_id = 0u32;
            let mut nonempty_hits = 0u64;
            for step in 0..20_000 {
                // Keep the model small enough for the brute force to stay fast, large enough
                // for rich overlaps (a few hundred subscriptions over 340 literal subjects).
                let roll = rng.random_range(0..10);
                let roll = if roll < 2 && model.len() >= 400 {
                    2
                } else {
                    roll
                };
                match roll {
                    0..=1 => {
                        let subject = random_subject(&mut rng, true);
                        let queue = QUEUES[rng.random_range(0..QUEUES.len())];
                        next_id += 1;
                        cached.insert(&subject, queue, next_id).unwrap();
                        uncached.insert(&subject, queue, next_id).unwrap();
                        model.push((subject, queue, next_id));
                    }
                    2 if !model.is_empty() => {
                        let (subject, queue, id) =
                            model.swap_remove(rng.random_range(0..model.len()));
                        cached.remove(&subject, queue, &id).unwrap();
                        uncached.remove(&subject, queue, &id).unwrap();
                    }
                    // Occasionally a batch removal (a connection going away).
                    3 if rng.random_range(0..20) == 0 && !model.is_empty() => {
                        let n = rng.random_range(1..=model.len().min(20));
                        let gone: Vec<_> = (0..n)
                            .map(|_| model.swap_remove(rng.random_range(0..model.len())))
                            .collect();
                        let batch = || gone.iter().map(|(s, q, id)| (s.as_str(), *q, id));
                        assert_eq!(cached.remove_batch(batch()), n);
                        assert_eq!(uncached.remove_batch(batch()), n);
                    }
                    _ => {
                        let literal = random_subject(&mut rng, false);
                        let mut want_plain = Vec::new();
                        let mut want_queues: BTreeMap<String, Vec<u32>> = BTreeMap::new();
                        for (subject, queue, id) in &model {
                            if brute_match(subject, &literal) {
                                match queue {
                                    None => want_plain.push(*id),
                                    Some(q) => {
                                        want_queues.entry(q.to_string()).or_default().push(*id)
                                    }
                                }
                            }
                        }
                        want_plain.sort_unstable();
                        want_queues.values_mut().for_each(|v| v.sort_unstable());
                        let got = cached.match_subject(&literal);
                        let ctx = format!("seed {seed} step {step} subject {literal}");
                        assert_eq!(plain_of(&got), want_plain, "{ctx}");
                        assert_eq!(queues_of(&got), want_queues, "{ctx}");
                        // Cached and uncached results agree exactly, order included.
                        assert_eq!(*got, *uncached.match_subject(&literal), "{ctx}");
                        assert_eq!(
                            cached.has_interest(&literal),
                            !want_plain.is_empty() || !want_queues.is_empty(),
                            "{ctx}"
                        );
                        if !got.is_empty() {
                            nonempty_hits += 1;
                        }
                    }
                }
                assert_eq!(cached.count(), model.len());
            }
            let mut all: Vec<_> = cached.all();
            all.sort_by_key(|e| e.2);
            let mut want: Vec<_> = model
                .iter()
                .map(|(s, q, id)| (s.clone(), q.map(String::from), *id))
                .collect();
            want.sort_by_key(|e| e.2);
            assert_eq!(all, want, "seed {seed}: all()");
            let stats = cached.stats();
            eprintln!("seed {seed}: {stats:?}, non-empty matches {nonempty_hits}");
            // The test is only meaningful if the cache was used and results were non-trivial.
            assert!(
                stats.cache_hit_rate > 0.1,
                "hit rate {}",
                stats.cache_hit_rate
            );
            assert!(nonempty_hits > 1000, "non-empty matches {nonempty_hits}");
        }
    }

    #[test]
    fn sublist_is_send_and_sync() {
        fn check<S: Send + Sync>() {}
        check::<Sublist<Arc<str>>>();
    }
}
