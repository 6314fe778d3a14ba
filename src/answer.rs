//! The answer of an advanced-hunting query: its schema and its rows, kept
//! as the bytes that came and read one row at a time. The Graph client
//! makes one from a response body; the mapping reads its rows.

use crate::bytes::string_special;
use crate::error::Error;
use crate::time::Ticks;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// The column that names each row's table in the answer of a union of
/// tables (`union withsource=SourceTable`).
pub const SOURCE_COLUMN: &str = "SourceTable";

/// One result row: column name to JSON value, as Graph sent it.
///
/// A hash map rather than a B-tree: mapping looks up and takes every column
/// by name, and column names share long prefixes (`InitiatingProcessVersionInfo…`),
/// which a B-tree compares over and over. In the component, where a byte
/// comparison costs more than natively, this made mapping faster by up to a
/// fifth (docs/performance.md); natively it is a wash. Its order is no one's
/// concern: what is left of a row lands under `unmapped`, an ordered map.
pub type Row = HashMap<String, Value, foldhash::fast::RandomState>;

/// A parsed `huntingQueryResults`. The answer's bytes are kept as they came
/// and each row is parsed only when it is mapped, so that a 50 MB answer is
/// held once, not also as a tree of values.
#[derive(Debug, Default)]
pub struct HuntingResult {
    /// Column names and their declared types (`DateTime`, `String`, `Int64`, ...).
    pub schema: Vec<(String, String)>,
    /// Checked to be UTF-8 once, so that parsing a row does not check its
    /// strings again.
    body: String,
    /// Where each row (a JSON object) lies in `body`.
    rows: Vec<(u32, u32)>,
    /// For each row, where its members lie ([`Place`]s in `places`), when
    /// the scan that located the row noted them: the row is then read
    /// without being scanned again.
    noted: Vec<Option<Members>>,
    places: Vec<Place>,
    /// Entries of `results` that are not rows (not JSON objects), described
    /// by position; the rows around them are kept.
    pub malformed: Vec<String>,
}

impl HuntingResult {
    /// How many rows the answer holds (entries that are not rows aside).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i` as the answer holds it: the JSON text of one object.
    pub fn raw(&self, i: usize) -> &str {
        let (start, end) = self.rows[i];
        &self.body[start as usize..end as usize]
    }

    /// Row `i` as the answer holds it, with where its members lie if the
    /// answer's scan noted that.
    pub fn row_text(&self, i: usize) -> RowText<'_> {
        RowText::noted(self.raw(i), self.noted.get(i).copied().flatten(), &self.places)
    }

    /// Row `i`, parsed.
    pub fn row(&self, i: usize) -> Result<Row, String> {
        // Room for every declared column, so that the map never grows while
        // it is filled (within reason: the schema is the server's word).
        let columns = self.schema.len().clamp(8, 512);
        let mut de = serde_json::Deserializer::from_str(self.raw(i));
        serde::de::DeserializeSeed::deserialize(RowSeed(columns), &mut de)
            .and_then(|row| de.end().map(|()| row))
            .map_err(|e| format!("row {i} could not be read: {e}"))
    }

    /// Every row, parsed (for small answers and tests).
    pub fn parse_rows(&self) -> Vec<Row> {
        (0..self.len()).filter_map(|i| self.row(i).ok()).collect()
    }

    /// The `Timestamp` of row `i`, reading nothing else of it: found among
    /// the members the answer's scan noted, by name, and only its text
    /// read. A `Timestamp` given twice counts by its last value, as it does
    /// when the row is mapped. `None` when it is absent, not a string, or
    /// not a time.
    ///
    /// A capped answer's cut reads the time of every row
    /// (`collector::fetch`), so this must not scan the rows again: reading
    /// each row with serde_json took about a tenth of the time it takes to
    /// map them.
    pub fn time(&self, i: usize) -> Option<Ticks> {
        let row = self.row_text(i);
        let raw = match row.last_member("Timestamp") {
            Some(found) => found?,
            None => {
                let mut last = None;
                object_members(row.text, |name, escaped, value| {
                    let timestamp = match escaped {
                        false => name == "\"Timestamp\"",
                        true => serde_json::from_str::<String>(name).is_ok_and(|n| n == "Timestamp"),
                    };
                    if timestamp {
                        last = Some(value);
                    }
                })
                .ok()?;
                last?
            }
        };
        let text: std::borrow::Cow<str> = serde_json::from_str(raw).ok()?;
        Ticks::parse(&text).ok()
    }
}

/// A row's text, and where its members lie if the answer's scan noted it.
#[derive(Clone, Copy, Debug)]
pub struct RowText<'a> {
    pub text: &'a str,
    /// The places of the row's members, in the order they came, and whether
    /// a string of the row holds an escaped UTF-16 surrogate (see
    /// [`object_members`]). Only the answer's scan makes them, for the row
    /// it scanned.
    members: Option<(&'a [Place], bool)>,
    /// Whether the scan found the row as compacting writes it: no white
    /// space between its tokens, no number with an exponent or of more than
    /// 20 characters, no escaped surrogate, nothing nested deeper than
    /// [`COMPACT_DEPTH`] in a member's value. Each object or array cell of
    /// such a row is then written as it came (`mapping::value::compact`
    /// would copy it unchanged).
    compact: bool,
}

impl<'a> From<&'a str> for RowText<'a> {
    fn from(text: &'a str) -> Self {
        RowText {
            text,
            members: None,
            compact: false,
        }
    }
}

impl<'a> RowText<'a> {
    /// A row's `text` with the members the scan noted for it, if it did,
    /// which are among `places`.
    fn noted(text: &'a str, members: Option<Members>, places: &'a [Place]) -> Self {
        match members {
            Some(m) => RowText {
                text,
                members: Some((&places[m.from as usize..m.to as usize], m.surrogate)),
                compact: m.compact,
            },
            None => RowText::from(text),
        }
    }

    /// Whether the answer's scan found the row compact (see the field).
    pub fn compact(&self) -> bool {
        self.compact
    }

    /// The members as [`object_members`] gives them (every name plain,
    /// without escapes, as the scan notes only such rows), and whether a
    /// string holds an escaped surrogate; `None` when the scan did not note
    /// them.
    pub fn members(&self) -> Option<(impl Iterator<Item = (&'a str, &'a str)> + 'a, bool)> {
        let (places, surrogate) = self.members?;
        let text = self.text;
        let members = places.iter().enumerate().map(move |(k, p)| {
            let (name, value) = (usize::from(p.name), usize::from(p.value));
            (
                &text[name + 1..back(text, value, true) - 1],
                value_text(text, value, places.get(k + 1)),
            )
        });
        Some((members, surrogate))
    }

    /// The value's text of the last member named `name`, when the scan
    /// noted the members: `Some(None)` when there is none. Names are
    /// compared where they lie; only the value found is sliced.
    ///
    /// Not made of [`RowText::members`]: a second caller of that iterator
    /// kept the component's build from inlining it where every row's cells
    /// are read, and mapping ran 1–4 % slower.
    pub fn last_member(&self, name: &str) -> Option<Option<&'a str>> {
        let (places, _) = self.members?;
        let b = self.text.as_bytes();
        // A noted name is plain: its quotes hold exactly its text.
        let named = |p: &Place| {
            let at = usize::from(p.name) + 1;
            // The closing quote first: most names differ in length.
            b.get(at + name.len()) == Some(&b'"') && &b[at..at + name.len()] == name.as_bytes()
        };
        // Forward, in the order the bytes lie: searching from the last
        // member back took twice as long.
        let last = places
            .iter()
            .enumerate()
            .fold(None, |last, (k, p)| if named(p) { Some(k) } else { last });
        Some(last.map(|k| value_text(self.text, usize::from(places[k].value), places.get(k + 1))))
    }
}

/// The text of a noted member's value, which starts at `value` in the row
/// `text` and ends before the `next` member's name, or before the row's
/// closing brace.
#[inline(always)]
fn value_text<'a>(text: &'a str, value: usize, next: Option<&Place>) -> &'a str {
    let end = match next {
        Some(next) => back(text, usize::from(next.name), true),
        None => back(text, text.len() - 1, false),
    };
    &text[value..end]
}

/// Back from `at` in `text` over white space and, when `parted`, the byte
/// that parts a name from its value (`:`) or a value from the next member
/// (`,`) and the white space before it.
#[inline(always)]
fn back(text: &str, mut at: usize, parted: bool) -> usize {
    let b = text.as_bytes();
    let space = |at: &mut usize| {
        while matches!(b[*at - 1], b' ' | b'\n' | b'\r' | b'\t') {
            *at -= 1;
        }
    };
    space(&mut at);
    if parted {
        at -= 1;
        space(&mut at);
    }
    at
}

/// Where a member of a row lies, in bytes from the row's first: its name's
/// opening quote and its value's first byte (where the name and the value
/// end follows from those and the next member's). Four bytes a member, so
/// that noting them costs about a tenth of the answer's size; rows longer
/// than 64 KiB are not noted.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    name: u16,
    value: u16,
}

/// Which [`Place`]s are a row's, and whether a string of the row holds an
/// escaped surrogate.
#[derive(Clone, Copy, Debug)]
struct Members {
    from: u32,
    to: u32,
    surrogate: bool,
    compact: bool,
}

/// Reads a row (a JSON object) into a [`Row`] made with room for `.0`
/// columns. A column that appears twice keeps its last value.
struct RowSeed(usize);

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed {
    type Value = Row;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed {
    type Value = Row;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row (a JSON object)")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut row = Row::with_capacity_and_hasher(self.0, Default::default());
        while let Some((column, value)) = map.next_entry::<String, Value>()? {
            row.insert(column, value);
        }
        Ok(row)
    }
}

#[derive(Deserialize)]
struct RawColumn {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Type")]
    r#type: String,
}

/// Parses a runHuntingQuery response body. Keys may be `schema`/`results`
/// (Graph) or `Schema`/`Results` (legacy APIs), and columns `name`/`type` or
/// `Name`/`Type`.
///
/// The rows are located, not read: one scan of the body checks that it is
/// JSON and finds where each entry of `results` starts and ends, and where
/// each member of a row lies ([`Place`]). A body that is not JSON anywhere
/// (Graph never sends one; a proxy, a cut connection or a broken encoding
/// does) is an error as a whole, so the query is asked again and no row is
/// lost to the damage. Each row is then read once, when it is mapped
/// (`mapping::cells`), from those places, without a second scan of its
/// text; a row that is JSON but cannot be mapped (a cell that is a number
/// out of range, an escaped surrogate left unpaired) is rejected on its
/// own, with its reason, and the others go on.
pub fn parse_response(body: impl Into<Vec<u8>>) -> Result<HuntingResult, Error> {
    parse_or_return(body.into()).map_err(|(e, _)| e)
}

/// [`parse_response`], which gives the body back with its error, for a
/// caller that reads it some other way then.
pub fn parse_or_return(body: Vec<u8>) -> Result<HuntingResult, (Error, Vec<u8>)> {
    if body.len() > u32::MAX as usize {
        let e = Error::Transient(format!(
            "Graph returned {} bytes, more than this collector reads at once",
            body.len()
        ));
        return Err((e, body));
    }
    let not_results = |body: &[u8], why: &dyn std::fmt::Display| {
        let start = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        Error::Transient(format!(
            "Graph returned a response that is not valid hunting results ({why}); it starts with: {start:?}"
        ))
    };
    let body = match String::from_utf8(body) {
        Ok(body) => body,
        Err(e) => {
            let why = format!("it is not UTF-8 text: {}", e.utf8_error());
            return Err((not_results(e.as_bytes(), &why), e.into_bytes()));
        }
    };
    let located = match locate(body.as_bytes()) {
        Ok(located) => located,
        Err(why) => return Err((not_results(body.as_bytes(), &why), body.into_bytes())),
    };
    let schema: Vec<RawColumn> = match located.schema.map(|(start, end)| serde_json::from_str(&body[start..end])) {
        Some(Ok(schema)) => schema,
        Some(Err(e)) => return Err((not_results(body.as_bytes(), &format!("its schema: {e}")), body.into_bytes())),
        None => Vec::new(),
    };
    let Some(entries) = located.results else {
        let e = Error::Transient("Graph returned a response without `results`; a proxy may have answered".into());
        return Err((e, body.into_bytes()));
    };
    let mut rows = Vec::with_capacity(entries.len());
    let mut noted = Vec::with_capacity(entries.len());
    let mut malformed = Vec::new();
    for (i, (start, end, members)) in entries.into_iter().enumerate() {
        let text = &body[start as usize..end as usize];
        if text.starts_with('{') {
            rows.push((start, end));
            noted.push(members);
        } else {
            let text: String = text.chars().take(80).collect();
            malformed.push(format!("result {i} is not a row but {text}"));
        }
    }
    let schema = schema.into_iter().map(|c| (c.name, c.r#type)).collect();
    Ok(HuntingResult {
        schema,
        body,
        rows,
        noted,
        places: located.places,
        malformed,
    })
}

/// Rows one JSON object per line (blank lines skipped), as
/// advanced-hunting rows are often saved, as an answer without a schema.
/// Each line is checked on its own: one that is not a row (not UTF-8 text,
/// not JSON, not an object) is named by its number in `malformed`, and the
/// lines around it are kept.
pub fn from_lines(input: Vec<u8>) -> Result<HuntingResult, Error> {
    if input.len() > u32::MAX as usize {
        return Err(Error::Config(format!(
            "{} bytes are more than this collector reads at once",
            input.len()
        )));
    }
    let mut malformed = Vec::new();
    let body = match String::from_utf8(input) {
        Ok(body) => body,
        Err(e) => {
            // The lines that are text are kept, each where it was; the others
            // become blank lines.
            let mut body = String::with_capacity(e.as_bytes().len());
            for (n, line) in e.as_bytes().split(|b| *b == b'\n').enumerate() {
                match std::str::from_utf8(line) {
                    Ok(line) => body.push_str(line),
                    Err(e) => malformed.push(format!("line {} is not UTF-8 text: {e}", n + 1)),
                }
                body.push('\n');
            }
            body
        }
    };
    let (mut rows, mut noted, mut places) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    for (n, line) in body.split('\n').enumerate() {
        let mut s = Scan::new(line.as_bytes());
        if s.peek().is_some() {
            let (row_start, noted_from) = (s.at, places.len());
            let is_row = line.as_bytes()[row_start] == b'{';
            let checked = match is_row {
                true => s.row(&mut places),
                false => s.value().map(|()| None),
            };
            let checked = checked.and_then(|members| {
                let row_end = s.at;
                s.end("the row").map(|()| (row_end, members))
            });
            match checked {
                Err(why) => {
                    places.truncate(noted_from);
                    malformed.push(format!("line {} is not JSON: {why}", n + 1));
                }
                Ok((row_end, members)) if is_row => {
                    rows.push(((start + row_start) as u32, (start + row_end) as u32));
                    noted.push(members);
                }
                Ok(_) => {
                    let text: String = line.trim().chars().take(80).collect();
                    malformed.push(format!("line {} is not a row but {text}", n + 1));
                }
            }
        }
        start += line.len() + 1;
    }
    Ok(HuntingResult {
        schema: Vec::new(),
        body,
        rows,
        noted,
        places,
        malformed,
    })
}

/// Reads the JSON object `text` member by member, in the order they came
/// (a member given twice comes twice): `each` gets the member's name as its
/// JSON string, quotes and escapes included, whether that string holds an
/// escape (so a plain name need not be searched for one again), and the
/// value's JSON text.
/// `text` is checked to be one object of JSON with the answer's own scan,
/// so a row is read as cheaply as it was located; the error says what is
/// wrong where (a byte offset into `text`). What the scan found of the
/// object as a whole comes back as an [`ObjectShape`].
pub fn object_members<'t>(text: &'t str, mut each: impl FnMut(&'t str, bool, &'t str)) -> Result<ObjectShape, String> {
    let mut s = Scan::new(text.as_bytes());
    s.object(|s, (name_start, name_end), escaped| {
        let start = s.at;
        s.member_value()?;
        // All three end where the scan stopped: at an ASCII byte, or the end.
        each(&text[name_start..name_end], escaped, &text[start..s.at]);
        Ok(())
    })?;
    s.end("the object")?;
    Ok(ObjectShape {
        surrogate: s.surrogate,
        // The object is one level above its members' values.
        compact: !s.loose && !s.surrogate && s.deepest < COMPACT_DEPTH,
    })
}

/// What [`object_members`] found of an object as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectShape {
    /// Whether some string of the object, a name or a value at any depth,
    /// holds an escaped UTF-16 surrogate (`\uD800` to `\uDFFF`): the scan
    /// checks each escape's form, not that surrogates pair, which only
    /// reading the string settles. A caller that does not read every string
    /// asks serde_json then.
    pub surrogate: bool,
    /// Whether the object is as compacting writes it
    /// (`mapping::value::compact` would copy it unchanged: no white space
    /// between its tokens or around it, no number with an exponent or of
    /// more than 20 characters, no escaped surrogate), and nests no deeper
    /// than [`COMPACT_DEPTH`], itself included. Then so is every member's
    /// value, and any object made of some of its members as they came.
    pub compact: bool,
}

/// A Streaming API message (`{"records": [...]}`, graph-api.md §3) located
/// by the answer's own scan: one pass checks that all of it is JSON and
/// finds each record's `category`, `tenantId` and `properties` (the row),
/// noting where the row's members lie as [`parse_response`] does for an
/// answer's rows, so that no part of a record is read twice.
#[derive(Debug)]
pub struct StreamMessage<'m> {
    text: &'m str,
    /// Each entry of `records`: where its parts lie, or why it is no record.
    records: Vec<Result<StreamRecord, String>>,
    places: Vec<Place>,
}

/// Where the parts of one record lie in its message.
#[derive(Debug, Default)]
struct StreamRecord {
    /// `category` and `tenantId`: string literals, quotes included.
    category: Option<(u32, u32)>,
    tenant_id: Option<(u32, u32)>,
    /// `properties` when it is an object, and its noted members.
    properties: Option<(u32, u32, Option<Members>)>,
}

/// One record of a [`StreamMessage`], borrowed from it.
#[derive(Debug)]
pub struct RecordParts<'a> {
    /// The JSON string literal of `category`, quotes and escapes included.
    pub category: Option<&'a str>,
    /// The JSON string literal of `tenantId`.
    pub tenant_id: Option<&'a str>,
    /// The row, when `properties` is an object.
    pub properties: Option<RowText<'a>>,
}

/// Why a message is not a Streaming API message.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAMessage {
    /// It is not JSON: what is wrong where.
    NotJson(String),
    /// It is JSON, but not an object with one `records` array.
    NoRecords(String),
    /// It is longer (in bytes) than the scan's offsets reach: 4 GiB.
    TooLarge(usize),
}

impl<'m> StreamMessage<'m> {
    /// How many entries `records` holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Entry `i` of `records`, or why it is not a record (not an object, a
    /// field of the wrong type or given twice).
    pub fn record(&self, i: usize) -> Result<RecordParts<'_>, &str> {
        let record = self.records[i].as_ref().map_err(String::as_str)?;
        let slice = |(start, end): (u32, u32)| &self.text[start as usize..end as usize];
        Ok(RecordParts {
            category: record.category.map(slice),
            tenant_id: record.tenant_id.map(slice),
            properties: record
                .properties
                .map(|(start, end, members)| RowText::noted(slice((start, end)), members, &self.places)),
        })
    }
}

/// Locates the records of the Streaming API message `text` ([`StreamMessage`]).
/// A key of the envelope or of a record written with an escape is not
/// recognised, as [`parse_response`] does not recognise one.
pub fn stream_message(text: &str) -> Result<StreamMessage<'_>, NotAMessage> {
    stream_message_within(text, u32::MAX as usize)
}

/// [`stream_message`] for a message of at most `limit` bytes.
fn stream_message_within(text: &str, limit: usize) -> Result<StreamMessage<'_>, NotAMessage> {
    let body = text.as_bytes();
    if body.len() > limit {
        return Err(NotAMessage::TooLarge(body.len()));
    }
    let mut s = Scan::new(body);
    if s.peek() != Some(b'{') {
        s.value().map_err(NotAMessage::NotJson)?;
        s.end("the message").map_err(NotAMessage::NotJson)?;
        return Err(NotAMessage::NoRecords("it is not an object".into()));
    }
    let (mut records, mut twice, mut places) = (None, false, Vec::new());
    s.object(|s, (name_start, name_end), _| {
        match &body[name_start + 1..name_end - 1] {
            b"records" if s.peek() == Some(b'[') => {
                twice |= records.is_some();
                records = Some(s.stream_records(&mut places)?);
            }
            _ => s.value()?,
        }
        Ok(())
    })
    .map_err(NotAMessage::NotJson)?;
    s.end("the message").map_err(NotAMessage::NotJson)?;
    match (records, twice) {
        (Some(_), true) => Err(NotAMessage::NoRecords("it holds `records` twice".into())),
        (Some(records), false) => Ok(StreamMessage { text, records, places }),
        (None, _) => Err(NotAMessage::NoRecords("it holds no `records` array".into())),
    }
}

/// Whether `text` is the JSON text of one object or array (white space
/// around it allowed), checked with the answer's own scan: `None` when it
/// is not, and else whether compacting would copy it unchanged (no white
/// space between its tokens or around it, no number with an exponent or of
/// more than 20 characters, no nesting deeper than [`COMPACT_DEPTH`], no
/// escaped UTF-16 surrogate), so that it can be written as it is.
pub fn json_container(text: &str) -> Option<bool> {
    let mut s = Scan::new(text.as_bytes());
    if !matches!(s.peek(), Some(b'{' | b'[')) {
        return None;
    }
    s.value().ok()?;
    s.end("the value").ok()?;
    Some(!s.loose && !s.surrogate)
}

/// What kind of JSON value starts with `first`, in words.
fn kind_of(first: u8) -> &'static str {
    match first {
        b'"' => "a string",
        b'[' => "an array",
        b'{' => "an object",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

/// Whether the escape whose `u` is at `u` in `bytes` (`\uXXXX`) names a
/// UTF-16 surrogate, `D800` to `DFFF`.
pub fn names_surrogate(bytes: &[u8], u: usize) -> bool {
    matches!(bytes.get(u + 1), Some(b'd' | b'D')) && matches!(bytes.get(u + 2), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
}

/// How deeply an object or array cell nests at most to be written as
/// compacted text (`mapping::value::write_compact`); deeper ones go
/// through serde_json, which reads no more than 127 levels.
pub const COMPACT_DEPTH: usize = 64;

/// Where the parts of an answer lie in its body.
#[derive(Debug, Default)]
struct Located {
    /// The `schema` array.
    schema: Option<(usize, usize)>,
    /// Each entry of the `results` array, and where its members lie if it
    /// is an object whose members were noted (in `places`).
    results: Option<Vec<(u32, u32, Option<Members>)>>,
    places: Vec<Place>,
}

/// Finds the `schema` and the entries of `results` in `body` (one JSON
/// object), checking that all of it is JSON. Nothing is read into values:
/// strings are skipped from quote to quote (their escapes checked), numbers
/// and literals checked where they lie. The error says what is wrong where.
fn locate(body: &[u8]) -> Result<Located, String> {
    let mut s = Scan::new(body);
    let mut located = Located::default();
    s.object(|s, (name_start, name_end), _| {
        match &body[name_start + 1..name_end - 1] {
            b"schema" | b"Schema" => {
                let start = s.at;
                s.value()?;
                located.schema = Some((start, s.at));
            }
            b"results" | b"Results" if s.peek() == Some(b'[') => {
                located.places.clear();
                located.results = Some(s.entries(&mut located.places)?);
            }
            _ => s.value()?,
        }
        Ok(())
    })?;
    s.end("the answer")?;
    Ok(located)
}

/// A cursor over the body for [`locate`].
struct Scan<'b> {
    body: &'b [u8],
    at: usize,
    /// Whether a string skipped so far holds an escaped UTF-16 surrogate.
    surrogate: bool,
    /// Whether the text skipped so far holds what compacting does not copy
    /// as it is: white space between tokens, a number with an exponent or
    /// of more than 20 characters, nesting deeper than [`COMPACT_DEPTH`].
    loose: bool,
    /// The most objects and arrays one inside another in a value skipped
    /// so far (a scalar nests 0 deep, `[]` and `[1]` 1, `[[]]` 2), counted
    /// as `mapping::value::compact` counts them.
    deepest: usize,
}

impl<'b> Scan<'b> {
    fn new(body: &'b [u8]) -> Scan<'b> {
        Scan {
            body,
            at: 0,
            surrogate: false,
            loose: false,
            deepest: 0,
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.body.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
            self.loose = true;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.body.get(self.at).copied()
    }

    /// The next byte that is not white space, taken.
    fn next_byte(&mut self) -> Result<u8, String> {
        let b = self.peek().ok_or_else(|| format!("it ends early, at byte {}", self.at))?;
        self.at += 1;
        Ok(b)
    }

    fn unexpected(&self, found: u8, wanted: &str) -> String {
        format!("expected {wanted} at byte {}, found {:?}", self.at - 1, char::from(found))
    }

    #[inline]
    fn expect(&mut self, wanted: u8) -> Result<(), String> {
        // Graph writes compact JSON: the byte wanted is most often right
        // here, with no white space before it.
        if self.body.get(self.at) == Some(&wanted) {
            self.at += 1;
            return Ok(());
        }
        self.expect_after_space(wanted)
    }

    #[cold]
    fn expect_after_space(&mut self, wanted: u8) -> Result<(), String> {
        match self.next_byte()? {
            b if b == wanted => Ok(()),
            other => Err(self.unexpected(other, &format!("`{}`", char::from(wanted)))),
        }
    }

    /// Walks the object that opens at the cursor to its closing brace. For
    /// each member, `member` gets the scan at its value (past the `:` and
    /// the white space), where the member's name lies (quotes included) and
    /// whether the name holds an escape; it must skip the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, (usize, usize), bool) -> Result<(), String>) -> Result<(), String> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.expect(b'"')?;
            let start = self.at - 1;
            let escaped = self.string_rest(start)?;
            let name = (start, self.at);
            self.expect(b':')?;
            self.skip_ws();
            member(self, name, escaped)?;
            match self.next_byte()? {
                b',' => continue,
                b'}' => return Ok(()),
                other => return Err(self.unexpected(other, "`,` or `}` in an object")),
            }
        }
    }

    /// Only white space is left after `what`.
    fn end(&mut self, what: &str) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(format!("there is more after {what}, at byte {}", self.at)),
        }
    }

    /// Skips a string (at its opening quote); returns where it lies,
    /// quotes included.
    fn string(&mut self) -> Result<(usize, usize), String> {
        self.expect(b'"')?;
        let start = self.at - 1;
        self.string_rest(start)?;
        Ok((start, self.at))
    }

    /// Skips the rest of the string that opens at `start`, up to its
    /// closing quote, checking its escapes and that it holds no control
    /// character (and noting an escaped surrogate); whether it holds an
    /// escape.
    fn string_rest(&mut self, start: usize) -> Result<bool, String> {
        let mut escaped = false;
        loop {
            let Some(i) = string_special(&self.body[self.at.min(self.body.len())..]) else {
                return Err(format!("a string that starts at byte {start} never ends"));
            };
            self.at += i;
            match self.body[self.at] {
                b'"' => {
                    self.at += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    let escape = self.at;
                    let length = match self.body.get(self.at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u') if self.four_hex_digits(self.at + 2) => {
                            self.surrogate |= names_surrogate(self.body, self.at + 1);
                            6
                        }
                        None => return Err(format!("a string that starts at byte {start} never ends")),
                        Some(_) => return Err(format!("a string holds an escape that JSON does not have, at byte {escape}")),
                    };
                    self.at += length;
                }
                control => {
                    return Err(format!(
                        "a string holds a control character (U+{control:04X}) that is not escaped, at byte {}",
                        self.at
                    ));
                }
            }
        }
    }

    /// Whether four hexadecimal digits start at `at` (a `\u` escape's).
    fn four_hex_digits(&self, at: usize) -> bool {
        self.body.get(at..at + 4).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    }

    /// Skips digits; whether there was one.
    fn digits(&mut self) -> bool {
        let start = self.at;
        while self.body.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at > start
    }

    /// Skips a number (at its first byte), as JSON writes one.
    fn number(&mut self) -> Result<(), String> {
        let start = self.at;
        if self.body.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let whole = match self.body.get(self.at) {
            Some(b'0') => {
                self.at += 1;
                true
            }
            _ => self.digits(),
        };
        let mut ok = whole;
        if ok && self.body.get(self.at) == Some(&b'.') {
            self.at += 1;
            ok = self.digits();
        }
        if ok && matches!(self.body.get(self.at), Some(b'e' | b'E')) {
            self.loose = true;
            self.at += 1;
            if matches!(self.body.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            ok = self.digits();
        }
        self.loose |= self.at - start > 20;
        match ok {
            true => Ok(()),
            false => Err(format!("a number at byte {start} is not one JSON can hold")),
        }
    }

    /// Skips one value of any kind (at its first byte or the white space
    /// before it), checking it is JSON. Nested objects and arrays are
    /// followed on a stack, not by recursion, so no depth overflows.
    fn value(&mut self) -> Result<(), String> {
        let mut closers: Vec<u8> = Vec::new();
        loop {
            // A value.
            let opens = self.next_byte()?;
            if matches!(opens, b'{' | b'[') && closers.len() >= COMPACT_DEPTH {
                self.loose = true;
            }
            match opens {
                b'"' => {
                    self.string_rest(self.at - 1)?;
                }
                b'{' | b'[' if self.peek() == Some(if opens == b'{' { b'}' } else { b']' }) => {
                    // Empty: one level, as compacting counts it.
                    self.deepest = self.deepest.max(closers.len() + 1);
                    self.at += 1;
                }
                b'{' => {
                    closers.push(b'}');
                    self.deepest = self.deepest.max(closers.len());
                    self.string()?;
                    self.expect(b':')?;
                    continue;
                }
                b'[' => {
                    closers.push(b']');
                    self.deepest = self.deepest.max(closers.len());
                    continue;
                }
                b'-' | b'0'..=b'9' => {
                    self.at -= 1;
                    self.number()?;
                }
                first @ (b't' | b'f' | b'n') => {
                    let rest: &[u8] = match first {
                        b't' => b"rue",
                        b'f' => b"alse",
                        _ => b"ull",
                    };
                    if !self.body[self.at..].starts_with(rest) {
                        return Err(format!("expected a value at byte {}", self.at - 1));
                    }
                    self.at += rest.len();
                }
                _ => return Err(format!("expected a value at byte {}", self.at - 1)),
            }
            // What follows it: the containers it ends, up to the next value.
            loop {
                let Some(&closer) = closers.last() else {
                    return Ok(());
                };
                match self.next_byte()? {
                    b',' if closer == b'}' => {
                        self.string()?;
                        self.expect(b':')?;
                        break;
                    }
                    b',' => break,
                    b if b == closer => {
                        closers.pop();
                    }
                    other if closer == b'}' => return Err(self.unexpected(other, "`,` or `}` in an object")),
                    other => return Err(self.unexpected(other, "`,` or `]` in an array")),
                }
            }
        }
    }

    /// Skips the row (an object) at the cursor, noting where its members
    /// lie in `places` when every name is plain (no escape) and the row is
    /// no longer than a [`Place`] reaches.
    fn row(&mut self, places: &mut Vec<Place>) -> Result<Option<Members>, String> {
        let (start, from) = (self.at, places.len());
        self.surrogate = false;
        self.loose = false;
        let mut plain = true;
        self.object(|s, (name, _), escaped| {
            let value = s.at;
            s.member_value()?;
            plain &= !escaped;
            // Offsets past 64 KiB wrap; such a row's places are dropped below.
            let at = |x: usize| (x - start) as u16;
            places.push(Place {
                name: at(name),
                value: at(value),
            });
            Ok(())
        })?;
        if !plain || self.at - start > u16::MAX as usize {
            places.truncate(from);
            return Ok(None);
        }
        Ok(Some(Members {
            from: from as u32,
            to: places.len() as u32,
            surrogate: self.surrogate,
            compact: !self.loose && !self.surrogate,
        }))
    }

    /// Skips a member's value (at its first byte). Most values of a row are
    /// strings: skipped without the general walk and its stack.
    fn member_value(&mut self) -> Result<(), String> {
        match self.body.get(self.at) {
            Some(b'"') => {
                self.at += 1;
                self.string_rest(self.at - 1)?;
                Ok(())
            }
            _ => self.value(),
        }
    }

    /// The entries of a Streaming API message's `records` (at its `[`).
    fn stream_records(&mut self, places: &mut Vec<Place>) -> Result<Vec<Result<StreamRecord, String>>, String> {
        self.array("a record", |s| match s.body.get(s.at) {
            Some(b'{') => s.stream_record(places),
            Some(&first) => {
                s.value()?;
                Ok(Err(format!("it is {}, not an object", kind_of(first))))
            }
            None => Err(format!("it ends early, at byte {}", s.at)),
        })
    }

    /// One record (an object, at its `{`): where its parts lie, or why it
    /// is no record; the error is the message's, which is no JSON.
    fn stream_record(&mut self, places: &mut Vec<Place>) -> Result<Result<StreamRecord, String>, String> {
        const FIELDS: [&str; 3] = ["category", "tenantId", "properties"];
        let body = self.body;
        let mut record = StreamRecord::default();
        let (mut seen, mut wrong) = ([false; 3], None);
        self.object(|s, (name_start, name_end), _| {
            let Some(field) = FIELDS.iter().position(|f| f.as_bytes() == &body[name_start + 1..name_end - 1]) else {
                return s.value();
            };
            if std::mem::replace(&mut seen[field], true) {
                wrong.get_or_insert(format!("it holds `{}` twice", FIELDS[field]));
            }
            let start = s.at;
            let first = body.get(start).copied();
            if field == 2 {
                // Anything but an object is no row: the record has none.
                match first {
                    Some(b'{') => {
                        let members = s.row(places)?;
                        record.properties = Some((start as u32, s.at as u32, members));
                    }
                    _ => s.value()?,
                }
                return Ok(());
            }
            s.member_value()?;
            match first {
                Some(b'"') => {
                    let at = (start as u32, s.at as u32);
                    *(if field == 0 { &mut record.category } else { &mut record.tenant_id }) = Some(at);
                }
                // Null is as good as absent.
                Some(b'n') | None => {}
                Some(other) => {
                    wrong.get_or_insert(format!("its `{}` is {}, not a string", FIELDS[field], kind_of(other)));
                }
            }
            Ok(())
        })?;
        Ok(match wrong {
            Some(why) => Err(why),
            None => Ok(record),
        })
    }

    /// The entries of an array (at its `[`), each as where it lies and, for
    /// a row whose members were noted in `places`, which are its.
    fn entries(&mut self, places: &mut Vec<Place>) -> Result<Vec<(u32, u32, Option<Members>)>, String> {
        self.array("a result", |s| {
            let start = s.at;
            let members = match s.body.get(start) {
                Some(b'{') => s.row(places)?,
                _ => {
                    s.value()?;
                    None
                }
            };
            // The body is at most u32::MAX bytes long (parse_response).
            Ok((start as u32, s.at as u32, members))
        })
    }

    /// Walks the array at the cursor (at its `[`): `entry` gets the scan at
    /// each entry's first byte and must skip it; `what` names an entry in
    /// the error of a byte that does not follow one.
    fn array<T>(&mut self, what: &str, mut entry: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        self.expect(b'[')?;
        let mut entries = Vec::new();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(entries);
        }
        loop {
            self.skip_ws();
            entries.push(entry(self)?);
            match self.next_byte()? {
                b',' => continue,
                b']' => return Ok(entries),
                other => return Err(self.unexpected(other, &format!("`,` or `]` after {what}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_casings_and_keeps_big_integers_exact() {
        let lower = br#"{"schema":[{"name":"ReportId","type":"Int64"}],"results":[{"ReportId":18446744073709551615}]}"#;
        let upper = br#"{"Schema":[{"Name":"ReportId","Type":"Int64"}],"Results":[{"ReportId":9007199254740993}]}"#;
        let a = parse_response(lower).unwrap();
        assert_eq!(a.schema, vec![("ReportId".to_string(), "Int64".to_string())]);
        assert_eq!(a.row(0).unwrap()["ReportId"].to_string(), "18446744073709551615");
        let b = parse_response(upper).unwrap();
        assert_eq!(b.row(0).unwrap()["ReportId"].to_string(), "9007199254740993");
    }

    /// The members a row's noted places give, or `None` when none were noted.
    fn noted(r: &HuntingResult, i: usize) -> Option<(Vec<(&str, &str)>, bool)> {
        r.row_text(i).members().map(|(members, surrogate)| (members.collect(), surrogate))
    }

    #[test]
    fn the_scan_notes_where_each_member_of_a_row_lies() {
        let body =
            "{\"results\":[{\"a\":\"x\\\"y\",\"b\" : [1,{\"c\":2}] , \"c:\"\t:\ttrue},{},{\"n\\u0041\":1},{\"s\":\"\\ud83d\\ude00\"},7]}";
        let r = parse_response(body.as_bytes()).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(
            noted(&r, 0),
            Some((vec![("a", "\"x\\\"y\""), ("b", "[1,{\"c\":2}]"), ("c:", "true")], false)),
            "names with white space and a colon before their value"
        );
        assert_eq!(noted(&r, 1), Some((vec![], false)));
        assert_eq!(noted(&r, 2), None, "a name with an escape is left to the row's own reading");
        assert_eq!(
            noted(&r, 3),
            Some((vec![("s", "\"\\ud83d\\ude00\"")], true)),
            "an escaped surrogate is noted"
        );
        let lines = from_lines(b"{\"a\":1}\n[2]\n {\"b\": \"2\"} \n{\"c\":\n".to_vec()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(noted(&lines, 0), Some((vec![("a", "1")], false)));
        assert_eq!(noted(&lines, 1), Some((vec![("b", "\"2\"")], false)), "a line is noted as well");
        assert_eq!(lines.malformed.len(), 2);
    }

    #[test]
    fn a_row_longer_than_a_place_reaches_is_not_noted() {
        let long = "x".repeat(usize::from(u16::MAX));
        let body = format!(r#"{{"results":[{{"a":"{long}","b":1}},{{"a":"{}","b":1}}]}}"#, &long[..60_000]);
        let r = parse_response(body.into_bytes()).unwrap();
        assert_eq!(noted(&r, 0), None);
        assert_eq!(noted(&r, 1).map(|(m, _)| m[1]), Some(("b", "1")));
    }

    #[test]
    fn a_malformed_entry_is_reported_and_the_rows_around_it_kept() {
        let r = parse_response(br#"{"schema":[],"results":[{"a":1},7,"x",{"a":2}]}"#).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.malformed.len(), 2);
        assert!(r.malformed[0].contains("result 1"), "{:?}", r.malformed);
    }

    #[test]
    fn rows_are_located_whatever_their_strings_hold() {
        let body = r#" { "@odata.context" : "x\"}]" , "results" : [ {"a":"}{\"[","b":[1,{"c":[]}],"d":-0.5e+3} ,
            {"a":true,"b":[false,null,{}]} , {} ] , "schema":[{"name":"a","type":"String"}] } "#;
        let r = parse_response(body).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.raw(0), r#"{"a":"}{\"[","b":[1,{"c":[]}],"d":-0.5e+3}"#);
        assert_eq!(r.row(0).unwrap()["a"], "}{\"[");
        assert_eq!(r.raw(1), r#"{"a":true,"b":[false,null,{}]}"#);
        assert_eq!(r.raw(2), "{}");
        assert_eq!(r.schema, vec![("a".to_string(), "String".to_string())], "the schema may come last");
        assert!(parse_response(r#"{"results":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn a_body_that_is_not_json_anywhere_is_an_error_that_says_where() {
        for (body, says) in [
            (r#"{"results":[{"a":1}"#, "ends early"),
            (r#"{"results":[{"a":"x}]}"#, "never ends"),
            (r#"{"results":[{"a":"x\\"#, "never ends"),
            (r#"{"results":[{"a":1} {"a":2}]}"#, "`,` or `]` after a result"),
            (r#"{"results":[{"a":[1}]}"#, "`,` or `]` in an array"),
            (r#"{"results":[{"a":1]}"#, "`,` or `}` in an object"),
            (r#"{"results":[{"a" 1}]}"#, "expected `:`"),
            (r#"{"results":[{1:1}]}"#, "expected `\"`"),
            (r#"{"results":[{"a":1,}]}"#, "expected `\"`"),
            (r#"{"results":[]} x"#, "more after the answer"),
            (r#"{"results":[,]}"#, "expected a value"),
            (r#"{"results":[{"a":tru}]}"#, "expected a value at byte 17"),
            (r#"{"results":[{"a":nul}]}"#, "expected a value"),
            (r#"{"results":[{"a":truex}]}"#, "`,` or `}` in an object"),
            (r#"{"results":[{"a":01}]}"#, "`,` or `}` in an object"),
            (r#"{"results":[{"a":-}]}"#, "a number at byte 17"),
            (r#"{"results":[{"a":1.}]}"#, "a number at byte 17"),
            (r#"{"results":[{"a":1e}]}"#, "a number at byte 17"),
            (r#"{"results":[{"a":.5}]}"#, "expected a value"),
            (r#"{"results":[{"a":"\x"}]}"#, "an escape that JSON does not have, at byte 18"),
            (r#"{"results":[{"a":"\u12G4"}]}"#, "an escape that JSON does not have"),
            (
                "{\"results\":[{\"a\":\"caf\u{0}\"}]}",
                "control character (U+0000) that is not escaped, at byte 21",
            ),
            ("{\"results\":[{\"a\":\"two\nlines\"}]}", "control character (U+000A)"),
            (r#"["results"]"#, "expected `{`"),
            (r#"{"schema":{"name":1},"results":[]}"#, "its schema"),
        ] {
            let e = parse_response(body).unwrap_err().to_string();
            assert!(e.contains(says), "{body}: {e}");
            assert!(e.contains("not valid hunting results"), "{body}: {e}");
        }
        // What JSON allows, though, is taken: every escape, white space
        // between tokens, numbers of every form.
        let r = parse_response(
            "{ \"results\" :\r\n[ { \"a\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\" , \"b\" : [ -0 , 0.25 , 1E5 , 2e-3 , 12 ] } ] }",
        )
        .unwrap();
        assert_eq!(r.row(0).unwrap()["a"], "\"\\/\u{8}\u{c}\n\r\té😀");
    }

    #[test]
    fn nesting_of_any_depth_is_followed_without_overflowing() {
        let deep = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
        let body = format!(r#"{{"results":[{{"a":{deep}}},{{"b":2}}]}}"#);
        let r = parse_response(body).unwrap();
        assert_eq!(r.len(), 2);
        // Too deep to be read into values: that row alone is refused.
        assert!(r.row(0).is_err());
        assert_eq!(r.row(1).unwrap()["b"], 2);
        let open = format!(r#"{{"results":[{{"a":{}1}}]}}"#, "[".repeat(200_000));
        assert!(parse_response(open).unwrap_err().to_string().contains("in an array"));
    }

    #[test]
    fn rows_one_per_line_are_checked_line_by_line() {
        let mut input = b"{\"a\":1}\r\n\n  {\"a\":2}  \n{\"a\":tru}\n[1]\n{\"a\":\"caf\xe9\"}\n{\"a\":3} x\n{\"a\":4}".to_vec();
        input.extend_from_slice(b"\n");
        let r = from_lines(input).unwrap();
        let rows: Vec<&str> = (0..r.len()).map(|i| r.raw(i)).collect();
        assert_eq!(rows, [r#"{"a":1}"#, r#"{"a":2}"#, r#"{"a":4}"#]);
        assert_eq!(r.row(2).unwrap()["a"], 4);
        let says = [
            "line 6 is not UTF-8 text",
            "line 4 is not JSON: expected a value at byte 5",
            "line 5 is not a row but [1]",
            "line 7 is not JSON: there is more after the row, at byte 8",
        ];
        assert_eq!(r.malformed.len(), says.len(), "{:?}", r.malformed);
        for (got, says) in r.malformed.iter().zip(says) {
            assert!(got.starts_with(says), "{got}");
        }
        assert!(from_lines(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_response(b"<html>502 Bad Gateway</html>").unwrap_err().to_string();
        assert!(e.contains("<html>502"), "{e}");
        let e = parse_response(br#"{"schema":[]}"#).unwrap_err().to_string();
        assert!(e.contains("without `results`"), "{e}");
        // Latin-1 where UTF-8 belongs: named, with the position, and the start shown.
        let e = parse_response(&b"{\"schema\":[],\"results\":[{\"a\":\"caf\xe9\"}]}"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("index 33") && e.contains("results"), "{e}");
    }

    #[test]
    fn rows_keep_their_escapes_and_unicode() {
        let body = r#"{"schema":[],"results":[{"Path":"C:\\Windows\\\u00e9\"x\"","Name":"Ωmega ✓"}]}"#;
        let row = parse_response(body).unwrap().row(0).unwrap();
        assert_eq!(row["Path"], "C:\\Windows\\é\"x\"");
        assert_eq!(row["Name"], "Ωmega ✓");
        // A column sent twice keeps its last value, as a JSON object's reader would.
        let twice = parse_response(r#"{"schema":[],"results":[{"A":1,"A":2}]}"#)
            .unwrap()
            .row(0)
            .unwrap();
        assert_eq!((twice.len(), &twice["A"]), (1, &serde_json::json!(2)));
    }

    /// The members serde_json reads from `text` (one object, each value
    /// borrowed as it came), or `None` where it refuses the text.
    fn serde_members(text: &str) -> Option<Vec<(String, String)>> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, &'de serde_json::value::RawValue>()? {
                    members.push((name, value.get().to_string()));
                }
                Ok(members)
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let members = serde::Deserializer::deserialize_map(&mut de, Members).ok()?;
        de.end().ok()?;
        Some(members)
    }

    /// The members [`object_members`] reads, names unescaped; whether it
    /// found an escaped surrogate is checked against a search of the text.
    fn our_members(text: &str) -> Option<Vec<(String, String)>> {
        let mut members = Vec::new();
        let surrogate = object_members(text, |name, escaped, value| {
            assert_eq!(escaped, name.contains('\\'), "{name}");
            let name = serde_json::from_str::<String>(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            members.push((name, value.to_string()));
        })
        .ok()?
        .surrogate;
        assert_eq!(surrogate, has_surrogate_escape(text), "{text}");
        Some(members)
    }

    /// Whether the JSON text `text` holds an escaped surrogate: a `\u`
    /// ended by an odd number of backslashes (in JSON text, backslashes
    /// occur only in strings), then `D800` to `DFFF`.
    fn has_surrogate_escape(text: &str) -> bool {
        let bytes = text.as_bytes();
        (0..bytes.len()).any(|i| {
            let backslashes = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
            bytes[i] == b'u'
                && backslashes % 2 == 1
                && bytes.get(i + 1).is_some_and(|b| b.eq_ignore_ascii_case(&b'd'))
                && bytes.get(i + 2).is_some_and(|b| b"89abcdefABCDEF".contains(b))
        })
    }

    #[test]
    fn a_row_is_compact_only_when_compacting_copies_every_cell_of_it() {
        let compact = |row: &str| {
            let body = format!(r#"{{"schema":[],"results":[ {row} ]}}"#);
            parse_response(body.as_bytes()).unwrap().row_text(0).compact()
        };
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(compact(
            r#"{"a":{"b":[1,-2.5,"x y",true,null,{}]},"c":"C:\\x\u00e9","d":12345678901234567890}"#
        ));
        assert!(compact(&format!(r#"{{"a":{}}}"#, deep(COMPACT_DEPTH))));
        assert!(compact(r#"{"a":[{},[],{"b":{}}],"b":1}"#));
        for (row, why) in [
            (r#"{"a": 1}"#.to_string(), "white space in the row"),
            (r#"{"a":[1, 2]}"#.to_string(), "white space in a cell"),
            (r#"{"a":[1e3]}"#.to_string(), "an exponent"),
            (r#"{"a":[-1.5E-3]}"#.to_string(), "an exponent in capitals"),
            (r#"{"a":[123456789012345678901]}"#.to_string(), "21 characters"),
            (r#"{"a":["\ud83d\ude00"]}"#.to_string(), "an escaped surrogate"),
            (format!(r#"{{"a":{}}}"#, deep(COMPACT_DEPTH + 1)), "too deep"),
            (
                format!(r#"{{"a":{}[]{}}}"#, "[".repeat(COMPACT_DEPTH), "]".repeat(COMPACT_DEPTH)),
                "an empty array too deep",
            ),
        ] {
            assert!(!compact(&row), "{why}");
        }
        // Rows read without the answer's scan are never taken as compact.
        assert!(!RowText::from(r#"{"a":[1]}"#).compact());
    }

    #[test]
    fn a_stream_message_is_located_in_one_scan() {
        let text = r#" { "time": 1, "records" : [
            {"category": "AdvancedHunting-DeviceEvents", "tenantId": "t\u0031", "properties": {"A": 1, "B": "x"}},
            7,
            {"properties": {"C\u0041": 2}, "category": null, "extra": [1, {"a": 2}]},
            {"category": 5, "properties": {}},
            {"category": "x", "category": "y"},
            {"properties": "not a row", "tenantId": "t"}
        ] } "#;
        let m = stream_message(text).unwrap();
        assert_eq!(m.len(), 6);
        let r = m.record(0).unwrap();
        assert_eq!(r.category, Some(r#""AdvancedHunting-DeviceEvents""#));
        assert_eq!(r.tenant_id, Some(r#""t\u0031""#), "the literal, escapes kept");
        let row = r.properties.unwrap();
        assert_eq!(row.text, r#"{"A": 1, "B": "x"}"#);
        let members: Vec<_> = row.members().unwrap().0.collect();
        assert_eq!(members, [("A", "1"), ("B", "\"x\"")], "the row's members noted");
        assert!(!row.compact(), "white space");
        assert_eq!(m.record(1).unwrap_err(), "it is a number, not an object");
        let r = m.record(2).unwrap();
        assert_eq!((r.category, r.tenant_id), (None, None), "null is absent");
        let row = r.properties.unwrap();
        assert!(row.members().is_none(), "a name with an escape: read again when mapped");
        assert_eq!(m.record(3).unwrap_err(), "its `category` is a number, not a string");
        assert_eq!(m.record(4).unwrap_err(), "it holds `category` twice");
        let r = m.record(5).unwrap();
        assert!(r.properties.is_none(), "no row");
        assert_eq!(r.tenant_id, Some("\"t\""));

        let compact = stream_message(r#"{"records":[{"properties":{"A":1}}]}"#).unwrap();
        assert!(compact.record(0).unwrap().properties.unwrap().compact());
        assert!(stream_message(r#"{"records":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn what_is_no_stream_message_says_why() {
        let no_json = |text: &str| matches!(stream_message(text), Err(NotAMessage::NotJson(_)));
        let no_records = |text: &str| match stream_message(text) {
            Err(NotAMessage::NoRecords(why)) => why,
            other => panic!("{text}: {other:?}"),
        };
        assert!(no_json("not json"));
        assert!(no_json(r#"{"records": [{"properties": {"A": }}]}"#), "a broken row");
        assert!(no_json(r#"{"records": [{}] "#), "cut");
        assert!(no_json(r#"{"records": [{}]} x"#), "more after it");
        assert!(no_json(r#"[1, 2"#));
        assert_eq!(no_records("[1]"), "it is not an object");
        assert_eq!(no_records(r#"{"value": []}"#), "it holds no `records` array");
        assert_eq!(no_records(r#"{"records": {}}"#), "it holds no `records` array");
        assert_eq!(no_records(r#"{"records": [], "records": []}"#), "it holds `records` twice");
        let message = r#"{"records": []}"#;
        assert_eq!(stream_message_within(message, 14).unwrap_err(), NotAMessage::TooLarge(15));
        assert!(stream_message_within(message, 15).unwrap().is_empty());
    }

    #[test]
    fn an_empty_container_is_a_level_deep() {
        // As compacting counts: `[]` nests one level, as `[1]` does.
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let shape = |text: &str| object_members(text, |_, _, _| {}).unwrap();
        for (n, compact) in [(COMPACT_DEPTH - 1, true), (COMPACT_DEPTH, false)] {
            assert_eq!(
                shape(&format!(r#"{{"x":{}}}"#, nested(n))).compact,
                compact,
                "{n} levels, empty inside"
            );
            assert_eq!(
                shape(&format!(r#"{{"x":{{"y":{}}}}}"#, nested(n - 1))).compact,
                compact,
                "{n} levels, an object outside"
            );
        }
        assert!(shape(r#"{"x":{},"y":[]}"#).compact);
        assert!(!shape(r#"{"x": 1}"#).compact, "white space");
        assert!(!shape(r#"{"x":1e3}"#).compact, "an exponent");
        assert!(!shape(r#"{"x":"\ud800"}"#).compact, "a surrogate");
    }

    #[test]
    fn escaped_surrogates_are_noted_at_any_depth() {
        let found = |text: &str| object_members(text, |_, _, _| {}).unwrap().surrogate;
        assert!(found(r#"{"a":"\uD83D\uDE00"}"#));
        assert!(found(r#"{"a\udc00":1}"#), "in a name");
        assert!(found(r#"{"a":[{"b":"x\ud800"}]}"#), "nested");
        assert!(!found(r#"{"a":"C:\\ud800","b":"\u00e9"}"#), "an escaped backslash, then text");
        assert!(found(r#"{"a":"C:\\\uDBFF"}"#), "an escaped backslash, then an escape");
    }

    /// `time` as it was first written: the row read by serde_json into a
    /// struct of its `Timestamp` alone.
    fn time_by_serde(text: &str) -> Option<Ticks> {
        #[derive(Deserialize)]
        struct TimeOnly<'a> {
            #[serde(rename = "Timestamp", borrow, default)]
            timestamp: Option<std::borrow::Cow<'a, str>>,
        }
        let t: TimeOnly = serde_json::from_str(text).ok()?;
        Ticks::parse(&t.timestamp?).ok()
    }

    #[test]
    fn a_time_given_twice_counts_by_its_last_value_as_in_the_mapping() {
        let row = r#"{"Timestamp":"2025-01-01T00:00:00Z","Timestamp":"2025-01-02T00:00:00Z"}"#;
        // The second row is longer than a scan notes.
        let long = row.replace('}', &format!(r#","Pad":"{}"}}"#, "x".repeat(70_000)));
        let a = parse_response(format!(r#"{{"results":[{row},{long}]}}"#).into_bytes()).unwrap();
        assert!(a.noted[0].is_some() && a.noted[1].is_none());
        assert_eq!(a.time(0), Ticks::parse("2025-01-02T00:00:00Z").ok());
        assert_eq!(a.time(1), Ticks::parse("2025-01-02T00:00:00Z").ok());
    }

    proptest::proptest! {
        /// A row's time is read from the members the scan noted (or, in a
        /// row it did not note, from the row's members) as serde_json reads
        /// it: wherever it stands, however it is escaped or spaced, and not
        /// at all when it is not a string of a time.
        #[test]
        fn times_are_read_as_serde_json_reads_them(
            before in proptest::collection::vec(object_text(), 0..3),
            time in proptest::sample::select(vec![
                r#""2025-01-01T00:00:00Z""#,
                r#""2025-06-30T23:59:59.1234567Z""#,
                r#""2025-01-01T00:00:00\u005a""#,
                r#""yesterday""#,
                r#""""#,
                "null",
                "17",
                r#"{"a":1}"#,
            ]),
            name in proptest::sample::select(vec![r#""Timestamp""#, r#""Time\u0073tamp""#, r#""timestamp""#]),
            at in 0..3usize,
            gap in proptest::sample::select(vec!["", " ", "\n"]),
            long in proptest::bool::ANY,
            decoys in proptest::sample::subsequence(vec!["Timestamps", "Timestam", "RawTimestamp"], 0..=3),
        ) {
            // Members of other rows' objects, and the time among them.
            let mut members: Vec<String> = before
                .iter()
                .filter_map(|o| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(o).ok())
                .flat_map(|m| m.into_iter().filter(|(k, _)| k != "Timestamp" && k != "timestamp"))
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                .collect();
            members.insert(at.min(members.len()), format!("{name}{gap}:{gap}{time}"));
            // Names the time's name begins or ends, after it: not the time.
            for decoy in decoys {
                members.push(format!(r#""{decoy}":"2024-01-01T00:00:00Z""#));
            }
            if long {
                // Rows longer than 64 KiB are not noted: read by scanning.
                members.push(format!(r#""Pad":"{}""#, "x".repeat(70_000)));
            }
            let row = format!("{{{}}}", members.join(&format!(",{gap}")));
            let a = parse_response(format!(r#"{{"results":[{row}]}}"#).into_bytes()).unwrap();
            prop_assert!(!long || a.noted[0].is_none(), "a long row was noted");
            prop_assert_eq!(a.time(0), time_by_serde(&row), "{}", row);
        }
    }

    use proptest::prelude::*;

    /// JSON text of an object, with white space of every kind between its
    /// tokens, strings with escapes and every kind of value.
    fn object_text() -> impl Strategy<Value = String> {
        let gap = proptest::sample::select(vec!["", " ", "\n\t ", "\r\n"]);
        let string = "[a\"\\\\/é\u{1}\n{}\\[\\],:]{0,5}".prop_map(|s| serde_json::to_string(&s).unwrap());
        let escapes =
            proptest::sample::select(vec![r#""\u00e9\/\b""#, r#""\uD83D\uDE00""#, r#""C:\\x""#, r#""C:\\ud800""#]).prop_map(String::from);
        let scalar = proptest::prop_oneof![
            string.clone(),
            escapes,
            proptest::sample::select(vec![
                "0",
                "-0",
                "12",
                "-1.5",
                "2.5e-3",
                "1E+400",
                "18446744073709551616",
                "true",
                "false",
                "null"
            ])
            .prop_map(String::from),
        ];
        let value = scalar.prop_recursive(3, 12, 4, move |inner| {
            proptest::prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(inner, 0..3).prop_map(|v| {
                    let members: Vec<String> = v.iter().enumerate().map(|(i, v)| format!("\"k{i}\":{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        (proptest::collection::vec((string, value), 0..5), gap).prop_map(|(members, gap)| {
            let members: Vec<String> = members.iter().map(|(k, v)| format!("{gap}{k}{gap}:{gap}{v}{gap}")).collect();
            format!("{gap}{{{}}}{gap}", members.join(","))
        })
    }

    proptest::proptest! {
        /// The answer's scan reads an object's members as serde_json does,
        /// and refuses what it refuses, whatever one byte changed.
        #[test]
        fn members_are_read_as_serde_json_reads_them(
            text in object_text(),
            at in proptest::num::usize::ANY,
            change in proptest::option::of(proptest::sample::select(vec!["", "\"", "\\", ",", ":", "{", "}", "[", "]", "x", "0", ".", "e", " ", "\u{0}"])),
        ) {
            let text = match change {
                Some(byte) => {
                    let mut cut = at % (text.len() + 1);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let rest = text[cut..].chars().skip(1).collect::<String>();
                    format!("{}{byte}{rest}", &text[..cut])
                }
                None => text,
            };
            prop_assert_eq!(our_members(&text), serde_members(&text), "{}", text);
        }
    }
}
