//! A row's cells, borrowed from the answer, found by column in a slot each.
//!
//! A [`Columns`] is made once per answer from its `schema` (and the columns
//! the mapping reads): it gives every column name a slot. A row is then read
//! once, front to back, from where the answer's scan noted its members (or
//! by scanning it, where it did not); a cell whose column sits where it sat
//! in the row before (at first: where the schema says) is placed without a
//! lookup, any other by one hash lookup, and a column the columns do not
//! know is kept aside (it is bound for `unmapped`).

use super::value::{Cell, Key};
use crate::answer::RowText;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

/// Column names to slots, for one answer.
#[derive(Debug, Default)]
pub struct Columns {
    /// The answer's columns in schema order: slot `i` is `names[i]`.
    names: Vec<String>,
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Columns a union renamed, to the slot of the name they stand for
    /// ([`union_renamed`]): `ReportId_long` and `ReportId_string` are both
    /// `ReportId`.
    renamed: HashMap<String, usize, foldhash::fast::RandomState>,
    /// The slot of each member of the row read last, by position ([`NO_SLOT`]
    /// for a column without one): the rows of an answer all come in one
    /// order, which need not be the schema's (rows written with their keys
    /// sorted, rows without a schema). Past its end, the schema's order.
    last_order: RefCell<Vec<usize>>,
}

/// In [`Columns::last_order`], a member whose column has no slot.
const NO_SLOT: usize = usize::MAX;

impl Columns {
    /// The slots of the answer's `schema` columns, then of `also` (the
    /// columns the mapping reads, which a row may carry without a schema).
    ///
    /// A column a union renamed for a clash of types is read as the column
    /// it stands for ([`union_renamed`]).
    pub fn new<'s>(schema: impl IntoIterator<Item = &'s str>, also: impl IntoIterator<Item = &'s str>) -> Columns {
        let mut columns = Columns::default();
        let schema: Vec<&str> = schema.into_iter().collect();
        let renamed = union_renamed(&schema);
        for name in schema.iter().copied() {
            match renamed.iter().find(|(from, _)| *from == name) {
                Some((from, to)) => {
                    let slot = columns.add(to);
                    columns.renamed.insert(from.to_string(), slot);
                }
                None => _ = columns.add(name),
            }
        }
        for name in also {
            columns.add(name);
        }
        columns
    }

    /// The slot of `name`, made if it has none.
    pub fn add(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }

    /// The slot of `name`, if it has one.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The type names Kusto adds to a column's name (`_long`, `_string`, ...).
const KUSTO_TYPES: &[&str] = &[
    "bool", "datetime", "decimal", "dynamic", "guid", "int", "long", "real", "string", "timespan",
];

/// The columns of `schema` that a union renamed, each with the name it
/// stands for. Kusto's `union` (outer, as the collector's) gives a column
/// that its tables hold with different types one column per type, named
/// `<name>_<type>`: `ReportId` is a `long` in the Device tables and a
/// `string` in the others, so a union of DeviceRegistryEvents and
/// UrlClickEvents answers `ReportId_long` and `ReportId_string`, each
/// null in the other table's rows. Read as they came, the rows would lose
/// `ReportId` (their key: events would share a `metadata.uid`) and
/// `AdditionalFields`' mapping. A name counts as renamed only when the
/// schema has two or more such columns of one name and not the name itself.
pub fn union_renamed<'s>(schema: &[&'s str]) -> Vec<(&'s str, &'s str)> {
    let base = |name: &'s str| {
        let (base, kind) = name.rsplit_once('_')?;
        (!base.is_empty() && KUSTO_TYPES.contains(&kind)).then_some(base)
    };
    schema
        .iter()
        .filter_map(|&name| Some((name, base(name)?)))
        .filter(|(_, b)| !schema.contains(b) && schema.iter().filter(|n| base(n) == Some(*b)).count() >= 2)
        .collect()
}

/// One row's cells.
#[derive(Debug)]
pub struct Cells<'a> {
    /// A cell per slot, with its column name as the row wrote it.
    slots: Vec<Option<(Key<'a>, Cell<'a>)>>,
    /// Cells of columns without a slot, in row order.
    extra: Vec<(Key<'a>, Cell<'a>)>,
    /// Whether the answer's scan found the row compact
    /// ([`RowText::compact`](crate::answer::RowText::compact)): its object
    /// and array cells are then written as they came.
    compact: bool,
}

impl<'a> Cells<'a> {
    /// Reads the row `text` (one JSON object). A column given twice keeps
    /// its last value. The error says what is wrong with the text.
    pub fn read(text: &'a str, columns: &Columns) -> Result<Cells<'a>, String> {
        Cells::read_row(text.into(), columns)
    }

    /// [`Cells::read`], without scanning the row again where the answer's
    /// scan noted where its members lie.
    pub fn read_row(row: RowText<'a>, columns: &Columns) -> Result<Cells<'a>, String> {
        let mut cells = Cells {
            slots: vec![None; columns.len()],
            extra: Vec::new(),
            compact: row.compact(),
        };
        let mut placing = Placing {
            columns,
            order: columns.last_order.borrow_mut(),
            i: 0,
            bad: None,
        };
        let surrogate = match row.members() {
            Some((members, surrogate)) => {
                for (name, value) in members {
                    placing.place(&mut cells, Ok(Cow::Borrowed(name)), value);
                }
                surrogate
            }
            None => {
                crate::answer::object_members(row.text, |name, escaped, value| {
                    placing.place(&mut cells, name_of(name, escaped), value)
                })?
                .surrogate
            }
        };
        if let Some(e) = placing.bad {
            return Err(e);
        }
        if surrogate {
            // Escaped surrogates must pair, which only reading a string
            // checks, and cells are not read.
            serde_json::from_str::<serde::de::IgnoredAny>(row.text).map_err(|e| e.to_string())?;
            serde_json::from_str::<serde_json::Value>(row.text).map_err(|e| e.to_string())?;
        }
        Ok(cells)
    }

    /// A row without cells (for events made from something else than a row).
    pub fn empty() -> Cells<'a> {
        Cells {
            slots: Vec::new(),
            extra: Vec::new(),
            compact: false,
        }
    }

    /// Whether the row's object and array cells (`Cell::Raw`) are as
    /// compacting writes them, so that they are written as they came.
    pub fn compact(&self) -> bool {
        self.compact
    }

    /// The cell of slot `slot`, unless absent (null or `""`).
    pub fn at(&self, slot: usize) -> Option<&Cell<'a>> {
        self.slots.get(slot)?.as_ref().map(|(_, c)| c).filter(|c| !c.is_absent())
    }

    /// Takes the cell of slot `slot`, absent or not.
    pub fn take_at(&mut self, slot: usize) -> Option<(Key<'a>, Cell<'a>)> {
        self.slots.get_mut(slot)?.take()
    }

    /// Puts a cell back in slot `slot` (a conversion that failed).
    pub fn put_at(&mut self, slot: usize, name: Key<'a>, cell: Cell<'a>) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some((name, cell));
        }
    }

    /// The cell of column `name`, unless absent.
    pub fn get(&self, columns: &Columns, name: &str) -> Option<&Cell<'a>> {
        match columns.slot(name) {
            Some(s) => self.at(s),
            None => self
                .extra
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c)
                .filter(|c| !c.is_absent()),
        }
    }

    /// Takes the cell of column `name`, absent or not.
    pub fn take(&mut self, columns: &Columns, name: &str) -> Option<(Key<'a>, Cell<'a>)> {
        match columns.slot(name) {
            Some(s) => self.take_at(s),
            None => {
                let i = self.extra.iter().position(|(n, _)| n == name)?;
                Some(self.extra.remove(i))
            }
        }
    }

    /// Sets the cell of column `name`.
    pub fn put(&mut self, columns: &Columns, name: Key<'a>, cell: Cell<'a>) {
        match columns.slot(&name) {
            Some(s) => self.put_at(s, name, cell),
            None => match self.extra.iter_mut().find(|(n, _)| *n == name) {
                Some(c) => c.1 = cell,
                None => self.extra.push((name, cell)),
            },
        }
    }

    /// Every cell left, in slot then row order, absent ones included.
    pub fn into_rest(self) -> impl Iterator<Item = (Key<'a>, Cell<'a>)> {
        self.slots.into_iter().flatten().chain(self.extra)
    }

    /// Every cell left, by reference.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Cell<'a>)> {
        self.slots.iter().flatten().chain(&self.extra).map(|(k, c)| (k.as_ref(), c))
    }
}

/// Puts a row's cells in their slots, one member after the other.
struct Placing<'c> {
    columns: &'c Columns,
    /// The columns' [`Columns::last_order`], learnt anew from this row.
    order: std::cell::RefMut<'c, Vec<usize>>,
    /// The member's position in the row.
    i: usize,
    /// The first thing wrong with the row.
    bad: Option<String>,
}

impl Placing<'_> {
    /// Places the member `name` (or why its name cannot be read), of JSON
    /// text `value`.
    fn place<'a>(&mut self, cells: &mut Cells<'a>, name: Result<Key<'a>, String>, value: &'a str) {
        if let Err(e) = check(value) {
            self.bad.get_or_insert(e);
        }
        let name = match name {
            Ok(name) => name,
            Err(e) => {
                self.bad.get_or_insert(e);
                return;
            }
        };
        let (columns, i) = (self.columns, self.i);
        let guess = self.order.get(i).copied().unwrap_or(i);
        let mut renamed = false;
        let slot = match columns.names.get(guess) {
            Some(n) if super::value::same(n, &name) => Some(guess),
            _ => {
                let slot = columns.slot(&name).or_else(|| {
                    let slot = columns.renamed.get(name.as_ref()).copied();
                    renamed = slot.is_some();
                    slot
                });
                match self.order.get_mut(i) {
                    Some(o) => *o = slot.unwrap_or(NO_SLOT),
                    None => {
                        // The positions not recorded yet held their
                        // columns in the schema's order.
                        let recorded = self.order.len();
                        self.order.extend(recorded..i);
                        self.order.push(slot.unwrap_or(NO_SLOT));
                    }
                }
                slot
            }
        };
        self.i += 1;
        match slot {
            // A renamed column is the column it stands for, and only the
            // one of its row's table holds a value.
            Some(s) if renamed => {
                let cell = Cell::Raw(value);
                if !cell.is_absent() || cells.slots[s].is_none() {
                    cells.slots[s] = Some((Cow::Owned(columns.names[s].clone()), cell));
                }
            }
            Some(s) => cells.slots[s] = Some((name, Cell::Raw(value))),
            None => match cells.extra.iter_mut().find(|(n, _)| *n == name) {
                Some(cell) => cell.1 = Cell::Raw(value),
                None => cells.extra.push((name, Cell::Raw(value))),
            },
        }
    }
}

/// The members of the JSON object `text` in the order they came, borrowed
/// from it (a member given twice is there twice): each name, and its
/// value's JSON text; and whether the object is as compacting writes it
/// ([`ObjectShape::compact`](crate::answer::ObjectShape::compact)). `None`
/// when the text is not one object or holds an escaped surrogate (which
/// serde_json checks only when it reads a string into a value).
pub fn members(text: &str) -> Option<(Vec<(Key<'_>, &str)>, bool)> {
    let mut members = Vec::new();
    let mut names_ok = true;
    let shape = crate::answer::object_members(text, |name, escaped, value| match name_of(name, escaped) {
        Ok(name) => members.push((name, value)),
        Err(_) => names_ok = false,
    })
    .ok()?;
    (names_ok && !shape.surrogate).then_some((members, shape.compact))
}

/// A member's name from its JSON string (quotes included, checked to be
/// JSON): borrowed unless it holds escapes.
fn name_of(quoted: &str, escaped: bool) -> Result<Key<'_>, String> {
    match escaped {
        false => Ok(Cow::Borrowed(&quoted[1..quoted.len() - 1])),
        true => serde_json::from_str::<String>(quoted).map(Cow::Owned).map_err(|e| e.to_string()),
    }
}

/// A cell's JSON text is what serde_json would read as a value: numbers
/// other than plain integers are checked to be in range (serde_json rejects
/// `1e400`), as a row parsed into values would be.
fn check(raw: &str) -> Result<(), String> {
    match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') if !super::value::is_plain_int(raw) => serde_json::from_str::<serde_json::Number>(raw)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_name_a_union_split_by_type_is_read_as_renamed() {
        let renamed = |schema: &[&'static str]| union_renamed(schema);
        assert_eq!(
            renamed(&["Timestamp", "ReportId_long", "ReportId_string", "SourceTable"]),
            [("ReportId_long", "ReportId"), ("ReportId_string", "ReportId")]
        );
        assert_eq!(
            renamed(&["Is_Thing_bool", "Is_Thing_int"]),
            [("Is_Thing_bool", "Is_Thing"), ("Is_Thing_int", "Is_Thing")]
        );
        // One such column, a column of the name itself, or a suffix that
        // is not a type: columns of their own.
        assert!(renamed(&["Hash_string"]).is_empty());
        assert!(renamed(&["ReportId", "ReportId_long", "ReportId_string"]).is_empty());
        assert!(renamed(&["Account_name", "Account_sid"]).is_empty());
        assert!(renamed(&["_long", "_string"]).is_empty());
        // A renamed cell is read as its column; the other table's null does
        // not replace it, whichever comes first.
        let columns = Columns::new(["ReportId_long", "ReportId_string"], ["ReportId"]);
        for row in [
            r#"{"ReportId_long":42,"ReportId_string":null}"#,
            r#"{"ReportId_string":null,"ReportId_long":42}"#,
        ] {
            let cells = Cells::read(row, &columns).unwrap();
            let read: Vec<(&str, String)> = cells.iter().map(|(k, c)| (k, c.to_value().to_string())).collect();
            assert_eq!(read, [("ReportId", "42".to_string())], "{row}");
        }
    }

    #[test]
    fn cells_land_in_their_slots_whatever_the_order() {
        let columns = Columns::new(["A", "B"], ["C"]);
        let row = Cells::read(r#"{"B":"x","A":1,"D":null,"C":"","A":2}"#, &columns).unwrap();
        assert_eq!(
            row.at(0).unwrap().to_value(),
            serde_json::json!(2),
            "the last value of a column given twice"
        );
        assert_eq!(row.at(1).unwrap().to_value(), serde_json::json!("x"));
        assert!(row.at(2).is_none(), "\"\" is absent");
        assert!(row.get(&columns, "D").is_none(), "null is absent");
        assert_eq!(row.iter().count(), 4);
    }

    /// Each cell of `row` with its slot (`None`: kept aside), in the order
    /// the row keeps them.
    fn placed(row: &Cells, columns: &Columns) -> Vec<(Option<usize>, String, String)> {
        row.iter()
            .map(|(name, cell)| (columns.slot(name), name.to_string(), cell.to_value().to_string()))
            .collect()
    }

    proptest::proptest! {
        /// Rows read one after another, in orders that change from row to
        /// row (columns missing, repeated, unknown to the schema), land as
        /// they do when each is read with columns that have read nothing.
        #[test]
        fn the_order_learnt_from_a_row_never_misplaces_a_cell(
            rows in proptest::collection::vec(proptest::collection::vec((0..8usize, 0..100u32), 0..12), 1..12),
        ) {
            let names = ["A", "B", "C", "D", "E", "X", "Y", "A\\u0042"];
            let schema = ["A", "B", "C", "D", "E"];
            let columns = Columns::new(schema, ["F"]);
            for members in rows {
                let text = format!(
                    "{{{}}}",
                    members.iter().map(|(n, v)| format!("\"{}\":{v}", names[*n])).collect::<Vec<_>>().join(",")
                );
                let fresh = Columns::new(schema, ["F"]);
                let expected = placed(&Cells::read(&text, &fresh).unwrap(), &fresh);
                proptest::prop_assert_eq!(placed(&Cells::read(&text, &columns).unwrap(), &columns), expected, "{}", text);
            }
        }
    }

    use proptest::strategy::Strategy;

    /// A row's cells with their slots, as [`placed`] gives them, or its error.
    type Read = Result<Vec<(Option<usize>, String, String)>, String>;

    /// A row read from where the answer's scan noted its members, and read
    /// by scanning it.
    fn both_ways(row: RowText, raw: &str) -> [Read; 2] {
        let (noted, scanned) = (Columns::new(["A", "B", "C"], []), Columns::new(["A", "B", "C"], []));
        [
            Cells::read_row(row, &noted).map(|c| placed(&c, &noted)),
            Cells::read(raw, &scanned).map(|c| placed(&c, &scanned)),
        ]
    }

    proptest::proptest! {
        /// Rows read where the answer's scan noted their members give the
        /// cells (or the error) that reading them anew gives, in answers and
        /// in lines, whatever their white space, names and values.
        #[test]
        fn noted_members_read_as_the_row_itself(
            rows in proptest::collection::vec(proptest::collection::vec((
                proptest::sample::select(vec![r#""A""#, r#""B""#, r#""C""#, r#""\u0041""#, r#""x\"y""#, r#""a:b""#, r#""é""#]),
                proptest::prop_oneof![
                    proptest::num::i64::ANY.prop_map(|n| n.to_string()),
                    proptest::num::f64::NORMAL.prop_map(|n| serde_json::to_string(&n).unwrap()),
                    "[ a\"\\\\/é\u{1}]{0,9}".prop_map(|t| serde_json::to_string(&t).unwrap()),
                    proptest::sample::select(vec![
                        "1e400", "18446744073709551616", "-0.0", "true", "null", "\"\"", "\"\\ud800\"", "\"\\ud83d\\ude00\"",
                        "[1, {\"a\" : [true, null]}]", "{}", "[]", "\"{\\\"k\\\":\\\"v\\\"}\"",
                    ]).prop_map(str::to_string),
                ],
                proptest::sample::select(vec!["", " ", "\t", "  "]),
            ), 0..6), 1..5),
        ) {
            let texts: Vec<String> = rows
                .iter()
                .map(|members| {
                    let members: Vec<String> = members.iter().map(|(n, v, ws)| format!("{ws}{n}{ws}:{ws}{v}{ws}")).collect();
                    format!("{{{}}}", members.join(","))
                })
                .collect();
            let answer = crate::answer::parse_response(format!(r#"{{"results":[{}]}}"#, texts.join(" , "))).unwrap();
            let lines = crate::answer::from_lines(texts.join("\n").into_bytes()).unwrap();
            proptest::prop_assert_eq!((answer.len(), lines.len()), (texts.len(), texts.len()));
            for (i, text) in texts.iter().enumerate() {
                for read in [&answer, &lines] {
                    proptest::prop_assert_eq!(read.raw(i), text.as_str());
                    let [noted, scanned] = both_ways(read.row_text(i), text);
                    proptest::prop_assert_eq!(noted, scanned, "{}", text);
                }
            }
        }
    }

    #[test]
    fn a_cell_moved_since_the_row_before_is_found() {
        let columns = Columns::new(["A", "B", "C"], []);
        for text in [
            r#"{"C":3,"B":2,"A":1}"#,
            r#"{"C":3,"B":2,"A":1}"#,
            r#"{"A":1,"B":2,"C":3}"#,
            r#"{"B":2,"X":0,"A":1}"#,
        ] {
            let row = Cells::read(text, &columns).unwrap();
            assert_eq!(row.at(0).unwrap().to_value(), serde_json::json!(1), "{text}");
            assert_eq!(row.at(1).unwrap().to_value(), serde_json::json!(2), "{text}");
        }
        assert_eq!(*columns.last_order.borrow(), [1, NO_SLOT, 0], "the order of the last row read");
    }

    #[test]
    fn text_that_a_value_parse_refuses_is_refused() {
        let columns = Columns::new([], []);
        assert!(Cells::read(r#"{"A":1e400}"#, &columns).is_err());
        assert!(Cells::read(r#"{"A":"\ud800"}"#, &columns).is_err());
        assert!(Cells::read(r#"{"A":"\ud83d\ude00"}"#, &columns).is_ok());
        assert!(
            Cells::read(r#"{"A":"C:\\\ud800"}"#, &columns).is_err(),
            "after an escaped backslash"
        );
        assert!(Cells::read(r#"{"A":"C:\\ud800"}"#, &columns).is_ok(), "`\\ud800` is text");
        assert!(Cells::read(r#"{"A":1} x"#, &columns).is_err());
        assert!(Cells::read(r#"[1]"#, &columns).is_err());
        let row = Cells::read(r#"{"A\u0042":1}"#, &columns).unwrap();
        assert_eq!(row.iter().next().unwrap().0, "AB");
    }
}
