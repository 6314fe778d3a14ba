//! DeviceProcessEvents → 1007 Process Activity, written directly: the
//! engine's mapping of the table (`device::DEVICE_PROCESS_EVENTS`, its
//! field lists `DEVICE`, `NEW_PROCESS`, `INITIATING_PROCESS` and
//! `finish_process_events` with the common finish steps it calls), in code.
//! A change to one must be made to the other; the tests in `tests.rs` fail
//! until both agree.

use super::{
    Cells, J, Written, boolean, close, email, int, key, member, string, text, text_member, ticks, time, write_str, write_unmapped,
};
use crate::mapping::engine::{Context, integrity_id};
use crate::mapping::{Table, common, ocsf};
use serde_json::value::RawValue;
use std::borrow::Cow;

macro_rules! columns {
    ($($c:ident),* $(,)?) => {
        /// The columns the mapping reads, one slot each.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        enum C { $($c),* }
        const NAMES: &[&str] = &[$(stringify!($c)),*];
        /// The slot of a column, if the mapping reads it.
        fn slot(name: &str) -> Option<usize> {
            match name {
                $(stringify!($c) => Some(C::$c as usize),)*
                _ => None,
            }
        }
    };
}

columns!(
    Timestamp,
    DeviceId,
    DeviceName,
    MachineGroup,
    ActionType,
    ReportId,
    ProcessId,
    ProcessUniqueId,
    FileName,
    FolderPath,
    ProcessCommandLine,
    ProcessCreationTime,
    ProcessIntegrityLevel,
    MD5,
    SHA1,
    SHA256,
    FileSize,
    ProcessVersionInfoCompanyName,
    ProcessVersionInfoProductName,
    ProcessVersionInfoProductVersion,
    ProcessVersionInfoFileDescription,
    ProcessVersionInfoOriginalFileName,
    AccountName,
    AccountDomain,
    AccountSid,
    AccountObjectId,
    AccountUpn,
    LogonId,
    InitiatingProcessId,
    InitiatingProcessUniqueId,
    InitiatingProcessFileName,
    InitiatingProcessFolderPath,
    InitiatingProcessCommandLine,
    InitiatingProcessCreationTime,
    InitiatingProcessMD5,
    InitiatingProcessSHA1,
    InitiatingProcessSHA256,
    InitiatingProcessFileSize,
    InitiatingProcessVersionInfoCompanyName,
    InitiatingProcessVersionInfoProductName,
    InitiatingProcessVersionInfoProductVersion,
    InitiatingProcessVersionInfoFileDescription,
    InitiatingProcessVersionInfoOriginalFileName,
    InitiatingProcessIntegrityLevel,
    InitiatingProcessAccountName,
    InitiatingProcessAccountDomain,
    InitiatingProcessAccountSid,
    InitiatingProcessAccountObjectId,
    InitiatingProcessAccountUpn,
    InitiatingProcessLogonId,
    IsInitiatingProcessRemoteSession,
    InitiatingProcessParentId,
    InitiatingProcessParentFileName,
    InitiatingProcessParentCreationTime,
);
const SLOTS: usize = NAMES.len();

/// The columns of one process (the new one, or the initiating one).
struct ProcessColumns {
    pid: C,
    uid: C,
    name: C,
    folder: C,
    cmd_line: C,
    created: C,
    integrity: C,
    hashes: [C; 3],
    size: C,
    company: C,
    product: C,
    version: C,
    desc: C,
    internal_name: C,
    user: [C; 5],
}

const NEW_PROCESS: ProcessColumns = ProcessColumns {
    pid: C::ProcessId,
    uid: C::ProcessUniqueId,
    name: C::FileName,
    folder: C::FolderPath,
    cmd_line: C::ProcessCommandLine,
    created: C::ProcessCreationTime,
    integrity: C::ProcessIntegrityLevel,
    hashes: [C::MD5, C::SHA1, C::SHA256],
    size: C::FileSize,
    company: C::ProcessVersionInfoCompanyName,
    product: C::ProcessVersionInfoProductName,
    version: C::ProcessVersionInfoProductVersion,
    desc: C::ProcessVersionInfoFileDescription,
    internal_name: C::ProcessVersionInfoOriginalFileName,
    user: [C::AccountName, C::AccountDomain, C::AccountSid, C::AccountObjectId, C::AccountUpn],
};

const INITIATING_PROCESS: ProcessColumns = ProcessColumns {
    pid: C::InitiatingProcessId,
    uid: C::InitiatingProcessUniqueId,
    name: C::InitiatingProcessFileName,
    folder: C::InitiatingProcessFolderPath,
    cmd_line: C::InitiatingProcessCommandLine,
    created: C::InitiatingProcessCreationTime,
    integrity: C::InitiatingProcessIntegrityLevel,
    hashes: [C::InitiatingProcessMD5, C::InitiatingProcessSHA1, C::InitiatingProcessSHA256],
    size: C::InitiatingProcessFileSize,
    company: C::InitiatingProcessVersionInfoCompanyName,
    product: C::InitiatingProcessVersionInfoProductName,
    version: C::InitiatingProcessVersionInfoProductVersion,
    desc: C::InitiatingProcessVersionInfoFileDescription,
    internal_name: C::InitiatingProcessVersionInfoOriginalFileName,
    user: [
        C::InitiatingProcessAccountName,
        C::InitiatingProcessAccountDomain,
        C::InitiatingProcessAccountSid,
        C::InitiatingProcessAccountObjectId,
        C::InitiatingProcessAccountUpn,
    ],
};

/// A row's cells, by column.
struct Row<'de>(Cells<'de, SLOTS>);

impl<'de> Row<'de> {
    fn raw(&self, c: C) -> Option<&'de str> {
        self.0.raw(c as usize)
    }

    fn cell(&self, c: C) -> Option<&'de RawValue> {
        self.0.cells[c as usize]
    }

    /// Takes the cell of `c` through `conv` (see [`Cells::take`]).
    fn take<T>(&mut self, c: C, conv: impl FnOnce(&'de str) -> Option<T>) -> Option<T> {
        self.0.take(c as usize, NAMES[c as usize], conv)
    }
}

#[derive(Default)]
struct File<'a> {
    name: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    parent_folder: Option<String>,
    hashes: [Option<J<'a>>; 3],
    size: Option<J<'a>>,
    company: Option<J<'a>>,
    product: Option<J<'a>>,
    version: Option<J<'a>>,
    desc: Option<J<'a>>,
    internal_name: Option<J<'a>>,
}

impl File<'_> {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.path.is_none()
            && self.hashes.iter().all(Option::is_none)
            && self.size.is_none()
            && self.company.is_none()
            && self.product.is_none()
            && self.version.is_none()
            && self.desc.is_none()
            && self.internal_name.is_none()
    }
}

#[derive(Default)]
struct User<'a> {
    /// name, domain, uid, uid_alt, email_addr
    fields: [Option<J<'a>>; 5],
}

const USER_KEYS: [&str; 5] = ["name", "domain", "uid", "uid_alt", "email_addr"];

#[derive(Default)]
struct Process<'a> {
    pid: Option<J<'a>>,
    uid: Option<J<'a>>,
    cmd_line: Option<J<'a>>,
    created_time: Option<J<'a>>,
    integrity: Option<(J<'a>, u32)>,
    /// Emptied when the file moves to `unmapped`.
    file: File<'a>,
    user: User<'a>,
    /// `process.session.uid` (the new process only).
    session_uid: Option<J<'a>>,
    /// The parent's pid, name and created_time (the initiating process only).
    parent: [Option<J<'a>>; 3],
}

impl<'a> Process<'a> {
    fn take(row: &mut Row<'a>, cols: &ProcessColumns) -> Self {
        let mut p = Process {
            pid: row.take(cols.pid, int),
            uid: row.take(cols.uid, string),
            ..Process::default()
        };
        p.file.name = row.take(cols.name, text);
        p.file.path = row.take(cols.folder, text);
        p.cmd_line = row.take(cols.cmd_line, string);
        p.created_time = row.take(cols.created, time);
        p.integrity = row.take(cols.integrity, |raw| {
            let level = text(raw)?;
            Some((string(raw)?, integrity_id(&level)))
        });
        for (slot, c) in p.file.hashes.iter_mut().zip(cols.hashes) {
            *slot = row.take(c, string);
        }
        p.file.size = row.take(cols.size, int);
        p.file.company = row.take(cols.company, string);
        p.file.product = row.take(cols.product, string);
        p.file.version = row.take(cols.version, string);
        p.file.desc = row.take(cols.desc, string);
        p.file.internal_name = row.take(cols.internal_name, string);
        for (i, c) in cols.user.into_iter().enumerate() {
            p.user.fields[i] = row.take(c, if i == 4 { email } else { string });
        }
        p
    }

    fn is_empty(&self) -> bool {
        self.pid.is_none() && self.nothing_but_pid()
    }

    /// Only `pid: 0`: Defender's "no such process".
    fn is_unknown(&self) -> bool {
        matches!(self.pid, Some(J::Int(0))) && self.nothing_but_pid()
    }

    fn nothing_but_pid(&self) -> bool {
        self.uid.is_none()
            && self.cmd_line.is_none()
            && self.created_time.is_none()
            && self.integrity.is_none()
            && self.file.is_empty()
            && self.user.fields.iter().all(Option::is_none)
            && self.session_uid.is_none()
            && self.parent.iter().all(Option::is_none)
    }

    /// `common::finish_process` (with `finish_file`): `moved`
    /// collects what OCSF would reject, under its path below `unmapped`.
    fn finish(&mut self, path: &str, moved: &mut Vec<(String, Vec<u8>)>) {
        if self.is_empty() {
            return;
        }
        let file = &mut self.file;
        if !file.is_empty() {
            let name = file.name.clone();
            if let Some(full) = file.path.clone() {
                let sep = if full.contains('\\') { '\\' } else { '/' };
                let full = match &name {
                    Some(n) if !ends_with_ignoring_case(&full, n) => {
                        let joined = format!("{}{sep}{n}", full.trim_end_matches(sep));
                        file.path = Some(Cow::Owned(joined.clone()));
                        Cow::Owned(joined)
                    }
                    _ => full,
                };
                if let Some(i) = full.rfind(sep) {
                    if i > 0 {
                        file.parent_folder = Some(full[..i].to_string());
                    }
                    if name.is_none() && i + 1 < full.len() {
                        file.name = Some(Cow::Owned(full[i + 1..].to_string()));
                    }
                }
            }
            if file.product.is_none() && file.version.is_some() {
                let mut product = Vec::new();
                write_product(&mut product, None, file.version.as_ref());
                moved.push((format!("{path}.file.product"), product));
                file.version = None;
            }
            if file.name.is_none() {
                let mut object = Vec::new();
                write_file(&mut object, file);
                moved.push((format!("{path}.file"), object));
                self.file = File::default();
            }
        }
        let user = &self.user.fields;
        if user.iter().any(Option::is_some) && user[0].is_none() && user[2].is_none() {
            let mut object = Vec::new();
            write_user(&mut object, &self.user);
            moved.push((format!("{path}.user"), object));
            self.user = User::default();
        }
        let [pid, ..] = &self.parent;
        let parent_set = self.parent.iter().any(Option::is_some);
        let parent_unknown = matches!(pid, Some(J::Int(0))) && self.parent[1..].iter().all(Option::is_none);
        if parent_unknown {
            self.parent = Default::default();
        } else if parent_set && pid.is_none() {
            let mut object = Vec::new();
            write_parent(&mut object, &self.parent);
            moved.push((format!("{path}.parent_process"), object));
            self.parent = Default::default();
        }
        if !self.is_empty() && self.pid.is_none() && self.uid.is_none() {
            let mut object = Vec::new();
            self.write(&mut object, None);
            moved.push((path.to_string(), object));
            *self = Process::default();
        }
    }

    /// The process object; `parent` is the event's `process.parent_process`.
    fn write(&self, out: &mut Vec<u8>, parent: Option<&[u8]>) {
        out.push(b'{');
        member(out, "pid", self.pid.as_ref());
        member(out, "uid", self.uid.as_ref());
        member(out, "cmd_line", self.cmd_line.as_ref());
        member(out, "created_time", self.created_time.as_ref());
        if let Some((level, id)) = &self.integrity {
            member(out, "integrity", Some(level));
            member(out, "integrity_id", Some(&J::Int(i64::from(*id))));
        }
        if !self.file.is_empty() {
            text_member(out, "name", self.file.name.as_deref());
            text_member(out, "path", self.file.path.as_deref());
            key(out, "file");
            write_file(out, &self.file);
            out.push(b',');
        }
        if self.user.fields.iter().any(Option::is_some) {
            key(out, "user");
            write_user(out, &self.user);
            out.push(b',');
        }
        if let Some(uid) = &self.session_uid {
            key(out, "session");
            out.push(b'{');
            member(out, "uid", Some(uid));
            close(out);
            out.push(b',');
        }
        if self.parent.iter().any(Option::is_some) {
            key(out, "parent_process");
            write_parent(out, &self.parent);
            out.push(b',');
        }
        if let Some(parent) = parent {
            key(out, "parent_process");
            out.extend_from_slice(parent);
            out.push(b',');
        }
        close(out);
    }
}

/// `full.to_lowercase().ends_with(&name.to_lowercase())` without the copies
/// when both are ASCII.
fn ends_with_ignoring_case(full: &str, name: &str) -> bool {
    if full.is_ascii() && name.is_ascii() {
        full.len() >= name.len() && full.as_bytes()[full.len() - name.len()..].eq_ignore_ascii_case(name.as_bytes())
    } else {
        full.to_lowercase().ends_with(&name.to_lowercase())
    }
}

fn write_product(out: &mut Vec<u8>, name: Option<&J>, version: Option<&J>) {
    out.push(b'{');
    member(out, "name", name);
    member(out, "version", version);
    close(out);
}

fn write_file(out: &mut Vec<u8>, file: &File) {
    out.push(b'{');
    if let Some(name) = &file.name {
        key(out, "name");
        write_str(out, name);
        out.push(b',');
        member(out, "type_id", Some(&J::Int(1)));
        member(out, "type", Some(&J::Lit("\"Regular File\"")));
    }
    text_member(out, "path", file.path.as_deref());
    text_member(out, "parent_folder", file.parent_folder.as_deref());
    if file.hashes.iter().any(Option::is_some) {
        key(out, "hashes");
        out.push(b'[');
        for (algorithm_id, hash) in (1..).zip(&file.hashes) {
            if let Some(hash) = hash {
                out.extend_from_slice(b"{\"algorithm_id\":");
                out.extend_from_slice(itoa::Buffer::new().format(algorithm_id).as_bytes());
                out.extend_from_slice(b",\"value\":");
                hash.write(out);
                out.extend_from_slice(b"},");
            }
        }
        *out.last_mut().unwrap() = b']';
        out.push(b',');
    }
    member(out, "size", file.size.as_ref());
    member(out, "company_name", file.company.as_ref());
    if file.product.is_some() || file.version.is_some() {
        key(out, "product");
        write_product(out, file.product.as_ref(), file.version.as_ref());
        out.push(b',');
    }
    member(out, "desc", file.desc.as_ref());
    member(out, "internal_name", file.internal_name.as_ref());
    close(out);
}

fn write_user(out: &mut Vec<u8>, user: &User) {
    out.push(b'{');
    for (name, value) in USER_KEYS.iter().zip(&user.fields) {
        member(out, name, value.as_ref());
    }
    close(out);
}

fn write_parent(out: &mut Vec<u8>, parent: &[Option<J>; 3]) {
    out.push(b'{');
    for (name, value) in ["pid", "name", "created_time"].iter().zip(parent) {
        member(out, name, value.as_ref());
    }
    close(out);
}

/// Writes the event of one DeviceProcessEvents row (JSON text) to `out`;
/// `None` for a row the engine is to map (see the module above).
pub(super) fn write(table: &'static Table, json: &str, ctx: &Context, out: &mut Vec<u8>) -> Option<Written> {
    let mut row = Row(Cells::read(json, slot)?);
    // Without a usable Timestamp the engine rejects the row, or gives it the
    // collection time.
    let timestamp = row.raw(C::Timestamp).filter(|raw| raw.starts_with('"'))?;
    let ticks = ticks(timestamp)?;
    let uid = super::row_uid(table, &row.0, slot, ticks)?;
    let action_type: Option<Cow<str>> = match row.raw(C::ActionType) {
        Some(raw) if raw.starts_with('"') => Some(text(raw)?),
        Some(raw) => Some(Cow::Owned(serde_json::from_str::<serde_json::Value>(raw).ok()?.to_string())),
        None => None,
    };
    let (activity, is_fallback) = table.activity(action_type.as_deref());
    // The shape written below, and nothing that would change it.
    let replaced = ctx.no_deprecated_classes && activity.successor.is_some();
    if activity.class_uid != 1007 || activity.shape.is_some() || !activity.sets.is_empty() || replaced {
        return None;
    }
    let class = ocsf::class(activity.class_uid);
    let activity_name = match (&action_type, activity.activity_id, is_fallback) {
        (Some(a), 99, _) | (Some(a), _, true) => a.clone(),
        _ => Cow::Borrowed(class.activity_name(activity.activity_id)),
    };
    let time_ms = ticks.div_euclid(crate::time::TICKS_PER_MS);

    out.extend_from_slice(b"{\"class_uid\":");
    J::Int(i64::from(activity.class_uid)).write(out);
    out.extend_from_slice(b",\"class_name\":");
    write_str(out, class.name);
    out.extend_from_slice(b",\"category_uid\":");
    J::Int(i64::from(class.category_uid)).write(out);
    out.extend_from_slice(b",\"category_name\":");
    write_str(out, ocsf::category_name(class.category_uid));
    out.extend_from_slice(b",\"activity_id\":");
    J::Int(i64::from(activity.activity_id)).write(out);
    out.extend_from_slice(b",\"type_uid\":");
    J::Int(i64::from(activity.class_uid) * 100 + i64::from(activity.activity_id)).write(out);
    out.extend_from_slice(b",\"type_name\":");
    write_str(out, &[class.name, ": ", &activity_name].concat());
    out.extend_from_slice(b",\"activity_name\":");
    write_str(out, &activity_name);
    out.extend_from_slice(b",\"severity_id\":1,\"severity\":\"Informational\",\"time\":");
    J::Int(time_ms).write(out);
    if let Some(status_id) = activity.status_id {
        out.extend_from_slice(b",\"status_id\":");
        J::Int(i64::from(status_id)).write(out);
        out.extend_from_slice(b",\"status\":");
        write_str(out, ocsf::status_name(status_id));
    }
    out.extend_from_slice(b",\"metadata\":{\"version\":");
    write_str(out, ocsf::VERSION);
    out.extend_from_slice(b",\"product\":{\"name\":");
    write_str(out, table.product.name());
    out.extend_from_slice(b",\"vendor_name\":\"Microsoft\"},\"log_name\":");
    write_str(out, table.name);
    out.extend_from_slice(b",\"original_time\":");
    out.extend_from_slice(timestamp.as_bytes());
    out.extend_from_slice(b",\"uid\":");
    write_str(out, &uid);
    if let Some(a) = &action_type {
        out.extend_from_slice(b",\"event_code\":");
        write_str(out, a);
    }
    if let Some(raw) = row.raw(C::ReportId) {
        match raw.as_bytes()[0] {
            b'"' => {
                out.extend_from_slice(b",\"original_event_uid\":");
                out.extend_from_slice(raw.as_bytes());
            }
            b'-' | b'0'..=b'9' => {
                out.extend_from_slice(b",\"original_event_uid\":");
                string(raw)?.write(out);
            }
            _ => row.0.rest.push(("ReportId", row.cell(C::ReportId)?)),
        }
    }

    if let Some(tenant) = &ctx.tenant_uid {
        out.extend_from_slice(b",\"tenant_uid\":");
        write_str(out, tenant);
    }

    // The processes and their finish steps, before `metadata` closes: its
    // labels depend on them. The new process, then the initiating one (the
    // field lists' order).
    let mut process = Process::take(&mut row, &NEW_PROCESS);
    process.session_uid = row.take(C::LogonId, string);
    let mut initiating = Process::take(&mut row, &INITIATING_PROCESS);
    let session_uid = row.take(C::InitiatingProcessLogonId, string);
    let is_remote = row.take(C::IsInitiatingProcessRemoteSession, boolean);
    initiating.parent = [
        row.take(C::InitiatingProcessParentId, int),
        row.take(C::InitiatingProcessParentFileName, string),
        row.take(C::InitiatingProcessParentCreationTime, time),
    ];

    let mut moved = Vec::new();
    process.finish("process", &mut moved);
    // finish_actor: the actor's user is the initiating process's, copied
    // before the process may go.
    let actor_user = User {
        fields: initiating.user.fields.clone(),
    };
    let had_user = actor_user.fields.iter().any(Option::is_some);
    if initiating.is_unknown() {
        initiating = Process::default();
    }
    initiating.finish("actor.process", &mut moved);
    if initiating.is_unknown() {
        initiating = Process::default();
    }
    let mut actor_user = if had_user { Some(actor_user) } else { None };
    if let Some(user) = actor_user.take_if(|u| u.fields[0].is_none() && u.fields[2].is_none()) {
        let mut object = Vec::new();
        write_user(&mut object, &user);
        moved.push(("actor.user".to_string(), object));
    }
    // unknown_process: OCSF requires a process; Defender's "none" stands in.
    let process_unknown = process.is_empty();
    if process_unknown {
        process.pid = Some(J::Int(0));
    }

    // device (DEVICE and finish_device)
    let device_uid = row.take(C::DeviceId, string);
    let hostname = row.take(C::DeviceName, text);
    let group = row.take(C::MachineGroup, string);
    let has_device = device_uid.is_some() || hostname.is_some() || group.is_some();
    if has_device {
        out.extend_from_slice(b",\"profiles\":[\"host\"]");
    }
    if process_unknown {
        out.extend_from_slice(b",\"labels\":[\"process-unknown\"]");
    }
    out.extend_from_slice(b"},");
    if has_device {
        out.extend_from_slice(b"\"device\":{");
        member(out, "uid", device_uid.as_ref());
        if let Some(host) = &hostname {
            key(out, "hostname");
            write_str(out, host);
            out.push(b',');
            match host.split_once('.') {
                Some((name, domain)) if !name.is_empty() && !domain.is_empty() => {
                    key(out, "name");
                    write_str(out, name);
                    out.extend_from_slice(b",\"domain\":");
                    write_str(out, domain);
                    out.push(b',');
                }
                _ => {
                    key(out, "name");
                    write_str(out, host);
                    out.push(b',');
                }
            }
        }
        if let Some(group) = &group {
            out.extend_from_slice(b"\"groups\":[{\"name\":");
            group.write(out);
            out.extend_from_slice(b"}],");
        }
        out.extend_from_slice(b"\"type_id\":0,\"type\":\"Unknown\"},");
    }

    let mut actor = Vec::new();
    let has_actor_process = !initiating.is_empty();
    if has_actor_process {
        initiating.write(&mut actor, None);
    }
    let windows = process.file.path.as_deref().is_some_and(common::is_windows_path);
    key(out, "process");
    process.write(out, has_actor_process.then_some(actor.as_slice()));
    out.push(b',');
    if has_actor_process || actor_user.is_some() || session_uid.is_some() || is_remote.is_some() {
        out.extend_from_slice(b"\"actor\":{");
        if has_actor_process {
            key(out, "process");
            out.extend_from_slice(&actor);
            out.push(b',');
        }
        if let Some(user) = &actor_user {
            key(out, "user");
            write_user(out, user);
            out.push(b',');
        }
        if session_uid.is_some() || is_remote.is_some() {
            out.extend_from_slice(b"\"session\":{");
            member(out, "uid", session_uid.as_ref());
            member(out, "is_remote", is_remote.as_ref());
            close(out);
            out.push(b',');
        }
        close(out);
        out.push(b',');
    } else {
        // actor_or_sensor: OCSF requires an actor; the sensor reported the row.
        out.extend_from_slice(b"\"actor\":{\"app_name\":");
        write_str(out, table.product.name());
        out.extend_from_slice(b"},");
    }
    if windows && activity.activity_id == 1 {
        out.extend_from_slice(b"\"launch_type_id\":1,\"launch_type\":\"Spawn\",");
    }
    write_unmapped(out, &row.0.rest, moved)?;
    close(out);
    out.push(b'\n');
    Some(Written {
        table: table.name,
        class_uid: activity.class_uid,
        time_ms,
        uid,
    })
}
