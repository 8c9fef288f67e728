//! An event's own fields: the names of a callsite, and the visitor that writes them.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::Field;
use tracing::{Event, Level};

use super::address_map::{AddressMap, per_thread};
use super::keys::{ReservedKeys, name_bit};
use super::options::LineOptions;
use super::truncate::{Line, StringValue};
use super::{EcsFormat, ValueSink};
use crate::json::{is_plain, write_json_str};

/// `{"timestamp":"…","level":"…","target":"…"` (the target when its option is on).
pub(super) fn write_prelude(
    out: &mut String,
    options: &LineOptions,
    now: SystemTime,
    level: Level,
    target: Target<'_>,
) -> fmt::Result {
    options.write_start(out, now)?;
    out.push_str("\"level\":\"");
    out.push_str(level.as_str());
    out.push('"');
    if options.target {
        out.push_str(",\"target\":");
        match target {
            Target::Plain(target) => {
                out.push('"');
                out.push_str(target);
                out.push('"');
            }
            Target::Any(target) => write_json_str(out, target)?,
        }
    }
    Ok(())
}

/// An event's target, as [`write_prelude`] writes it.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    /// Known to need no escaping (its callsite's [`Facts::plain_target`]).
    Plain(&'a str),
    /// Escaped as it is written.
    Any(&'a str),
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

/// What the formatter needs to know of an event's field names: their [`name_bit`]s, whether
/// two share a bit, so that one may repeat another,
/// whether `message`, if there is one, comes first (so one pass writes it first), and which
/// names need a closer look when written (escaping, or a name some configuration reserves).
/// All depend only on the callsite, so they are worked out once per callsite and thread and
/// kept (see [`AddressMap`]); the rare events that need the names themselves (a possible
/// repeat or clash) walk the field set.
pub(super) struct EventNames<'a> {
    pub(super) event: &'a Event<'a>,
    pub(super) facts: Facts,
}

/// What [`EventNames`] keeps of a callsite. Sets of fields are bits by field index; the
/// fields past the 64th share one flag, set when any of them would have its bit: a flagged
/// field is looked at closely, so sharing costs time, never correctness.
#[derive(Clone, Copy)]
pub(super) struct Facts {
    pub(super) mask: u64,
    /// The fields whose name an earlier field has.
    repeated: FieldSet,
    pub(super) message_first: bool,
    /// The index of the first `message` field, if any (`u32::MAX` for none).
    message: u32,
    /// The fields whose name needs escaping or may be reserved: the others are written as
    /// they are, unless the formatter reserves keys of its own.
    looked_at: FieldSet,
    /// The fields whose key goes on the line as it is, with no other check: not `message`,
    /// not looked at, no name an earlier field has, none in `log.` (see [`Facts::plain`]).
    plain: FieldSet,
    /// Whether the callsite's target needs no escaping.
    pub(super) plain_target: bool,
}

/// A set of an event's fields, by index: one bit each for the first 64, one flag for the
/// rest.
#[derive(Clone, Copy)]
struct FieldSet {
    first: u64,
    past_64: bool,
}

impl FieldSet {
    const NONE: FieldSet = FieldSet {
        first: 0,
        past_64: false,
    };

    fn add(&mut self, field: &Field) {
        match field.index() {
            i @ 0..64 => self.first |= 1 << i,
            _ => self.past_64 = true,
        }
    }

    fn has(self, field: &Field) -> bool {
        match field.index() {
            i @ 0..64 => self.first & (1 << i) != 0,
            _ => self.past_64,
        }
    }
}

/// The fields of an event that had a value, by index: the visitor sees only those. Past the
/// 64th (a callsite built by hand) in a vector, which only such events allocate.
#[derive(Default)]
pub(super) struct Valued {
    first: u64,
    rest: Vec<u64>,
}

impl Valued {
    fn add(&mut self, field: &Field) {
        match field.index() {
            i @ 0..64 => self.first |= 1 << i,
            i => {
                let (word, bit) = (i / 64 - 1, i % 64);
                if self.rest.len() <= word {
                    self.rest.resize(word + 1, 0);
                }
                self.rest[word] |= 1 << bit;
            }
        }
    }

    fn has(&self, field: &Field) -> bool {
        match field.index() {
            i @ 0..64 => self.first & (1 << i) != 0,
            i => self
                .rest
                .get(i / 64 - 1)
                .is_some_and(|word| word & (1 << (i % 64)) != 0),
        }
    }
}

impl Facts {
    const NONE: Facts = Facts {
        mask: 0,
        repeated: FieldSet::NONE,
        message_first: false,
        message: u32::MAX,
        looked_at: FieldSet::NONE,
        plain: FieldSet::NONE,
        plain_target: false,
    };

    /// The fields of [`Facts::plain`] by index, when no name of the event is one `reserved`
    /// may rename (else none): worked out once an event.
    pub(super) fn plain(&self, reserved: &ReservedKeys) -> u64 {
        if self.mask & reserved.own_mask() == 0 {
            self.plain.first
        } else {
            0
        }
    }
}

impl<'a> EventNames<'a> {
    pub(super) fn of(event: &'a Event<'a>) -> Self {
        thread_local! {
            static FACTS: RefCell<AddressMap<Facts>> = const { RefCell::new(AddressMap::new()) };
        }
        // A span's own lines (span events) borrow the span's metadata with field sets of their
        // own: the callsite does not decide their names, so they are not cached.
        let facts = if event.metadata().is_span() {
            Self::compute(event)
        } else {
            let address = std::ptr::from_ref(event.metadata()) as usize;
            per_thread(&FACTS, address, || Self::compute(event))
        };
        EventNames { event, facts }
    }

    pub(super) fn compute(event: &Event<'_>) -> Facts {
        let mut facts = Facts {
            message_first: true,
            plain_target: is_plain(event.metadata().target()),
            ..Facts::NONE
        };
        for (i, field) in event.fields().enumerate() {
            let name = field.name();
            if name == "message" {
                if facts.message == u32::MAX {
                    facts.message = u32::try_from(field.index()).unwrap_or(u32::MAX - 1);
                }
                facts.message_first &= field.index() == 0;
            }
            if event.fields().take(i).any(|earlier| earlier.name() == name) {
                facts.repeated.add(&field);
            }
            let bit = name_bit(name);
            facts.mask |= bit;
            if !is_plain(name) || ReservedKeys::any().contains(name, bit, true) {
                facts.looked_at.add(&field);
            } else if name != "message"
                && !facts.repeated.has(&field)
                && !name.starts_with("log.")
                && field.index() < 64
            {
                facts.plain.add(&field);
            }
        }
        facts
    }

    /// Whether a field before `field` with a value has its name. A field without a value is
    /// as if absent: it is not the first of its name.
    fn repeats(&self, field: &Field, valued: &Valued) -> bool {
        self.facts.repeated.has(field)
            && self
                .event
                .fields()
                .take_while(|f| f.index() < field.index())
                .any(|f| valued.has(&f) && f.name() == field.name())
    }

    /// Whether the event has a field named `name` with a value: a field without one hides no
    /// span's field. `bit` is the name's [`name_bit`].
    pub(super) fn contains(&self, name: &str, bit: u64, valued: &Valued) -> bool {
        self.facts.mask & bit != 0
            && self
                .event
                .fields()
                .any(|f| valued.has(&f) && f.name() == name)
    }
}

pub(super) struct EventVisitor<'a, 'l> {
    pub(super) valued: Valued,
    pub(super) format: &'a EcsFormat,
    pub(super) line: &'a mut Line<'l>,
    pub(super) names: &'a EventNames<'a>,
    /// [`Facts::plain`] for this event.
    pub(super) plain: u64,
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
        self.valued.add(field);
        let name = field.name();
        // Most fields: nothing to check, the key as it is.
        if field.index() < 64 && self.plain & (1 << field.index()) != 0 {
            if self.pass == Pass::Message {
                return false;
            }
            if let Some(ids) = self.trace_ids.take() {
                self.line.out.push_str(ids);
            }
            push_key(self.line.out, name);
            return true;
        }
        // By index, not by name: the callsite's first `message`, or a later one whose earlier
        // namesakes had no value.
        let facts = &self.names.facts;
        let is_message = facts.message != u32::MAX
            && (u32::try_from(field.index()) == Ok(facts.message)
                || (facts.repeated.has(field) && name == "message"));
        if self.pass != Pass::All && (self.pass == Pass::Message) != is_message {
            return false;
        }
        // The first field of a name wins.
        if self.names.repeats(field, &self.valued)
            || (self.skip_log_fields && name.starts_with("log."))
        {
            return false;
        }
        let plain_name =
            !facts.looked_at.has(field) && facts.mask & self.format.reserved.own_mask() == 0;
        if !is_message {
            if let Some(ids) = self.trace_ids.take() {
                self.line.out.push_str(ids);
            }
        }
        self.result = if is_message {
            self.line.out.write_str(",\"message\":")
        } else if plain_name {
            // Needs no escaping, and no configuration reserves it.
            push_key(self.line.out, name);
            Ok(())
        } else {
            self.format.write_key(self.line.out, name, self.traced)
        };
        self.result.is_ok()
    }
}

/// `,"name":` for a name that needs no escaping.
fn push_key(out: &mut String, name: &str) {
    out.reserve(name.len() + 5);
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
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

    fn str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.result = self.line.str(value);
        }
    }
}
