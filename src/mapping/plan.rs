//! The mapping of one answer, compiled once: every column the tables' field
//! lists read gets a slot ([`Columns`]), every field list becomes runs of
//! (slot, leaf, conversion) under one parent object, and each row is read
//! once, mapped from its borrowed cells and written straight to the output.

use super::cells::{Cells, Columns};
use super::conv::{convert, put_in};
use super::event::{Event, settled};
use super::field::{Context, Conv, MapError, is_dynamic};
use super::ocsf;
use super::table::{Activity, Shape, Table, Written};
use super::value::{Cell, Key, Obj, V, push_in, segments, split_last, unquote};
use crate::answer::RowText;
use crate::bytes::put;
use crate::time::Ticks;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;

/// One field of a run: the cell of `slot` converted by `conv` goes to `leaf`.
struct Put {
    slot: usize,
    leaf: &'static str,
    conv: Conv,
    /// Whether `leaf` cannot be in its object yet when the put comes (see
    /// [`compile`]), so that the value is appended without searching the
    /// object's keys for it.
    fresh: bool,
    /// Whether an earlier field of the shape puts a value at the same
    /// place (`IPAddress` and `IpAddress`): the first that gives one
    /// fills it, and this cell, if it says something else, stays in the
    /// row (docs/mapping.md, rule 21).
    second: bool,
}

/// Consecutive fields under one parent object, put through one walk of the tree.
struct Run {
    /// The parent's path, split once here (the root for none).
    parent: Vec<&'static str>,
    puts: Vec<Put>,
}

/// A table's shapes, compiled against one answer's columns.
struct Compiled {
    table: &'static Table,
    /// (shape, its runs), for the table's shape and each activity's own.
    shapes: Vec<(*const Shape, Vec<Run>)>,
    /// The attributes every event of an activity holds alike, made the
    /// first time a row of the activity comes.
    fixed: RefCell<Vec<(*const Activity, Fixed)>>,
}

/// The start of every event of one activity of one table: its class,
/// activity, type, severity, status and the fixed attributes the activity
/// sets, and its `metadata` (version, product, log name), in the order a
/// row's own attributes would have put them, with where the row's time and
/// names go.
struct Fixed {
    root: Obj<'static>,
    class_name: &'static str,
    /// The places in `root` of `time`, `type_name`, `activity_name` and
    /// `metadata`.
    time: usize,
    type_name: usize,
    activity_name: usize,
    metadata: usize,
}

impl Fixed {
    fn new(table: &'static Table, activity: &'static Activity) -> Fixed {
        let class = ocsf::class(activity.class_uid);
        let columns = Columns::default();
        let mut e = Event::new(Cells::empty(), &columns);
        e.set("class_uid", activity.class_uid);
        e.set("class_name", class.name);
        e.set("category_uid", class.category_uid);
        e.set("category_name", ocsf::category_name(class.category_uid));
        e.set("activity_id", activity.activity_id);
        // 99 Other is named by the source's word when there is one (each
        // row puts its own), and by the schema's caption otherwise; any
        // other id by the schema's caption, even for an ActionType the
        // table does not list (it stays in `metadata.event_code`).
        let activity_name = class.activity_name(activity.activity_id);
        e.set("type_uid", u64::from(activity.class_uid) * 100 + u64::from(activity.activity_id));
        e.set("type_name", ocsf::type_name(class, activity.activity_id));
        e.set("activity_name", activity_name);
        e.set("severity_id", 1);
        e.set("severity", "Informational");
        e.set("time", V::Null);
        if let Some(status_id) = activity.status_id {
            e.set("status_id", status_id);
            e.set("status", ocsf::status_name(status_id));
        }
        for (path, value) in activity.sets {
            e.set(path, *value);
        }
        e.set("metadata.version", ocsf::VERSION);
        e.set("metadata.product.name", table.product.name());
        e.set("metadata.product.vendor_name", "Microsoft");
        e.set("metadata.log_name", table.name);
        settle(&mut e.root);
        let at = |key: &str| e.root.0.iter().position(|(k, _)| k == key).unwrap_or_default();
        Fixed {
            class_name: class.name,
            time: at("time"),
            type_name: at("type_name"),
            activity_name: at("activity_name"),
            metadata: at("metadata"),
            root: e.root,
        }
    }

    /// A copy of the start, with room for what a row adds. Its strings are
    /// the start's, borrowed ([`settle`]), so none is copied.
    fn event<'a>(&self) -> Obj<'a> {
        fn copy<'a>(o: &Obj<'static>, room: usize) -> Obj<'a> {
            let mut members = Vec::with_capacity(o.len().max(room));
            members.extend(o.0.iter().map(|(k, v)| {
                let v = match v {
                    V::Obj(inner) => V::Obj(copy(inner, 8)),
                    other => other.clone(),
                };
                (k.clone(), v)
            }));
            Obj(members)
        }
        copy(&self.root, 32)
    }
}

/// Settles the start's strings, all the mapping's own ([`settled`]), so
/// that they are not searched for escapes again row after row. The start
/// holds no other strings (a test checks it).
fn settle(o: &mut Obj<'static>) {
    for (_, v) in &mut o.0 {
        match v {
            V::Obj(inner) => settle(inner),
            V::Str(Cow::Borrowed(s)) => *v = settled(s),
            _ => {}
        }
    }
}

/// The mapping of one answer's rows: its columns and the compiled tables.
pub struct Plan {
    columns: Columns,
    tables: Vec<Compiled>,
    timestamp: usize,
    action_type: usize,
    report_id: usize,
}

impl Plan {
    /// Compiles `tables` (the first is the answer's own; the others are a
    /// union's members) against the answer's `schema` column names.
    pub fn new<'s>(tables: &[&'static Table], schema: impl IntoIterator<Item = &'s str>) -> Plan {
        let mut columns = Columns::new(schema, ["Timestamp", "ActionType", "ReportId"]);
        let compiled = tables
            .iter()
            .map(|table| {
                let mut shapes: Vec<&'static Shape> = vec![table.shape];
                for activity in table.all_activities() {
                    if let Some(shape) = activity.shape
                        && !shapes.iter().any(|s| std::ptr::eq(*s, shape))
                    {
                        shapes.push(shape);
                    }
                }
                for column in table.key {
                    columns.add(column);
                }
                let start = start_paths(table);
                let shapes = shapes
                    .into_iter()
                    .map(|shape| (shape as *const Shape, compile(shape, &mut columns, &start)))
                    .collect();
                Compiled {
                    table,
                    shapes,
                    fixed: RefCell::default(),
                }
            })
            .collect();
        Plan {
            timestamp: columns.slot("Timestamp").unwrap_or_default(),
            action_type: columns.slot("ActionType").unwrap_or_default(),
            report_id: columns.slot("ReportId").unwrap_or_default(),
            columns,
            tables: compiled,
        }
    }

    /// The answer's columns.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// Maps the row `text` and appends its event to `out` as one NDJSON
    /// line. `pick` may take a cell that names the row's own table (a
    /// union's source column); otherwise the row is the first table's. On
    /// an error, `out` is as it was.
    pub fn write_row<'a>(
        &self,
        text: impl Into<RowText<'a>>,
        ctx: &'a Context,
        out: &mut Vec<u8>,
        pick: impl Fn(&mut Cells<'a>, &Columns) -> Option<&'static Table>,
    ) -> Result<Written, MapError> {
        let (event, written) = self.event_row(text, ctx, pick)?;
        event.write(out);
        out.push(b'\n');
        Ok(written)
    }

    /// Maps the row `text` to its event's tree, for a caller that works on
    /// it before writing it ([`Obj::write`]): a table's events that others
    /// fold into. `pick` is as for [`Plan::write_row`].
    pub fn event_row<'a>(
        &self,
        text: impl Into<RowText<'a>>,
        ctx: &'a Context,
        pick: impl Fn(&mut Cells<'a>, &Columns) -> Option<&'static Table>,
    ) -> Result<(Obj<'a>, Written), MapError> {
        let text = text.into();
        let read = |text| {
            Cells::read_row(text, &self.columns).map_err(|reason| MapError {
                table: self.tables.first().map_or("", |t| t.table.name).to_string(),
                key: String::new(),
                reason: format!("the row could not be read: {reason}"),
            })
        };
        let mut row = read(text)?;
        let table = pick(&mut row, &self.columns);
        let Some(compiled) = table
            .and_then(|t| self.tables.iter().find(|c| std::ptr::eq(c.table, t)))
            .or(self.tables.first())
        else {
            return Err(MapError {
                table: String::new(),
                key: String::new(),
                reason: "the plan was compiled for no table".into(),
            });
        };
        // A row rejected once its cells are spent is named by its natural
        // key, read again from its text: the error path alone pays for it.
        let named = |mut error: MapError| {
            if error.key.is_empty()
                && let Ok(row) = Cells::read_row(text, &self.columns)
            {
                error.key = describe_key(compiled.table, &row, &self.columns);
            }
            error
        };
        match self.map(compiled, row, ctx, false) {
            Ok(mapped) => Ok(mapped),
            // The second try, as the successor (see below), on the row read
            // again: rare, where a copy of the cells would be made for every
            // row of such an activity (a tenth of the DeviceEvents workload).
            // The first try's reason stands if this one fails too.
            Err((error, true)) => {
                let mut row = read(text)?;
                pick(&mut row, &self.columns);
                self.map(compiled, row, ctx, true).map_err(|_| named(error))
            }
            Err((error, false)) => Err(named(error)),
        }
    }

    /// Maps `row` as its activity's event, or with `successor`, as its
    /// activity's successor's. An error says whether the row is worth a
    /// second try as the successor (its deprecated class rejected it).
    fn map<'a>(
        &self,
        compiled: &Compiled,
        mut row: Cells<'a>,
        ctx: &'a Context,
        successor: bool,
    ) -> Result<(Obj<'a>, Written), (MapError, bool)> {
        let table = compiled.table;
        let fail = |row: &Cells, reason: String| {
            let key = describe_key(table, row, &self.columns);
            (
                MapError {
                    table: table.name.to_string(),
                    key,
                    reason,
                },
                false,
            )
        };
        let action_type = self.action_type(&row);
        let (mut activity, _) = table.activity(action_type.as_deref());
        // A row that cannot give what its deprecated class requires may give
        // what the class's successor does (a click with no e-mail id cannot
        // be 4012, which requires one, and can be 4009): it is worth a
        // second try.
        let mut second_try = false;
        if let Some(next) = activity.successor {
            match ctx.no_deprecated_classes || successor {
                true => activity = next,
                false => second_try = true,
            }
        }
        let (time, timestamp) = match row.at(self.timestamp) {
            Some(Cell::Raw(raw)) if raw.starts_with('"') => {
                let text = unquote(raw).unwrap_or_default();
                let time = Ticks::parse(&text).map_err(|e| fail(&row, format!("bad Timestamp: {e}")))?;
                (time, Some(V::Cell(raw)))
            }
            Some(Cell::Owned(Value::String(s))) => {
                let time = Ticks::parse(s).map_err(|e| fail(&row, format!("bad Timestamp: {e}")))?;
                (time, Some(V::Str(Cow::Owned(s.clone()))))
            }
            Some(other) => return Err(fail(&row, format!("Timestamp is not a string: {}", other.to_value()))),
            None => match ctx.collected_at {
                Some(t) => (t, None),
                None => return Err(fail(&row, "the row has no Timestamp".into())),
            },
        };
        let uid = row_uid(table, &row, &self.columns, time);
        row.take_at(self.timestamp);
        row.take_at(self.action_type);
        let (root, metadata) = compiled.start(activity, time, action_type.as_ref());
        let mut e = Event {
            root,
            row,
            columns: &self.columns,
            copies: Vec::new(),
        };
        // The row's metadata, put in the start's `metadata` where it is.
        let m = e.root.child_at(metadata);
        match timestamp {
            Some(t) => m.insert("original_time", t),
            None => push_in(m, Cow::Borrowed("labels"), V::from("time-is-collection-time")),
        }
        m.insert("uid", V::from(uid.clone()));
        if let Some(a) = action_type {
            m.insert("event_code", V::from(a));
        }
        match e.row.take_at(self.report_id) {
            Some((_, c)) if c.is_absent() => {}
            Some((_, Cell::Raw(raw))) if raw.starts_with('"') => m.insert("original_event_uid", V::Cell(raw)),
            Some((_, Cell::Raw(raw))) if super::value::is_plain_int(raw) => m.insert("original_event_uid", V::Quoted(raw)),
            Some((_, Cell::Raw(raw))) if matches!(raw.as_bytes()[0], b'-' | b'0'..=b'9') => {
                m.insert("original_event_uid", V::from(Cell::Raw(raw).to_value().to_string()))
            }
            Some((name, cell)) => e.row.put_at(self.report_id, name, cell),
            None => {}
        }
        if let Some(t) = &ctx.tenant_uid {
            m.insert("tenant_uid", V::from(t.as_str()));
        }

        let shape = activity.shape.unwrap_or(table.shape);
        let runs = compiled
            .shapes
            .iter()
            .find(|(s, _)| std::ptr::eq(*s, shape))
            .map(|(_, runs)| runs.as_slice())
            .unwrap_or_default();
        apply(&mut e, runs);
        (shape.finish)(&mut e, ctx);
        for (path, value) in activity.sets {
            e.set(path, *value);
        }
        super::event::set_captions(&mut e);
        e.make_copies();
        // Objects left empty by the finish steps (an `actor` whose only
        // process was "none", ...) go: OCSF would reject them.
        e.root.prune_empty();
        let class_uid = e
            .get("class_uid")
            .and_then(V::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(activity.class_uid);
        // An object is there when it has what makes it one (a process
        // holding only its parent is not).
        let present = |a: &&str| match e.root.get(a) {
            Some(V::Obj(o)) => ocsf::identity(a).is_empty() || ocsf::identity(a).iter().any(|k| o.contains_key(k)),
            Some(_) => true,
            None => false,
        };
        if let Some(any) = ocsf::requires(class_uid).iter().find(|any| !any.iter().any(present)) {
            // No placeholder stands in for what the row does not say (a
            // query that projects a few columns): the row is rejected, for
            // what its own class requires.
            let error = MapError {
                table: table.name.to_string(),
                // The row's natural key, filled in by `event_row`.
                key: String::new(),
                reason: missing_object(class_uid, any, shape),
            };
            return Err((error, second_try));
        }
        super::event::set_profiles(&mut e);
        let Event { mut root, row, .. } = e;
        let compact = row.compact();
        // Each column is in one slot or once among the rest: no key repeats.
        let mut unmapped = Obj(Vec::with_capacity(16));
        for (name, cell) in row.into_rest() {
            if cell.is_absent() {
                continue;
            }
            let value = match (&*name, cell) {
                // Dynamic: JSON text is kept as the object or array it holds.
                // Text that compacting would copy unchanged is written as it is.
                (name, Cell::Raw(raw)) if raw.starts_with('"') && is_dynamic(name) => match unquote(raw) {
                    Some(text) => match crate::answer::json_container(&text) {
                        Some(true) => V::Written(text),
                        Some(false) => V::Text(text),
                        None => V::Str(text),
                    },
                    None => V::Null,
                },
                (name, Cell::Owned(v)) if is_dynamic(name) => match super::field::parse_dynamic(&v) {
                    Value::String(s) => V::Str(Cow::Owned(s)),
                    v => V::Json(Box::new(v)),
                },
                (_, Cell::Raw(raw)) if compact && raw.starts_with(['{', '[']) => V::Written(Cow::Borrowed(raw)),
                (_, Cell::Raw(raw)) => V::Cell(raw),
                (_, Cell::Text(text)) => V::Text(Cow::Owned(text)),
                (_, Cell::Written(text)) => V::Written(Cow::Owned(text)),
                (_, Cell::Owned(v)) => V::from(v),
            };
            unmapped.0.push((name, value));
        }
        if !unmapped.is_empty() {
            match root.get_mut("unmapped") {
                // A finish step may already have moved an invalid object here.
                Some(V::Obj(existing)) => {
                    for (k, v) in unmapped.0 {
                        // A column keeps its name. One named like what a
                        // step moved here (a made-up `evidence`) does not
                        // replace it: the moved object steps aside, to the
                        // first free `<name>_ocsf`, `<name>_ocsf_ocsf`, ...
                        if let Some(moved) = existing.remove(&k) {
                            let mut aside = format!("{k}_ocsf");
                            while existing.contains_key(&aside) {
                                aside.push_str("_ocsf");
                            }
                            existing.push_new(aside.into(), moved);
                        }
                        existing.push_new(k, v);
                    }
                }
                _ => root.insert("unmapped", V::Obj(unmapped)),
            }
        }
        // A finish step may change the class (an ActionType's rows of
        // another kind) and does not touch the time or uid; read all three
        // from the event as it is.
        let number = |key: &str| root.get(key).and_then(V::as_i64);
        let written = Written {
            table: table.name,
            class_uid: number("class_uid")
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(activity.class_uid),
            time_ms: number("time").unwrap_or_else(|| time.to_epoch_ms()),
            uid,
        };
        Ok((root, written))
    }

    /// The row's ActionType, as text (a cell of another type as its JSON).
    fn action_type<'a>(&self, row: &Cells<'a>) -> Option<Cow<'a, str>> {
        match row.at(self.action_type)? {
            c if c.is_absent() => None,
            Cell::Raw(raw) => match raw.starts_with('"') {
                true => unquote(raw).map(|t| match t {
                    Cow::Borrowed(_) => Cow::Borrowed(&raw[1..raw.len() - 1]),
                    Cow::Owned(o) => Cow::Owned(o),
                }),
                false => Some(Cow::Owned(Cell::Raw(raw).to_value().to_string())),
            },
            Cell::Owned(Value::String(s)) => Some(Cow::Owned(s.clone())),
            cell => Some(Cow::Owned(cell.to_value().to_string())),
        }
    }
}

impl Compiled {
    /// An event of `activity` with its fixed start ([`Fixed::new`], made
    /// the first time), and its row's time and names put in; and the place
    /// of its `metadata`, for the row's to be put in without a search.
    fn start<'a>(&self, activity: &'static Activity, time: Ticks, action_type: Option<&Cow<'a, str>>) -> (Obj<'a>, usize) {
        let mut made = self.fixed.borrow_mut();
        let at = match made.iter().position(|(a, _)| std::ptr::eq(*a, activity)) {
            Some(at) => at,
            None => {
                made.push((activity, Fixed::new(self.table, activity)));
                made.len() - 1
            }
        };
        let fixed = &made[at].1;
        let mut root = fixed.event();
        root.0[fixed.time].1 = V::from(time.to_epoch_ms());
        if let (Some(a), 99) = (action_type, activity.activity_id) {
            root.0[fixed.type_name].1 = V::from(format!("{}: {}", fixed.class_name, a));
            root.0[fixed.activity_name].1 = V::Str(a.clone());
        }
        (root, fixed.metadata)
    }
}

/// Compiles a shape's field lists into runs against `columns`. `start`
/// holds the path of every attribute an event of the table can hold before
/// its runs are applied ([`start_paths`]).
///
/// A put is fresh when no attribute can be at its path yet: none of the
/// start's, and none an earlier put of the shape sets; and when its object
/// is one the runs make, not a value an earlier put set whole (a dynamic
/// column's object has keys no list names). `metadata`, which the row's
/// own metadata goes into before the runs, holds nothing fresh.
fn compile(shape: &Shape, columns: &mut Columns, start: &HashSet<String>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut known = start.clone();
    let mut whole: HashSet<&str> = HashSet::new();
    let mut targets: HashSet<&str> = HashSet::new();
    for fields in shape.fields {
        let mut rest = *fields;
        while let Some(first) = rest.first() {
            let (parent, _) = split_last(first.to);
            let n = rest.iter().take_while(|f| split_last(f.to).0 == parent).count();
            let (group, tail) = rest.split_at(n);
            rest = tail;
            // The walk to the parent makes the objects on its way.
            known.extend(parent.into_iter().flat_map(objects_on).map(str::to_string));
            let mut puts = Vec::with_capacity(group.len());
            for f in group {
                let leaf = split_last(f.to).1;
                let in_whole = parent.into_iter().flat_map(objects_on).any(|o| whole.contains(o));
                let plain = !matches!(
                    f.conv,
                    Conv::Hash(_) | Conv::NamedItem | Conv::Item | Conv::EmailItem | Conv::Integrity
                );
                let in_metadata = parent.is_some_and(|p| p == "metadata" || p.starts_with("metadata."));
                let fresh = plain && parent.is_some() && !in_metadata && !in_whole && !known.contains(f.to);
                let second = !targets.insert(f.to) && plain;
                known.insert(f.to.to_string());
                whole.insert(f.to);
                if let (Conv::Integrity, Some(p)) = (f.conv, parent) {
                    known.insert(format!("{p}.{leaf}_id"));
                }
                puts.push(Put {
                    slot: columns.add(f.column),
                    leaf,
                    conv: f.conv,
                    fresh,
                    second,
                });
            }
            runs.push(Run {
                parent: parent.into_iter().flat_map(segments).collect(),
                puts,
            });
        }
    }
    runs
}

/// The paths of the objects from the root to the one at `path`, that one
/// included: `a`, `a.b` and `a.b.c` for `a.b.c`.
fn objects_on(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('.').map(|(i, _)| &path[..i]).chain([path])
}

/// The path of every attribute an event of `table` can hold before its
/// runs are applied: those of each activity's start ([`Fixed::new`]), at
/// every depth.
fn start_paths(table: &'static Table) -> HashSet<String> {
    fn walk(o: &Obj, under: &str, paths: &mut HashSet<String>) {
        for (key, value) in o.iter() {
            let path = if under.is_empty() {
                key.to_string()
            } else {
                format!("{under}.{key}")
            };
            if let V::Obj(inner) = value {
                walk(inner, &path, paths);
            }
            paths.insert(path);
        }
    }
    let mut paths = HashSet::new();
    for activity in table.all_activities() {
        walk(&Fixed::new(table, activity).root, "", &mut paths);
    }
    paths
}

/// Applies the runs to the event's left-over cells: converted cells are
/// taken, cells that do not convert stay (and end up under `unmapped`).
///
/// Runs under one object alternate with runs under its children (a
/// process, its file, the process again), so each walk starts from the
/// objects the walk before it went through (the path `walked`, their
/// indices `places`): the members of the objects on that path are only
/// ever added to or replaced in place by a run's puts, which go to the
/// path's last object, so those indices hold.
fn apply<'a>(e: &mut Event<'a, '_>, runs: &[Run]) {
    let mut taken: Vec<(&Put, V<'a>)> = Vec::new();
    // The cells of the puts that are `second`, by their place in `taken`.
    let mut seconds: Vec<(usize, Key<'a>, Cell<'a>)> = Vec::new();
    let mut walked: &[&'static str] = &[];
    let mut places: Vec<usize> = Vec::with_capacity(4);
    for run in runs {
        for put in &run.puts {
            let Some((name, cell)) = e.row.take_at(put.slot) else {
                continue;
            };
            if cell.is_absent() {
                continue;
            }
            match convert(&cell, put.conv) {
                Some(v) if put.second => {
                    seconds.push((taken.len(), name, cell));
                    taken.push((put, v));
                }
                Some(v) => taken.push((put, v)),
                None => e.row.put_at(put.slot, name, cell),
            }
        }
        if taken.is_empty() {
            continue;
        }
        let kept = walked.iter().zip(&run.parent).take_while(|(a, b)| a == b).count();
        walked = &run.parent;
        places.truncate(kept);
        let (mut node, row) = (&mut e.root, &mut e.row);
        for &at in &places {
            node = node.child_at(at);
        }
        for part in &run.parent[kept..] {
            let at = node.child_index(part, || Cow::Borrowed(part));
            places.push(at);
            node = node.child_at(at);
        }
        for (i, (put, v)) in taken.drain(..).enumerate() {
            if put.fresh {
                node.push_new(Cow::Borrowed(put.leaf), v);
                continue;
            }
            if put.second
                && let Some(first) = node.get(put.leaf)
                && let Some(at) = seconds.iter().position(|(j, _, _)| *j == i)
            {
                // The first source filled it; a cell that says something
                // else stays in the row, and so under `unmapped`.
                let (_, name, cell) = seconds.swap_remove(at);
                if first.to_value() != v.to_value() {
                    row.put_at(put.slot, name, cell);
                }
                continue;
            }
            put_in(node, Cow::Borrowed(put.leaf), put.conv, v);
        }
        seconds.clear();
    }
}

/// A stable id for a row: a hash of the table and its key columns' values
/// (`Timestamp` as its 100 ns ticks: the same instant may be written with 0
/// to 7 fractional digits).
fn row_uid(table: &Table, row: &Cells, columns: &Columns, time: Ticks) -> String {
    // What is hashed is gathered first and hashed at once: the hasher's
    // own buffering costs more for a few bytes at a time than the copy.
    let mut key: Vec<u8> = Vec::with_capacity(256);
    put(&mut key, table.name.as_bytes());
    for column in table.key {
        key.push(0x1f);
        let cell = columns.slot(column).and_then(|s| row.at(s)).or_else(|| row.get(columns, column));
        // Missing, null and "" are one: Graph answers carry every column
        // (`""` or null), streamed records may leave them out, and a row's
        // uid is the same whichever path brought it.
        let Some(cell) = cell.filter(|c| !c.is_absent()) else { continue };
        match cell {
            Cell::Raw(raw) if raw.starts_with('"') && *column == "Timestamp" => {
                put(&mut key, itoa::Buffer::new().format(time.0).as_bytes())
            }
            Cell::Raw(raw) if raw.starts_with('"') => put(&mut key, unquote(raw).unwrap_or_default().as_bytes()),
            Cell::Raw(raw) if super::value::is_plain_int(raw) => put(&mut key, raw.as_bytes()),
            Cell::Owned(Value::String(s)) if *column == "Timestamp" => match Ticks::parse(s) {
                Ok(t) => key.extend_from_slice(t.0.to_string().as_bytes()),
                Err(_) => key.extend_from_slice(s.as_bytes()),
            },
            Cell::Owned(Value::String(s)) => key.extend_from_slice(s.as_bytes()),
            other => key.extend_from_slice(other.to_value().to_string().as_bytes()),
        }
    }
    super::field::uid_of(Sha256::new_with_prefix(&key))
}

/// Why an event of `class_uid` cannot be made: which required object is
/// missing, and which of the shape's columns would have given it.
fn missing_object(class_uid: u32, any: &[&str], shape: &Shape) -> String {
    let columns = columns_giving(shape, any);
    let class = ocsf::class(class_uid);
    let what = any.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" or ");
    match columns.is_empty() {
        true => format!(
            "OCSF {class_uid} {} requires {what}, and this row has nothing to make it from",
            class.name
        ),
        false => format!(
            "OCSF {class_uid} {} requires {what}, and none of the columns that give it has a usable value: {}. \
             A query that projects columns must keep them",
            class.name,
            columns.join(", ")
        ),
    }
}

/// The columns of a row of `shape` that can give one of the objects `any`:
/// those its field lists put in the object itself, or in a member that
/// makes it one (or in what is in that member: `query_evidence.file.hashes`),
/// then those its finish step reads to make one ([`Shape::gives`]), each once.
pub fn columns_giving(shape: &Shape, any: &[&str]) -> Vec<&'static str> {
    let mut columns: Vec<&'static str> = Vec::new();
    for object in any {
        let keys = ocsf::identity(object);
        for f in shape.fields.iter().flat_map(|list| list.iter()) {
            let gives = match f.to.strip_prefix(object) {
                Some("") => true,
                Some(rest) => rest.strip_prefix('.').is_some_and(|rest| {
                    let member = rest.split('.').next().unwrap_or(rest);
                    keys.is_empty() || keys.contains(&member)
                }),
                None => false,
            };
            if gives && !columns.contains(&f.column) {
                columns.push(f.column);
            }
        }
    }
    for (object, reads) in shape.gives {
        if any.contains(object) {
            for column in *reads {
                if !columns.contains(column) {
                    columns.push(column);
                }
            }
        }
    }
    columns
}

fn describe_key(table: &Table, row: &Cells, columns: &Columns) -> String {
    table
        .key
        .iter()
        .map(|c| match row.get(columns, c).map(Cell::to_value) {
            Some(Value::String(s)) => format!("{c}={s}"),
            Some(v) => format!("{c}={v}"),
            None => format!("{c}=<missing>"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps one row of `table`, given as a JSON object, to an OCSF event (for
/// tests and the few callers that want the event as a value).
pub fn map_row(table: &'static Table, row: crate::answer::Row, ctx: &Context) -> Result<Value, MapError> {
    let text = serde_json::to_string(&row).unwrap_or_default();
    let plan = Plan::new(&[table], []);
    let mut out = Vec::new();
    plan.write_row(text.as_str(), ctx, &mut out, |_, _| None)?;
    Ok(serde_json::from_slice(&out).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::field::{Conv::*, Field, f};
    use serde_json::json;

    const FIELDS: &[Field] = &[
        f("Local", "src.ip", Ip),
        f("Port", "src.port", Port),
        f("Md5", "src.file.hashes", Hash(1)),
        f("Level", "src.file.integrity", Integrity),
        f("Name", "name", Str),
    ];

    fn nothing(_: &mut Event, _: &Context) {}

    static SHAPE: Shape = Shape {
        fields: &[FIELDS],
        finish: nothing,
        gives: &[],
    };

    /// The event's tree and the cells left, after the runs of `SHAPE`.
    fn applied(text: &str) -> (Value, Vec<String>) {
        let mut columns = Columns::default();
        let runs = compile(&SHAPE, &mut columns, &HashSet::new());
        let mut e = Event::new(Cells::read(text, &columns).unwrap(), &columns);
        apply(&mut e, &runs);
        let left = e.row.iter().filter(|(_, c)| !c.is_absent()).map(|(k, _)| k.to_string()).collect();
        (V::Obj(e.root).to_value(), left)
    }

    #[test]
    fn a_run_of_fields_makes_its_parent_only_when_a_cell_converts() {
        // Nothing converts: no `src` at all, and the cells that did not
        // convert stay for `unmapped`; absent ones are dropped.
        let (event, left) = applied(r#"{"Local": "not an ip", "Port": 70000, "Md5": "", "Level": null}"#);
        assert_eq!(event, json!({}));
        assert_eq!(left, ["Local", "Port"]);

        // A later cell of a run converts although an earlier one does not;
        // each run lands in its own parent.
        let (event, left) = applied(r#"{"Local": "x", "Port": "443", "Md5": "ab", "Level": "High", "Name": "n"}"#);
        assert_eq!(
            event,
            json!({"src": {"port": 443, "file": {"hashes": [{"algorithm_id": 1, "algorithm": "MD5", "value": "ab"}], "integrity": "High", "integrity_id": 4}}, "name": "n"})
        );
        assert_eq!(left, ["Local"]);
    }

    /// Parents that alternate, nest, repeat after others, and a leaf that a
    /// later run walks through (a value an object then takes the place of).
    const TANGLED: &[Field] = &[
        f("A", "p.q.a", Str),
        f("B", "p.b", Str),
        f("C", "p.q.c", Str),
        f("D", "p.q.r.d", Str),
        f("E", "p.q", Str),
        f("F", "p.q.f", Str),
        f("G", "s.g", Str),
        f("H", "p.h", Str),
        f("I", "p.q.r.i", Str),
        f("J", "j", Str),
        f("K", "p.q.k", Str),
    ];

    static TANGLED_SHAPE: Shape = Shape {
        fields: &[TANGLED],
        finish: nothing,
        gives: &[],
    };

    proptest::proptest! {
        /// Whichever runs put something, each walk that starts from the
        /// objects of the walk before it makes the tree that walking every
        /// field's path from the root, in order, makes.
        #[test]
        fn runs_walk_from_where_the_walk_before_them_went(present in proptest::collection::vec(proptest::bool::ANY, TANGLED.len())) {
            let cells: Vec<String> = TANGLED
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|(field, _)| format!(r#""{0}": "{0}""#, field.column))
                .collect();
            let text = format!("{{{}}}", cells.join(","));
            let mut columns = Columns::default();
            let runs = compile(&TANGLED_SHAPE, &mut columns, &HashSet::new());
            let mut e = Event::new(Cells::read(&text, &columns).unwrap(), &columns);
            apply(&mut e, &runs);
            let mut expected = Event::new(Cells::empty(), &columns);
            for (field, _) in TANGLED.iter().zip(&present).filter(|(_, p)| **p) {
                expected.set_owned(field.to, field.column);
            }
            let written = |o: &Obj| {
                let mut out = Vec::new();
                o.write(&mut out);
                String::from_utf8(out).unwrap()
            };
            // Written alike, too: no key twice where a put was fresh.
            proptest::prop_assert_eq!(written(&e.root), written(&expected.root), "{}", text);
            proptest::prop_assert_eq!(V::Obj(e.root).to_value(), V::Obj(expected.root).to_value(), "{}", text);
        }
    }

    /// A field for each reason a put is not fresh, and two that are.
    const FRESHNESS: &[Field] = &[
        f("A", "metadata.product.x", Str),
        f("B", "connection_info.direction_id", Str),
        f("C", "d.e", Json),
        f("D", "d.e.f", Str),
        f("E", "g.h", Str),
        f("F", "g.h", Str),
        f("G", "g", Str),
        f("H", "k.i", Hash(1)),
        f("I", "top", Str),
    ];

    static FRESHNESS_SHAPE: Shape = Shape {
        fields: &[FRESHNESS],
        finish: nothing,
        gives: &[],
    };

    #[test]
    fn a_put_is_fresh_only_where_nothing_can_be_yet() {
        let start: HashSet<String> = ["metadata", "metadata.product", "connection_info", "connection_info.direction_id"]
            .map(String::from)
            .into();
        let runs = compile(&FRESHNESS_SHAPE, &mut Columns::default(), &start);
        let fresh: Vec<(&str, bool)> = runs.iter().flat_map(|r| &r.puts).map(|p| (p.leaf, p.fresh)).collect();
        assert_eq!(
            fresh,
            [
                ("x", false),            // under metadata, which the row fills first
                ("direction_id", false), // in the start
                ("e", true),
                ("f", false), // in an object set whole (a dynamic column's)
                ("h", true),
                ("h", false),   // put before
                ("g", false),   // an object a walk made
                ("i", false),   // appended to a list, not set
                ("top", false), // a key of the root, which the start fills
            ]
        );
    }

    #[test]
    fn a_fresh_put_finds_no_attribute_at_its_path() {
        // For every table, each of its activities' starts, the row's own
        // metadata as Plan::map puts it, and then every put of the
        // activity's shape (a row with every column): a put marked fresh
        // finds its key absent. Each put's value is an object, so that a
        // later walk through its path finds an object already there.
        let mut fresh = 0;
        for &table in crate::mapping::TABLES {
            let plan = Plan::new(&[table], []);
            let compiled = &plan.tables[0];
            for activity in table.all_activities() {
                let shape = activity.shape.unwrap_or(table.shape);
                let (_, runs) = compiled.shapes.iter().find(|(s, _)| std::ptr::eq(*s, shape)).unwrap();
                let mut root = Fixed::new(table, activity).root;
                let metadata = root.child("metadata", || Cow::Borrowed("metadata"));
                for key in ["original_time", "labels", "uid", "event_code", "original_event_uid", "tenant_uid"] {
                    metadata.insert(key, V::Null);
                }
                for run in runs {
                    let mut node = &mut root;
                    for part in &run.parent {
                        node = node.child(part, || Cow::Borrowed(part));
                    }
                    for put in &run.puts {
                        if put.fresh {
                            fresh += 1;
                            assert!(!node.contains_key(put.leaf), "{}: {} {:?}", table.name, put.leaf, run.parent);
                        }
                        let mut inner = Obj::new();
                        inner.insert("x", V::Null);
                        put_in(node, Cow::Borrowed(put.leaf), put.conv, V::Obj(inner));
                    }
                }
            }
        }
        // Most puts are fresh: the test checks something.
        assert!(fresh > 1000, "{fresh}");
    }

    proptest::proptest! {
        /// Each cell under `unmapped` is written as a cell is written
        /// ([`V::write`] of [`V::Cell`]: compacted, or through serde_json),
        /// whether or not the answer's scan found its row compact (and the
        /// row's cells are then copied as they came).
        #[test]
        fn cells_of_a_compact_row_are_written_as_compacting_writes_them(x in super::super::value::json_text(), y in super::super::value::json_text()) {
            let table = crate::mapping::table("DeviceInfo").unwrap();
            let row = format!(r#"{{"Timestamp":"2024-09-10T03:59:59Z","DeviceId":"d1","DeviceName":"d","ReportId":1,"X":{x},"Y":{y}}}"#);
            let body = format!(r#"{{"schema":[],"results":[{row}]}}"#);
            let answer = crate::answer::parse_response(body.as_bytes()).unwrap();
            let plan = Plan::new(&[table], []);
            for text in [answer.row_text(0), RowText::from(answer.raw(0))] {
                let mut out = Vec::new();
                plan.write_row(text, &Context::default(), &mut out, |_, _| None).unwrap();
                let out = String::from_utf8(out).unwrap();
                // A null cell is absent: it is not kept.
                for (name, cell) in [("X", &x), ("Y", &y)].into_iter().filter(|(_, c)| *c != "null") {
                    let mut expected = format!(r#""{name}":"#).into_bytes();
                    V::Cell(cell).write(&mut expected);
                    let expected = String::from_utf8(expected).unwrap();
                    proptest::prop_assert!(out.contains(&expected), "{} in {}", expected, out);
                }
            }
        }
    }

    #[test]
    fn the_fixed_start_leaves_the_rows_attributes_to_the_row() {
        // What an activity sets is fixed; what a row fills in of the start
        // (its time, the names of 99 Other, its metadata) no activity sets.
        for table in crate::mapping::TABLES {
            for activity in table.all_activities() {
                for (path, _) in activity.sets {
                    let row_s = matches!(*path, "time" | "type_name" | "activity_name") || path.starts_with("metadata");
                    assert!(!row_s, "{}: an activity sets {path}", table.name);
                }
            }
        }
        // 99 Other is named by the row's ActionType, and by the schema
        // without one; each row's time is its own, in a start made once.
        let table = crate::mapping::table("DeviceEvents").unwrap();
        let plan = Plan::new(&[table], []);
        let row = |time: &str, action: &str| {
            format!(
                r#"{{"Timestamp":"{time}","DeviceId":"d1","DeviceName":"d","ReportId":1,{action}"InitiatingProcessId":4,"InitiatingProcessFileName":"a.exe"}}"#
            )
        };
        let mut names = Vec::new();
        for text in [
            row("2024-09-10T03:59:59Z", r#""ActionType":"SomethingNew","#),
            row("2024-09-10T04:00:00Z", r#""ActionType":"AnotherNew","#),
            row("2024-09-10T04:00:01Z", ""),
        ] {
            let mut out = Vec::new();
            plan.write_row(text.as_str(), &Context::default(), &mut out, |_, _| None).unwrap();
            let e: Value = serde_json::from_slice(&out).unwrap();
            names.push((
                e["time"].clone(),
                e["activity_id"].clone(),
                e["activity_name"].clone(),
                e["type_name"].clone(),
            ));
        }
        assert_eq!(
            names,
            [
                (
                    json!(1725940799000i64),
                    json!(99),
                    json!("SomethingNew"),
                    json!("Process Activity: SomethingNew")
                ),
                (
                    json!(1725940800000i64),
                    json!(99),
                    json!("AnotherNew"),
                    json!("Process Activity: AnotherNew")
                ),
                (json!(1725940801000i64), json!(99), json!("Other"), json!("Process Activity: Other")),
            ]
        );
    }

    /// Every start's strings are settled (none is searched for escapes as
    /// it is written), and it writes as its value.
    #[test]
    fn every_start_holds_its_strings_settled() {
        fn unsettled(o: &Obj, under: &str, found: &mut Vec<String>) {
            for (k, v) in o.iter() {
                match v {
                    V::Obj(inner) => unsettled(inner, &format!("{under}{k}."), found),
                    V::Str(_) => found.push(format!("{under}{k}")),
                    _ => {}
                }
            }
        }
        for table in crate::mapping::TABLES {
            for activity in table.all_activities() {
                let fixed = Fixed::new(table, activity);
                let mut found = Vec::new();
                unsettled(&fixed.root, "", &mut found);
                assert!(found.is_empty(), "{}: {found:?}", table.name);
                let mut out = Vec::new();
                fixed.root.write(&mut out);
                let written: Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(written, V::Obj(fixed.event()).to_value(), "{}", table.name);
                let class = ocsf::class(activity.class_uid);
                assert_eq!(
                    written["type_name"],
                    format!("{}: {}", class.name, class.activity_name(activity.activity_id))
                );
            }
        }
    }

    #[test]
    fn a_cell_serde_json_cannot_read_is_kept_under_unmapped_as_its_text() {
        let table = crate::mapping::table("DeviceProcessEvents").unwrap();
        let plan = Plan::new(&[table], []);
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for cell in [deep.as_str(), r#"{"a": [1e400]}"#] {
            let text = format!(
                r#"{{"Timestamp":"2024-09-10T03:59:59.29Z","DeviceName":"d","ActionType":"ProcessCreated","ReportId":7,"FileName":"a.exe","ProcessId":4,"New":{cell}}}"#
            );
            let mut out = Vec::new();
            plan.write_row(text.as_str(), &Context::default(), &mut out, |_, _| None).unwrap();
            let event: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(event["unmapped"]["New"], json!(cell), "{}", String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn a_column_named_like_a_moved_object_keeps_its_name_and_the_object() {
        // A file evidence without a name moves to `unmapped.evidence`; the
        // row also has columns named `evidence` and `evidence_ocsf`.
        let table = crate::mapping::table("AlertEvidence").unwrap();
        let plan = Plan::new(&[table], []);
        let text = r#"{"Timestamp":"2024-09-10T03:59:59.29Z","AlertId":"da1","EntityType":"File","SHA1":"01","evidence":"made up","evidence_ocsf":{"a":1}}"#;
        let mut out = Vec::new();
        plan.write_row(text, &Context::default(), &mut out, |_, _| None).unwrap();
        let event: Value = serde_json::from_slice(&out).unwrap();
        let unmapped = &event["unmapped"];
        assert_eq!(unmapped["evidence"], "made up", "{event}");
        assert_eq!(unmapped["evidence_ocsf"], json!({"a": 1}), "{event}");
        assert_eq!(unmapped["evidence_ocsf_ocsf"]["file"]["hashes"][0]["value"], "01", "{event}");
    }

    #[test]
    fn cells_convert_as_their_values_do() {
        let conv = |raw: &str, conv: Conv| convert(&Cell::Raw(raw), conv).map(|v| v.to_value());
        assert_eq!(conv("\"42\"", Int), Some(json!(42)));
        assert_eq!(conv("18984951960", Int), Some(json!(18984951960u64)));
        assert_eq!(conv("18446744073709551615", Int), Some(json!(18446744073709551615u64)));
        assert_eq!(conv("-0", Int), None, "serde_json reads -0 as a float");
        assert_eq!(conv("\"x\"", Int), None);
        assert_eq!(conv("\"1\"", Bool), Some(json!(true)));
        assert_eq!(conv("0", Bool), Some(json!(false)));
        assert_eq!(conv("\"TRUE\"", Bool), Some(json!(true)));
        assert_eq!(conv("\"2024-09-10T03:59:59.29Z\"", Time), Some(json!(1725940799290i64)));
        assert_eq!(conv("\"{\\\"a\\\":1}\"", Json), Some(json!({"a": 1})));
        assert_eq!(conv("{\"a\": 1}", Json), Some(json!({"a": 1})));
        assert_eq!(conv("\"not json\"", Json), Some(json!("not json")));
        assert_eq!(conv("\" 10.0.0.1 \"", Ip), Some(json!("10.0.0.1")));
        assert_eq!(conv("1.5", Str), Some(json!("1.5")));
        assert_eq!(conv("true", Str), Some(json!("true")));
        assert_eq!(conv("\"user@localhost\"", Email), None);
        assert_eq!(conv("65536", Port), None);
    }

    #[test]
    fn a_row_rejected_for_what_it_lacks_is_named_by_its_natural_key() {
        // A projection without the device's columns, as in Microsoft's
        // examples: the user finds the row by the key the message gives.
        let row = json!({
            "Timestamp": "2024-09-10T03:59:59Z",
            "ReportId": 42,
            "ActionType": "ProcessCreated",
            "FileName": "a.exe",
            "ProcessId": 7,
        });
        let error = map_row(
            &crate::mapping::device::DEVICE_PROCESS_EVENTS,
            serde_json::from_value(row).unwrap(),
            &Context::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.key, "DeviceId=<missing>, Timestamp=2024-09-10T03:59:59Z, ReportId=42, ActionType=ProcessCreated",
            "{error}"
        );
        assert!(error.reason.contains("requires `device`"), "{error}");
    }
}
