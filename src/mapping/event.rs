//! An OCSF event under construction: its tree of values ([`Obj`]), addressed
//! by dotted paths, and the row's cells that the mapping has not taken
//! ([`Cells`]), which are what lands under `unmapped`.

use super::captions;
use super::cells::{Cells, Columns};
use super::conv::{convert, put_in};
use super::field::{self, Conv};
use super::ocsf;
use super::value::{Cell, Obj, V, key_of, push_in, same, segments, split_last, unquote};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::OnceLock;

/// An event under construction: the OCSF object, addressed by dotted
/// paths, and the row's cells that the mapping has not taken. A finish step
/// may take cells from the row; what is left lands under `unmapped`.
#[derive(Debug)]
pub struct Event<'a, 'c> {
    pub root: Obj<'a>,
    pub row: Cells<'a>,
    /// The answer's columns, to find a cell by name.
    pub columns: &'c Columns,
    /// Copies to make once the event is complete ([`Event::copy_when_complete`]).
    pub copies: Vec<(&'static str, &'static str)>,
}

impl<'a, 'c> Event<'a, 'c> {
    pub fn new(row: Cells<'a>, columns: &'c Columns) -> Self {
        Event {
            root: Obj(Vec::with_capacity(32)),
            row,
            columns,
            copies: Vec::new(),
        }
    }

    /// The event as a `serde_json` value (its left-over cells aside).
    pub fn into_value(self) -> Value {
        Value::Object(self.root.to_map())
    }

    /// Sets the attribute at `path`, creating the objects on the way (and
    /// replacing a value in the way by an object).
    pub fn set(&mut self, path: &'static str, value: impl Into<V<'a>>) {
        let (parent, leaf) = split_last(path);
        self.object_at_static(parent).insert(leaf, value.into());
    }

    /// As [`Event::set`], for a path made at run time.
    pub fn set_owned(&mut self, path: &str, value: impl Into<V<'a>>) {
        let (parent, leaf) = split_last(path);
        let leaf = key_of(leaf);
        self.object_at(parent).insert(leaf, value.into());
    }

    /// The object at `path` (the root for `None`), made with the objects on the way.
    pub fn object_at(&mut self, path: Option<&str>) -> &mut Obj<'a> {
        let mut node = &mut self.root;
        for part in path.into_iter().flat_map(segments) {
            node = node.child(part, || key_of(part));
        }
        node
    }

    /// The object at a static `path`, made with the objects on the way;
    /// its keys are borrowed from the path.
    pub fn object_at_static(&mut self, path: Option<&'static str>) -> &mut Obj<'a> {
        let mut node = &mut self.root;
        for part in path.into_iter().flat_map(segments) {
            node = node.child(part, || Cow::Borrowed(part));
        }
        node
    }

    /// The attribute at `path`, if set.
    pub fn get(&self, path: &str) -> Option<&V<'a>> {
        self.root.at(path)
    }

    /// The attribute at `path`, if set, to change it.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut V<'a>> {
        self.root.at_mut(path)
    }

    /// The text of the string attribute at `path`, if set.
    pub fn get_str(&self, path: &str) -> Option<Cow<'_, str>> {
        self.get(path).and_then(V::as_str)
    }

    /// Removes the attribute at `path`.
    pub fn remove(&mut self, path: &str) -> Option<V<'a>> {
        let (holder, leaf) = self.holder_mut(path)?;
        holder.remove(leaf)
    }

    /// The object that holds the attribute at `path` (the root for a key of
    /// the root), and the attribute's key in it; `None` when no object is
    /// there to hold it.
    pub fn holder_mut<'p>(&mut self, path: &'p str) -> Option<(&mut Obj<'a>, &'p str)> {
        let (parent, leaf) = split_last(path);
        match parent {
            None => Some((&mut self.root, leaf)),
            Some(p) => Some((self.get_mut(p)?.as_obj_mut()?, leaf)),
        }
    }

    /// Appends to the array at `path`, creating it (and replacing a value
    /// that is not an array).
    pub fn push(&mut self, path: &'static str, value: impl Into<V<'a>>) {
        let (parent, leaf) = split_last(path);
        push_in(self.object_at_static(parent), Cow::Borrowed(leaf), value.into());
    }

    /// Copies the attribute at `from` to `to`, if `from` is set.
    pub fn copy(&mut self, from: &str, to: &str) {
        if let Some(v) = self.get(from).cloned() {
            self.set_owned(to, v);
        }
    }

    /// [`Event::copy`], made once the event is complete (its captions set,
    /// before empty objects are pruned: [`Event::make_copies`]). An object
    /// is copied as its JSON text, written once, where a copy of its tree
    /// would allocate every object and string in it again; the event is
    /// written the same. The copy cannot be read member by member, so this
    /// is for a large object that no step reads at `to` (a process copied
    /// whole to be its child's parent).
    pub fn copy_when_complete(&mut self, from: &'static str, to: &'static str) {
        self.copies.push((from, to));
    }

    /// Makes the copies [`Event::copy_when_complete`] asked for. An object
    /// is pruned of empty objects first, as the whole event is next, and an
    /// object left empty is not copied, as pruning would remove its copy.
    ///
    /// A nested object copied is then held as the same text where it is, so
    /// that it is not written a second time from its tree: once the copies
    /// are made, nothing reads an object below the root member by member
    /// (the checks that follow look at the root's keys), and text written
    /// in place is what its tree would write there, pruned as it already is.
    pub fn make_copies(&mut self) {
        for (from, to) in std::mem::take(&mut self.copies) {
            let Some(slot) = self.root.at_mut(from) else {
                continue;
            };
            let copy = match slot {
                V::Obj(object) => {
                    object.prune_empty();
                    if object.is_empty() {
                        continue;
                    }
                    let mut text = Vec::with_capacity(1024);
                    object.write(&mut text);
                    // The writer writes text only; were it ever not, the
                    // tree is copied instead.
                    match String::from_utf8(text) {
                        Ok(text) if from.contains('.') => {
                            *slot = V::Written(Cow::Owned(text.clone()));
                            V::Written(Cow::Owned(text))
                        }
                        Ok(text) => V::Written(Cow::Owned(text)),
                        Err(_) => V::Obj(object.clone()),
                    }
                }
                other => other.clone(),
            };
            self.set(to, copy);
        }
    }

    /// Sets `path` unless it is already set.
    pub fn set_default(&mut self, path: &'static str, value: impl Into<V<'a>>) {
        if self.get(path).is_none() {
            self.set(path, value);
        }
    }

    /// Changes the class and activity after the fact (when a column, not
    /// the ActionType, decides them, or the row lacks what its class
    /// requires), keeping class, category and activity ids, names and
    /// `type_uid` in step. Activity 99 is named by the ActionType
    /// (`metadata.event_code`), as the table's fallback is.
    pub fn set_class(&mut self, class_uid: u32, activity_id: u32) {
        let class = ocsf::class(class_uid);
        self.set("class_uid", class_uid);
        self.set("class_name", class.name);
        self.set("category_uid", class.category_uid);
        self.set("category_name", ocsf::category_name(class.category_uid));
        self.set_activity(activity_id);
        if activity_id == 99
            && let Some(action) = self.get_str("metadata.event_code").map(|s| s.into_owned())
        {
            self.set("type_name", format!("{}: {action}", class.name));
            self.set("activity_name", action);
        }
    }

    /// Changes the activity after the fact (when a column, not the
    /// ActionType, decides it), keeping ids, names and `type_uid` in step.
    pub fn set_activity(&mut self, activity_id: u32) {
        let class_uid = self.get("class_uid").and_then(V::as_u64).unwrap_or(0) as u32;
        let class = ocsf::class(class_uid);
        let name = class.activity_name(activity_id);
        self.set("activity_id", activity_id);
        self.set("activity_name", name);
        self.set("type_uid", u64::from(class_uid) * 100 + u64::from(activity_id));
        self.set("type_name", ocsf::type_name(class, activity_id));
    }

    /// Takes a left-over column, if present and not absent, as a value.
    pub fn take_column(&mut self, column: &str) -> Option<Value> {
        let (_, cell) = self.row.take(self.columns, column)?;
        (!cell.is_absent()).then(|| cell.to_value())
    }

    /// Takes a left-over column whose cell is a string, as its text. A cell
    /// of another type stays, to land under `unmapped`: a step that reads
    /// text must not drop what is not text.
    pub fn take_string(&mut self, column: &str) -> Option<String> {
        let (name, cell) = self.row.take(self.columns, column)?;
        match cell.to_value() {
            _ if cell.is_absent() => None,
            Value::String(s) => Some(s),
            _ => {
                self.row.put(self.columns, name, cell);
                None
            }
        }
    }

    /// Takes a left-over column as text, as `Conv::Str` converts it (a
    /// string, a number or a boolean); a cell of another type stays.
    pub fn take_text(&mut self, column: &str) -> Option<String> {
        let text = self.column_text(column)?.into_owned();
        self.drop_column(column);
        Some(text).filter(|t| !t.is_empty())
    }

    /// Takes a left-over column that a finish step has mapped, leaving it
    /// out of `unmapped`; unlike [`Event::take_column`], its cell is not
    /// read into a value.
    pub fn drop_column(&mut self, column: &str) {
        self.row.take(self.columns, column);
    }

    /// A left-over column as text, as `Conv::Str` converts it (a string's
    /// text; a number's or a boolean's JSON text), without taking it. A
    /// string of the answer without escapes is borrowed, not copied.
    pub fn column_text(&self, column: &str) -> Option<Cow<'a, str>> {
        match self.row.get(self.columns, column)? {
            Cell::Raw(raw) if raw.starts_with('"') => unquote(raw),
            other => match field::convert(&other.to_value(), Conv::Str)? {
                Value::String(s) => Some(Cow::Owned(s)),
                _ => None,
            },
        }
    }

    /// A left-over column, as a value, converted, without taking it.
    pub fn column(&self, column: &str, conv: field::Conv) -> Option<Value> {
        field::convert(&self.row.get(self.columns, column)?.to_value(), conv)
    }

    /// Takes a left-over column if it converts, and puts it at `path`.
    /// Returns whether it was taken.
    pub fn map_column(&mut self, column: &str, path: &str, conv: Conv) -> bool {
        let Some((name, cell)) = self.row.take(self.columns, column) else {
            return false;
        };
        if cell.is_absent() {
            return false;
        }
        match convert(&cell, conv) {
            Some(v) => {
                let (parent, leaf) = split_last(path);
                let node = self.object_at(parent);
                put_in(node, key_of(leaf), conv, v);
                true
            }
            None => {
                self.row.put(self.columns, name, cell);
                false
            }
        }
    }

    /// Puts a value back as column `column` (what is left of a dynamic
    /// column once some of its keys are mapped).
    pub fn put_column(&mut self, column: &str, value: Value) {
        self.row.put(self.columns, Cow::Owned(column.to_string()), Cell::Owned(value));
    }

    /// The parsed `AdditionalFields` object (JSON text or value), if any.
    pub fn additional_fields(&self) -> Option<serde_json::Map<String, Value>> {
        match self.row.get(self.columns, "AdditionalFields").map(Cell::dynamic) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        }
    }
}

/// The number (0 to 63) of a key of the event's root: six bits of a hash
/// of its length and first and last bytes.
fn key_hash(key: &str) -> usize {
    let b = key.as_bytes();
    let (first, last) = (b.first().copied().unwrap_or(0), b.last().copied().unwrap_or(0));
    let h = (b.len() as u64) ^ (u64::from(first) << 8) ^ (u64::from(last) << 16);
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

/// For each key number ([`key_hash`]), the profiles' attributes that have
/// it, each with its profile's place in `ocsf::PROFILES`.
fn profile_index() -> &'static [Vec<(&'static str, usize)>; 64] {
    static INDEX: OnceLock<[Vec<(&'static str, usize)>; 64]> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut by_hash: [Vec<(&'static str, usize)>; 64] = std::array::from_fn(|_| Vec::new());
        for (profile, (_, attrs)) in ocsf::PROFILES.iter().enumerate() {
            for attr in *attrs {
                by_hash[key_hash(attr)].push((attr, profile));
            }
        }
        by_hash
    })
}

/// Sets `metadata.profiles` to the profiles whose attributes the event
/// fills, in the order of `ocsf::PROFILES`. The root is read once: each of
/// its keys is looked up among the profiles' attributes by its number
/// ([`key_hash`]).
pub fn set_profiles(e: &mut Event) {
    let index = profile_index();
    // The profiles found, as bits (PROFILES holds fewer than 64, a test checks).
    let mut used: u64 = 0;
    for (key, _) in e.root.iter() {
        for &(attr, profile) in &index[key_hash(key)] {
            if same(attr, key) {
                used |= 1 << profile;
            }
        }
    }
    if used != 0 {
        let mut names = Vec::with_capacity(used.count_ones() as usize);
        while used != 0 {
            names.push(V::from(ocsf::PROFILES[used.trailing_zeros() as usize].0));
            used &= used - 1;
        }
        e.set("metadata.profiles", V::Arr(names));
    }
}

/// A caption entry's paths, split once: the id's first segment (a key of
/// the root), the objects between, and the id's and the caption's keys in
/// the object that holds the id (a caption is the id's sibling).
struct CaptionAt {
    first: &'static str,
    /// Whether the id is a key of the root itself (its path has one segment).
    in_root: bool,
    between: Vec<&'static str>,
    id: &'static str,
    caption: &'static str,
    /// Each id's caption, as it is set: settled, like the fixed start's
    /// strings (`plan::settle`), where JSON writes it as it is.
    names: Vec<(i64, V<'static>)>,
}

/// The caption entries split ([`CaptionAt`]), and for each key number
/// ([`key_hash`]) the entries whose first segment has it.
struct CaptionIndex {
    entries: Vec<CaptionAt>,
    by_hash: [Vec<usize>; 64],
}

fn caption_index() -> &'static CaptionIndex {
    static INDEX: OnceLock<CaptionIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let entries: Vec<CaptionAt> = (captions::CAPTIONS.iter())
            .map(|&(id_path, caption_path, names)| {
                let mut parts: Vec<&'static str> = segments(id_path).collect();
                let id = parts.pop().unwrap_or(id_path);
                let (first, between) = match parts.split_first() {
                    Some((first, between)) => (*first, between.to_vec()),
                    None => (id, Vec::new()),
                };
                CaptionAt {
                    first,
                    in_root: parts.is_empty(),
                    between,
                    id,
                    caption: split_last(caption_path).1,
                    names: names.iter().map(|&(id, name)| (id, settled(name))).collect(),
                }
            })
            .collect();
        let mut by_hash: [Vec<usize>; 64] = std::array::from_fn(|_| Vec::new());
        for (i, entry) in entries.iter().enumerate() {
            by_hash[key_hash(entry.first)].push(i);
        }
        CaptionIndex { entries, by_hash }
    })
}

/// The mapping's own string `text` as a value: its own escaped text
/// ([`V::Quoted`]), written without being searched for escapes, where JSON
/// writes it as it is (no quote, backslash or control character).
pub fn settled(text: &'static str) -> V<'static> {
    match crate::bytes::string_special(text.as_bytes()) {
        None => V::Quoted(text),
        Some(_) => V::from(text),
    }
}

/// Sets caption attributes from their ids: the schema's caption, whatever
/// a mapping wrote from the source ("Ntlm" becomes "NTLM"), except for 99
/// Other, whose caption is the source's own word ("Other" when none).
///
/// The root is read once: each of its keys is looked up among the ids'
/// first segments by its number (`key_hash`), and only the entries found
/// there are followed, in the order of `CAPTIONS`.
pub fn set_captions(e: &mut Event) {
    let index = caption_index();
    // The entries found (as bits: CAPTIONS holds fewer than 64, a test
    // checks), and the place in the root of each one's first segment.
    let mut found: u64 = 0;
    let mut places = [0usize; 64];
    for (place, (key, _)) in e.root.0.iter().enumerate() {
        for &i in &index.by_hash[key_hash(key)] {
            // The first of equal keys, as a lookup by key finds.
            if found & (1 << i) == 0 && same(index.entries[i].first, key) {
                found |= 1 << i;
                places[i] = place;
            }
        }
    }
    while found != 0 {
        let i = found.trailing_zeros() as usize;
        found &= found - 1;
        let entry = &index.entries[i];
        let holder: Option<&mut Obj<'_>> = match entry.in_root {
            true => Some(&mut e.root),
            false => {
                let mut node = e.root.0[places[i]].1.as_obj_mut();
                for part in &entry.between {
                    node = node.and_then(|o| o.get_mut(part)).and_then(V::as_obj_mut);
                }
                node
            }
        };
        let Some(holder) = holder else { continue };
        let Some(id) = holder.get(entry.id).and_then(V::as_i64) else {
            continue;
        };
        if let Some((_, name)) = entry.names.iter().find(|(i, _)| *i == id)
            && (id != 99 || !holder.contains_key(entry.caption))
        {
            holder.insert(entry.caption, name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `set_captions` keeps the entries it finds as bits of a `u64`, and puts
    /// a caption beside its id.
    #[test]
    fn captions_fit_the_index() {
        assert!(captions::CAPTIONS.len() <= 64);
        assert!(ocsf::PROFILES.len() <= 64, "set_profiles keeps the profiles found as bits");
        for (id_path, caption_path, _) in captions::CAPTIONS {
            assert_eq!(split_last(id_path).0, split_last(caption_path).0, "{id_path}");
        }
    }

    /// Each `_id` gets its caption, and the event its profiles, whatever
    /// else the root holds: the bits that skip absent attributes skip no
    /// present one.
    #[test]
    fn every_caption_and_profile_is_set_among_many_attributes() {
        let columns = Columns::default();
        for (i, (id_path, caption_path, names)) in captions::CAPTIONS.iter().enumerate() {
            let (id, name) = names.iter().find(|(id, _)| *id != 99).copied().unwrap_or(names[0]);
            // The other entries' attributes and profiles' attributes as noise,
            // set before it.
            let mut e = Event::new(Cells::empty(), &columns);
            for (other, _, _) in captions::CAPTIONS.iter().skip(i + 1) {
                e.set_owned(&format!("x{other}"), 1);
            }
            for (j, (_, attrs)) in ocsf::PROFILES.iter().enumerate() {
                if j % 2 == i % 2 {
                    e.set_owned(attrs[attrs.len() - 1], 1);
                }
            }
            e.set_owned(id_path, id);
            set_captions(&mut e);
            assert_eq!(e.get_str(caption_path).as_deref(), Some(name), "{id_path} = {id}");
            // A profile is used when any of its attributes is set, the
            // noise set above among them.
            let held: Vec<&str> = ocsf::PROFILES
                .iter()
                .filter(|(_, attrs)| attrs.iter().any(|a| e.root.iter().any(|(k, _)| k == *a)))
                .map(|(name, _)| *name)
                .collect();
            assert!(
                ocsf::PROFILES
                    .iter()
                    .enumerate()
                    .all(|(j, (p, _))| j % 2 != i % 2 || held.contains(p))
            );
            set_profiles(&mut e);
            let profiles = e.get("metadata.profiles").map(V::to_value).unwrap_or_default();
            assert_eq!(profiles, serde_json::json!(held), "{id_path}");
        }
    }

    /// A copy made once the event is complete writes as a copy of its tree
    /// made at that point would, after pruning: its captions in, its empty
    /// objects out, an object left empty not copied at all, and a value
    /// that is not an object copied as it is.
    #[test]
    fn a_copy_made_when_complete_writes_as_a_copy_of_the_tree() {
        let columns = Columns::default();
        let build = || {
            let mut e = Event::new(Cells::empty(), &columns);
            e.set("actor.process.pid", 7);
            e.set("actor.process.name", "a \"quoted\" name\\é");
            e.set("actor.process.integrity_id", 3);
            e.set("actor.process.file.name", "x.exe");
            e.set_owned("actor.process.empty.inside", V::Obj(Obj::new()));
            e.set("actor.user.name", "u");
            e.set_owned("actor.session.nothing", V::Obj(Obj::new()));
            e.set("process.pid", 8);
            e
        };
        let written = |mut e: Event| {
            e.root.prune_empty();
            let mut out = Vec::new();
            e.root.write(&mut out);
            String::from_utf8(out).unwrap()
        };
        let mut late = build();
        late.copy_when_complete("actor.process", "process.parent_process");
        late.copy_when_complete("actor.session", "process.session");
        late.copy_when_complete("actor.user.name", "process.user.name");
        late.copy_when_complete("actor.absent", "process.absent");
        set_captions(&mut late);
        late.make_copies();
        assert!(matches!(late.get("process.parent_process"), Some(V::Written(_))), "copied as text");
        assert!(matches!(late.get("actor.process"), Some(V::Written(_))), "held as the same text");

        let mut eager = build();
        set_captions(&mut eager);
        eager.copy("actor.process", "process.parent_process");
        eager.copy("actor.user.name", "process.user.name");
        let expected = written(eager);
        assert!(
            expected.contains(r#""parent_process":{"pid":7,"#) && !expected.contains("empty"),
            "{expected}"
        );
        assert!(!expected.contains("session"), "{expected}");
        assert_eq!(written(late), expected);

        // An object of the root copied stays a tree: the checks after the
        // copies look into the root's objects.
        let mut top = build();
        top.copy_when_complete("actor", "copied_actor");
        top.make_copies();
        assert!(matches!(top.get("actor"), Some(V::Obj(_))));
        assert!(matches!(top.get("copied_actor"), Some(V::Written(_))));
    }
}
