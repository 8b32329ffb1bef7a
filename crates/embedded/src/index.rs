//! The in-memory index over the log, rebuilt at open from the frames and
//! extended by the writer after each durable group commit.
//!
//! Events themselves stay on disk; the index holds, per event, where its
//! record lies, which stream it belongs to and its event id.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use eventstore_core::{
    Direction, EventId, Revision, StreamCursor, StreamInfo, StreamKey, StreamListPage, StreamRead,
    StreamType, StreamTypeCount, Timestamp,
};

use crate::format::RecordSpan;

/// The stream number of a position lost to damage (see `apply_lost`).
const LOST: u32 = u32::MAX;

/// The most positions one lost range may cover: far more than any log
/// holds, so a larger gap is a frame's false claim, not lost data.
pub(crate) const MAX_LOST_POSITIONS: u64 = 1 << 40;

/// Where the event at a position lies, and its stream.
#[derive(Debug, Clone, Copy)]
struct FeedEntry {
    offset: u64,
    len: u32,
    stream: u32,
}

struct StreamEntry {
    key: Arc<StreamKey>,
    /// Position of each event, by revision - 1; 0 for a revision lost to
    /// damage (then `holes` is set and the list is not searched by
    /// bisection).
    positions: Vec<u64>,
    holes: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Default)]
struct TypeEntry {
    /// Positions of the type's events, ascending (the per-type feed).
    positions: Vec<u64>,
    /// The type's streams by `updated_at`. Commit times are unique per
    /// append, so one stream at most sits at each time.
    listing: BTreeMap<Timestamp, u32>,
}

/// One durable append as the index takes it in.
pub(crate) struct Commit {
    pub stream: Arc<StreamKey>,
    pub commit_time: Timestamp,
    pub first_revision: Revision,
    pub first_position: u64,
    pub events: Vec<(EventId, RecordSpan)>,
}

/// An event to load from the file: where it is and what the index knows.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub span: RecordSpan,
    pub position: u64,
    pub stream: Arc<StreamKey>,
}

/// The index.
#[derive(Default)]
pub(crate) struct Index {
    /// By position - 1.
    feed: Vec<FeedEntry>,
    streams: Vec<StreamEntry>,
    by_key: HashMap<Arc<StreamKey>, u32>,
    types: BTreeMap<StreamType, TypeEntry>,
    /// Event id -> the position of its first occurrence.
    ids: HashMap<EventId, u64>,
    /// Event ids that occur in more than one stream: the other positions.
    more_ids: HashMap<EventId, Vec<u64>>,
    last_time: Option<Timestamp>,
    /// Revisions that a lost range says a stream lost, not yet followed
    /// by the stream's next frame: (first, last).
    pending_lost: HashMap<StreamKey, (u64, u64)>,
}

impl Index {
    /// How many streams there are.
    pub(crate) fn stream_count(&self) -> u64 {
        self.streams.len() as u64
    }

    /// The last position of a type's events (0 when it has none).
    pub(crate) fn type_last_position(&self, stream_type: &StreamType) -> u64 {
        self.types
            .get(stream_type)
            .and_then(|t| t.positions.last().copied())
            .unwrap_or(0)
    }

    /// Takes in a range of positions (and stream revisions) lost to damage,
    /// as repair records it: the positions are never given out again, and
    /// the streams' next frames may continue after the lost revisions.
    pub(crate) fn apply_lost(&mut self, lost: &crate::format::LostRange) -> Result<(), String> {
        if lost.first_position <= lost.last_position {
            if lost.first_position != self.last_position() + 1 {
                return Err(format!(
                    "lost positions from {} follow position {}",
                    lost.first_position,
                    self.last_position()
                ));
            }
            let n = lost.last_position - lost.first_position + 1;
            if n > MAX_LOST_POSITIONS {
                return Err(format!("{n} lost positions"));
            }
            self.feed.extend((0..n).map(|_| FeedEntry {
                offset: 0,
                len: 0,
                stream: LOST,
            }));
        }
        for (key, first, last) in &lost.streams {
            let merged = match self.pending_lost.get(key) {
                Some(&(a, b)) if b + 1 == *first => (a, *last),
                _ => (*first, *last),
            };
            self.pending_lost.insert(key.clone(), merged);
        }
        Ok(())
    }

    /// Ends a replay: streams that lost their last revisions keep them
    /// counted, so that they are never given out again.
    pub(crate) fn finish_lost(&mut self) {
        for (key, (first, last)) in std::mem::take(&mut self.pending_lost) {
            if let Some(s) = self.stream(&key) {
                let entry = &mut self.streams[s as usize];
                if entry.positions.len() as u64 + 1 == first {
                    entry.positions.resize(last as usize, 0);
                    entry.holes = true;
                }
            }
        }
    }
    /// The stream's number, if it exists.
    pub(crate) fn stream(&self, key: &StreamKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// The stream's shared key.
    pub(crate) fn key(&self, stream: u32) -> &Arc<StreamKey> {
        &self.streams[stream as usize].key
    }

    /// The stream's current revision.
    pub(crate) fn revision(&self, stream: u32) -> Revision {
        Revision::new(self.streams[stream as usize].positions.len() as u64)
    }

    /// The position of the last committed event (0 when empty).
    pub(crate) fn last_position(&self) -> u64 {
        self.feed.len() as u64
    }

    /// The commit time of the last append.
    pub(crate) fn last_time(&self) -> Option<Timestamp> {
        self.last_time
    }

    /// The revision at which `id` sits in `stream`, if it does.
    pub(crate) fn find(&self, stream: u32, id: &EventId) -> Option<Revision> {
        let in_stream = |pos: u64| -> Option<Revision> {
            if self.feed[pos as usize - 1].stream != stream {
                return None;
            }
            let s = &self.streams[stream as usize];
            let found = if s.holes {
                s.positions.iter().position(|&p| p == pos)
            } else {
                s.positions.binary_search(&pos).ok()
            };
            found.map(|i| Revision::new(i as u64 + 1))
        };
        if let Some(r) = self.ids.get(id).and_then(|&p| in_stream(p)) {
            return Some(r);
        }
        self.more_ids.get(id)?.iter().find_map(|&p| in_stream(p))
    }

    /// The position of the event at `revision` of `stream`.
    pub(crate) fn position_of(&self, stream: u32, revision: Revision) -> Option<u64> {
        let i = usize::try_from(revision.get()).ok()?.checked_sub(1)?;
        self.streams[stream as usize]
            .positions
            .get(i)
            .copied()
            .filter(|&p| p != 0)
    }

    /// The stream's summary.
    pub(crate) fn info(&self, stream: u32) -> StreamInfo {
        let s = &self.streams[stream as usize];
        StreamInfo {
            stream_id: s.key.stream_id.clone(),
            stream_type: s.key.stream_type.clone(),
            revision: Revision::new(s.positions.len() as u64),
            updated_at: s.updated_at,
            created_at: s.created_at,
        }
    }

    /// Takes in one append, checking the invariants of the log: positions
    /// follow each other, revisions follow the stream's, commit times rise,
    /// an event id occurs once per stream. Returns the stream's number.
    pub(crate) fn apply(&mut self, c: &Commit) -> Result<u32, String> {
        if c.first_position != self.last_position() + 1 {
            return Err(format!(
                "append at position {} follows position {}",
                c.first_position,
                self.last_position()
            ));
        }
        if self.last_time.is_some_and(|t| c.commit_time <= t) {
            return Err(format!(
                "commit time {} does not follow {}",
                c.commit_time,
                self.last_time.expect("checked")
            ));
        }
        if c.events.is_empty() {
            return Err("an append without events".into());
        }
        let existing = self.stream(&c.stream);
        let current = existing.map_or(Revision::ZERO, |s| self.revision(s));
        let mut lost_before = 0;
        if c.first_revision != current.next() {
            match self.pending_lost.get(&*c.stream) {
                Some(&(a, b)) if a == current.get() + 1 && b + 1 == c.first_revision.get() => {
                    lost_before = b - a + 1;
                }
                _ => {
                    return Err(format!(
                        "stream {} continues at revision {} after revision {current}",
                        c.stream, c.first_revision
                    ));
                }
            }
        }
        if lost_before == 0 && self.pending_lost.contains_key(&*c.stream) {
            // A lost range that does not end where this frame starts.
            let (a, b) = self.pending_lost[&*c.stream];
            return Err(format!(
                "stream {} lost revisions {a}–{b} but continues at revision {}",
                c.stream, c.first_revision
            ));
        }
        if let Some(s) = existing
            && let Some((id, _)) = c.events.iter().find(|(id, _)| self.find(s, id).is_some())
        {
            return Err(format!("event {id} occurs twice in stream {}", c.stream));
        }
        let stream = match existing {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.streams.len())
                    .map_err(|_| "too many streams".to_string())?;
                self.streams.push(StreamEntry {
                    key: c.stream.clone(),
                    positions: Vec::new(),
                    holes: false,
                    created_at: c.commit_time,
                    updated_at: c.commit_time,
                });
                self.by_key.insert(c.stream.clone(), s);
                s
            }
        };
        if lost_before > 0 {
            self.pending_lost.remove(&*c.stream);
            let s = &mut self.streams[stream as usize];
            let n = s.positions.len() + lost_before as usize;
            s.positions.resize(n, 0);
            s.holes = true;
        }
        let entry = self.types.entry(c.stream.stream_type.clone()).or_default();
        let s = &mut self.streams[stream as usize];
        if existing.is_some() {
            entry.listing.remove(&s.updated_at);
        }
        s.updated_at = c.commit_time;
        entry.listing.insert(c.commit_time, stream);
        for (i, (id, span)) in c.events.iter().enumerate() {
            let position = c.first_position + i as u64;
            self.feed.push(FeedEntry {
                offset: span.offset,
                len: span.len,
                stream,
            });
            s.positions.push(position);
            entry.positions.push(position);
            if let Some(&first) = self.ids.get(id) {
                debug_assert_ne!(first, position);
                self.more_ids.entry(*id).or_default().push(position);
            } else {
                self.ids.insert(*id, position);
            }
        }
        self.last_time = Some(c.commit_time);
        Ok(stream)
    }

    /// What a stream read returns, in ascending position order, with
    /// `has_more` and `last_evaluated_revision`; `None` when the stream
    /// does not exist.
    pub(crate) fn stream_items(
        &self,
        key: &StreamKey,
        read: &StreamRead,
    ) -> Option<(Vec<Item>, bool, Revision)> {
        let s = &self.streams[self.stream(key)? as usize];
        let total = s.positions.len() as u64;
        let limit = read.limit as u64;
        let (start, end, has_more, empty_rev) = match read.direction {
            Direction::Forward => {
                let after = read.from.unwrap_or(Revision::ZERO).get();
                let start = after.min(total);
                let end = start.saturating_add(limit).min(total);
                (start, end, end < total, after)
            }
            Direction::Backward => {
                let before = read.from.map_or(total + 1, |r| r.get());
                let end = before.saturating_sub(1).min(total);
                let start = end.saturating_sub(limit);
                (start, end, start > 0, before)
            }
        };
        let items: Vec<Item> = s.positions[start as usize..end as usize]
            .iter()
            .filter(|&&p| p != 0)
            .map(|&p| self.item(p))
            .collect();
        let last = if items.is_empty() {
            Revision::new(empty_rev)
        } else {
            match read.direction {
                Direction::Forward => Revision::new(end),
                Direction::Backward => Revision::new(start + 1),
            }
        };
        Some((items, has_more, last))
    }

    /// What a feed read returns, ascending, with `has_more`.
    pub(crate) fn feed_items(
        &self,
        stream_type: Option<&StreamType>,
        after: u64,
        limit: usize,
    ) -> (Vec<Item>, bool) {
        match stream_type {
            None => {
                let total = self.last_position();
                let start = after.min(total);
                let mut items = Vec::new();
                let mut p = start;
                while p < total && items.len() < limit {
                    p += 1;
                    if self.feed[p as usize - 1].stream != LOST {
                        items.push(self.item(p));
                    }
                }
                (items, p < total)
            }
            Some(t) => {
                let Some(entry) = self.types.get(t) else {
                    return (Vec::new(), false);
                };
                let start = entry.positions.partition_point(|&p| p <= after);
                let end = start.saturating_add(limit).min(entry.positions.len());
                let items = entry.positions[start..end]
                    .iter()
                    .map(|&p| self.item(p))
                    .collect();
                (items, end < entry.positions.len())
            }
        }
    }

    fn item(&self, position: u64) -> Item {
        let f = self.feed[position as usize - 1];
        Item {
            span: RecordSpan {
                offset: f.offset,
                len: f.len,
            },
            position,
            stream: self.streams[f.stream as usize].key.clone(),
        }
    }

    /// A page of a type's streams ordered by `(updated_at, stream_id)`.
    pub(crate) fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<&StreamCursor>,
        limit: usize,
    ) -> StreamListPage {
        let Some(entry) = self.types.get(stream_type) else {
            return StreamListPage {
                streams: Vec::new(),
                next: None,
            };
        };
        let mut lower = updated_after.map_or(Bound::Unbounded, Bound::Excluded);
        if let Some(c) = cursor
            && updated_after.is_none_or(|u| c.updated_at > u)
        {
            lower = Bound::Included(c.updated_at);
        }
        let mut streams = Vec::new();
        let mut more = false;
        for (&updated, &s) in entry.listing.range((lower, Bound::Unbounded)) {
            let key = &self.streams[s as usize].key;
            if let Some(c) = cursor
                && (updated, &key.stream_id) <= (c.updated_at, &c.stream_id)
            {
                continue;
            }
            if streams.len() == limit {
                more = true;
                break;
            }
            streams.push(self.info(s));
        }
        let next = if more {
            streams.last().map(|s: &StreamInfo| StreamCursor {
                updated_at: s.updated_at,
                stream_id: s.stream_id.clone(),
            })
        } else {
            None
        };
        StreamListPage { streams, next }
    }

    /// Every type with its number of streams.
    pub(crate) fn stream_types(&self) -> Vec<StreamTypeCount> {
        self.types
            .iter()
            .map(|(t, e)| StreamTypeCount {
                stream_type: t.clone(),
                streams: e.listing.len() as u64,
            })
            .collect()
    }
}
