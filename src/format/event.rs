//! An event's own fields: the names of a callsite, and the visitor that writes them.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::Field;
use tracing::{Event, Level};

use super::address_map::{AddressMap, FRONT, Front, per_thread};
use super::options::LineOptions;
use super::truncate::{Line, StringValue};
use super::{EcsFormat, ValueSink, may_be_reserved, name_bit};
use crate::json::{NEEDS_ESCAPE, escaped_eq, write_json_str};

/// `{"timestamp":"…","level":"…","target":"…"`.
pub(super) fn write_prelude(
    out: &mut String,
    options: &LineOptions,
    now: SystemTime,
    level: Level,
    target: &str,
) -> fmt::Result {
    options.write_start(out, now)?;
    out.push_str("\"level\":\"");
    out.push_str(level.as_str());
    out.push_str("\",\"target\":");
    write_json_str(out, target)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Only `message`, so that it comes right after the target.
    Message,
    /// Everything else.
    Fields,
    /// Everything, in one visit: `message`, if any, comes first among the fields.
    All,
}

/// What the formatter needs to know of an event's field names: their [`name_bit`]s (all bits
/// when a name needs escaping), whether two share a bit, so that one may repeat another,
/// whether `message`, if there is one, comes first (so one pass writes it first), and which
/// names need a closer look when written (escaping, or a name some configuration reserves).
/// All depend only on the callsite, so they are worked out once per callsite and thread and
/// kept (see [`AddressMap`]); the rare events that need the names themselves (a possible
/// repeat or clash) walk the field set.
pub(super) struct EventNames<'a> {
    pub(super) event: &'a Event<'a>,
    pub(super) facts: Facts,
}

/// What [`EventNames`] keeps of a callsite.
#[derive(Clone, Copy)]
pub(super) struct Facts {
    pub(super) mask: u64,
    /// The fields (by index bit) whose name an earlier field has.
    pub(super) repeated: u64,
    pub(super) message_first: bool,
    /// The index of the first `message` field, if any (`u8::MAX` for none).
    pub(super) message: u8,
    /// The fields (by index bit) whose name needs escaping or may be reserved: the others
    /// are written as they are, unless the formatter reserves keys of its own.
    pub(super) looked_at: u64,
}

impl Default for Facts {
    fn default() -> Self {
        Facts::NONE
    }
}

impl Facts {
    const NONE: Facts = Facts {
        mask: 0,
        repeated: 0,
        message_first: false,
        message: u8::MAX,
        looked_at: 0,
    };
}

impl<'a> EventNames<'a> {
    pub(super) fn of(event: &'a Event<'a>) -> Self {
        thread_local! {
            static RECENT: Front<Facts> = const { [const { Cell::new((0, Facts::NONE)) }; FRONT] };
            static FACTS: RefCell<AddressMap<Facts>> = const { RefCell::new(AddressMap::new()) };
        }
        // A span's own lines (span events) borrow the span's metadata with field sets of their
        // own: the callsite does not decide their names, so they are not cached.
        let facts = if event.metadata().is_span() {
            Self::compute(event)
        } else {
            let address = std::ptr::from_ref(event.metadata()) as usize;
            per_thread(&RECENT, &FACTS, address, || Self::compute(event))
        };
        EventNames { event, facts }
    }

    pub(super) fn compute(event: &Event<'_>) -> Facts {
        let mut facts = Facts {
            message_first: true,
            ..Facts::NONE
        };
        for (i, field) in event.fields().enumerate() {
            let name = field.name();
            if name == "message" {
                if facts.message == u8::MAX {
                    // A callsite has at most 32 fields.
                    facts.message = u8::try_from(field.index()).unwrap_or(u8::MAX - 1);
                }
                facts.message_first &= field.index() == 0;
            }
            if event.fields().take(i).any(|earlier| earlier.name() == name) {
                facts.repeated |= index_bit(&field);
            }
            if name.bytes().any(|b| NEEDS_ESCAPE[b as usize]) {
                facts.mask = u64::MAX;
                facts.looked_at |= index_bit(&field);
            } else {
                facts.mask |= name_bit(name);
                if may_be_reserved(name) {
                    facts.looked_at |= index_bit(&field);
                }
            }
        }
        facts
    }

    /// Whether a field before `field` with a value (its bit in `valued`) has its name. A
    /// field without a value is as if absent: it is not the first of its name.
    pub(super) fn repeats(&self, field: &Field, valued: u64) -> bool {
        self.facts.repeated & index_bit(field) != 0
            && self
                .event
                .fields()
                .take_while(|f| f.index() < field.index())
                .any(|f| valued & index_bit(&f) != 0 && f.name() == field.name())
    }

    /// Whether the event has a field with a value (its bit in `valued`) whose escaped name is
    /// `escaped`: a field without one hides no span's field.
    /// `bit` is the name's [`name_bit`].
    pub(super) fn contains(&self, escaped: &str, bit: u64, valued: u64) -> bool {
        // The mask has every bit when a name needs escaping: a bit not in it rules out all.
        self.facts.mask & bit != 0
            && self
                .event
                .fields()
                .any(|f| valued & index_bit(&f) != 0 && escaped_eq(f.name(), escaped))
    }
}

/// A field's bit in a set of field indices (a callsite has at most 32 fields).
fn index_bit(field: &Field) -> u64 {
    1 << field.index().min(63)
}

pub(super) struct EventVisitor<'a, 'l> {
    /// The fields that had a value, by index: the visitor sees only those.
    pub(super) valued: u64,
    pub(super) format: &'a EcsFormat,
    pub(super) line: &'a mut Line<'l>,
    pub(super) names: &'a EventNames<'a>,
    pub(super) pass: Pass,
    pub(super) skip_log_fields: bool,
    /// Whether the line carries trace ids, so that the trace keys are the formatter's.
    pub(super) traced: bool,
    /// The trace ids, until they are written: after `message`, before the other fields.
    pub(super) trace_ids: Option<&'a str>,
    pub(super) result: fmt::Result,
}

impl EventVisitor<'_, '_> {
    /// Writes the key of `field` if this pass writes it; `false` to skip the field.
    pub(super) fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        // Visited, so it has a value; both passes visit in index order.
        self.valued |= index_bit(field);
        let name = field.name();
        // By index, not by name: the callsite's first `message`, or a later one whose earlier
        // namesakes had no value.
        let facts = &self.names.facts;
        let is_message = facts.message != u8::MAX
            && (field.index() == usize::from(facts.message)
                || (facts.repeated & index_bit(field) != 0 && name == "message"));
        if self.pass != Pass::All && (self.pass == Pass::Message) != is_message {
            return false;
        }
        // The first field of a name wins.
        if self.names.repeats(field, self.valued)
            || (self.skip_log_fields && name.starts_with("log."))
        {
            return false;
        }
        let plain_name =
            facts.looked_at & index_bit(field) == 0 && facts.mask & self.format.own_mask == 0;
        if !is_message {
            if let Some(ids) = self.trace_ids.take() {
                self.line.out.push_str(ids);
            }
        }
        self.result = if is_message {
            self.line.out.write_str(",\"message\":")
        } else if plain_name {
            // Needs no escaping, and no configuration reserves it.
            let out = &mut *self.line.out;
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            Ok(())
        } else {
            self.format.write_key(self.line.out, name, self.traced)
        };
        self.result.is_ok()
    }
}

impl ValueSink for EventVisitor<'_, '_> {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        if self.key(field) {
            self.result = write(self.line.out);
        }
    }

    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) {
        if self.key(field) {
            self.result = self.line.string(content);
        }
    }
}
