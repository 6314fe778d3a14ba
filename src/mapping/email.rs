//! The Email* tables and UrlClickEvents of Defender for Office 365
//! (guide §16–§20). `NetworkMessageId` is the message's id everywhere
//! (`email.uid`, or the deprecated `email_uid`); `InternetMessageId` is the
//! RFC 5322 Message-ID (`email.message_uid`). Never the other way round.

use super::common;
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::fold;
use super::table::{ALWAYS, Activity, Join, Product, Shape, Table};
use super::value::{Obj, V};
use serde_json::{Value, json};

const EMAIL_KEY: &[&str] = &["NetworkMessageId", "RecipientEmailAddress", "Timestamp", "ReportId"];

const MESSAGE: &[Field] = &[
    f("NetworkMessageId", "email.uid", Str),
    f("InternetMessageId", "email.message_uid", Str),
    f("SenderFromAddress", "email.from", Email),
    f("SenderMailFromAddress", "email.smtp_from", Email),
    f("RecipientEmailAddress", "email.to", EmailItem),
    f("Subject", "email.subject", Str),
    f("SenderIPv4", "src_endpoint.ip", Ip),
];

// ---------------------------------------------------------------------------
// EmailEvents → 4009 Email Activity (guide §16)
// ---------------------------------------------------------------------------

static EMAIL: Shape = Shape {
    fields: &[MESSAGE],
    finish: finish_email_events,
    gives: &[("direction_id", ALWAYS)],
};

pub static EMAIL_EVENTS: Table = Table {
    name: "EmailEvents",
    product: Product::Office365,
    key: EMAIL_KEY,
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(4009, 2),
    shape: &EMAIL,
    join: None,
    licence: None,
};

fn finish_email_events(e: &mut Event, _ctx: &Context) {
    e.copy("email.uid", "message_trace_uid");
    // One `src_endpoint.ip`: the IPv4 address when there is one; an IPv6
    // address beside it stays under `unmapped`.
    if e.get("src_endpoint.ip").is_none() {
        e.map_column("SenderIPv6", "src_endpoint.ip", Ip);
    }
    match e.take_string("EmailDirection").as_deref() {
        Some("Outbound") => {
            e.set("direction_id", 2);
            e.set_activity(1);
        }
        Some("Inbound") => e.set("direction_id", 1),
        Some("Intra-org") => e.set("direction_id", 3),
        Some(other) => {
            e.set("direction_id", 99);
            e.set("direction", other.to_string());
        }
        None => e.set("direction_id", 0),
    }
    let (disposition, action) = match e.column_text("DeliveryAction").as_deref() {
        Some("Delivered") => (Some(1), Some(1)),
        Some("Blocked") => (Some(2), Some(2)),
        Some("Junked") => (Some(18), Some(4)),
        Some("Replaced") => (Some(11), Some(4)),
        _ => (None, None),
    };
    if let (Some(d), Some(a)) = (disposition, action) {
        e.drop_column("DeliveryAction");
        e.set("disposition_id", d);
        e.set("action_id", a);
    }
    if e.column_text("DeliveryLocation").as_deref() == Some("Quarantine") {
        e.set("disposition_id", 3);
    }
    if e.column_text("DeliveryLocation").as_deref() == Some("Failed") {
        e.set("status_id", 2);
        e.set("status", "Failure");
    }
    authentication(e);
    threats(e);
    finish_email_object(e);
}

/// `AuthenticationDetails` ({"SPF":"pass","DKIM":...}) to `email_auth`.
fn authentication(e: &mut Event) {
    let Some(Value::Object(mut details)) = e.column("AuthenticationDetails", Json) else {
        return;
    };
    for (key, path) in [
        ("SPF", "email_auth.spf"),
        ("DKIM", "email_auth.dkim"),
        ("DMARC", "email_auth.dmarc"),
    ] {
        if let Some(Value::String(v)) = details.remove(key) {
            e.set(path, v);
        }
    }
    e.drop_column("AuthenticationDetails");
    if !details.is_empty() {
        e.put_column("AuthenticationDetails", Value::Object(details));
    }
}

/// Malware named by the verdict becomes `malware[]`.
fn threats(e: &mut Event) {
    let types = e
        .column("ThreatTypes", Str)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if !types.contains("Malware") {
        return;
    }
    if let Some(names) = e.take_string("ThreatNames") {
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            e.push("malware", json!({"name": name, "classification_ids": [0]}));
        }
    }
}

/// `email` needs `from` or `to`; without either it moves to `unmapped`.
fn finish_email_object(e: &mut Event) {
    common::require_any(e, "email", &["from", "to"]);
    common::finish_endpoints(e);
}

// ---------------------------------------------------------------------------
// EmailAttachmentInfo → 4011 Email File Activity (deprecated) or 4009 (guide §17)
// ---------------------------------------------------------------------------

const ATTACHMENT: &[Field] = &[
    f("NetworkMessageId", "email_uid", Str),
    f("FileName", "file.name", Str),
    f("FileType", "file.ext", Str),
    f("SHA256", "file.hashes", Hash(3)),
    f("FileSize", "file.size", Int),
];

const ATTACHMENT_IN_EMAIL: &[Field] = &[
    f("NetworkMessageId", "email.uid", Str),
    f("SenderFromAddress", "email.from", Email),
    f("RecipientEmailAddress", "email.to", EmailItem),
    f("FileName", "file.name", Str),
    f("FileType", "file.ext", Str),
    f("SHA256", "file.hashes", Hash(3)),
    f("FileSize", "file.size", Int),
];

static ATTACHMENT_SHAPE: Shape = Shape {
    fields: &[ATTACHMENT],
    finish: finish_attachment,
    gives: &[],
};
static ATTACHMENT_EMAIL_SHAPE: Shape = Shape {
    fields: &[ATTACHMENT_IN_EMAIL],
    finish: finish_attachment,
    gives: &[],
};
const ATTACHMENT_SCAN: Activity = Activity::new(4009, 3).sets(&[("direction_id", 0)]).shape(&ATTACHMENT_EMAIL_SHAPE);

pub static EMAIL_ATTACHMENT_INFO: Table = Table {
    name: "EmailAttachmentInfo",
    product: Product::Office365,
    key: &[
        "NetworkMessageId",
        "RecipientEmailAddress",
        "SHA256",
        "FileName",
        "Timestamp",
        "ReportId",
    ],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(4011, 3).successor(&ATTACHMENT_SCAN),
    shape: &ATTACHMENT_SHAPE,
    join: Some(Join {
        leader: "EmailEvents",
        only_without_deprecated: true,
        fold: fold_into_messages,
    }),
    licence: None,
};

fn finish_attachment(e: &mut Event, _ctx: &Context) {
    // The file ext is written without its dot.
    if let Some(ext) = e.get_str("file.ext").map(|x| x.trim_start_matches('.').to_string()) {
        e.set("file.ext", ext);
    }
    common::finish_file(e, "file");
    threats(e);
    if e.get("email").is_some() {
        // 4009: the attachment is one of the message's files.
        if let Some(file) = e.root.remove("file") {
            e.push("email.files", file);
        }
        finish_email_object(e);
    }
}

// ---------------------------------------------------------------------------
// EmailUrlInfo → 4012 Email URL Activity (deprecated) (guide §18)
// ---------------------------------------------------------------------------

static URL_SHAPE: Shape = Shape {
    fields: &[&[
        f("NetworkMessageId", "email_uid", Str),
        f("Url", "url.url_string", Str),
        f("UrlDomain", "url.domain", Str),
    ]],
    finish: finish_url,
    gives: &[],
};

pub static EMAIL_URL_INFO: Table = Table {
    name: "EmailUrlInfo",
    product: Product::Office365,
    key: &["NetworkMessageId", "Url", "UrlLocation", "Timestamp", "ReportId"],
    activities: &[],
    prefixes: &[],
    // No standalone successor: 4009 needs the sender or a recipient, which
    // this table does not have. Without deprecated classes its rows fold into
    // their EmailEvents message as `email.urls[]` (`fold_into_messages`).
    fallback: Activity::new(4012, 3),
    shape: &URL_SHAPE,
    join: Some(Join {
        leader: "EmailEvents",
        only_without_deprecated: true,
        fold: fold_into_messages,
    }),
    licence: None,
};

fn finish_url(e: &mut Event, _ctx: &Context) {
    common::require_any(e, "url", &["url_string", "path"]);
}

// ---------------------------------------------------------------------------
// UrlClickEvents → 4012 (deprecated) or 4009 (guide §19)
// ---------------------------------------------------------------------------

static CLICK_SHAPE: Shape = Shape {
    fields: &[&[
        f("NetworkMessageId", "email_uid", Str),
        f("Url", "url.url_string", Str),
        f("AccountUpn", "actor.user.email_addr", Email),
    ]],
    finish: finish_click,
    gives: &[],
};
static CLICK_EMAIL_SHAPE: Shape = Shape {
    fields: &[&[
        f("NetworkMessageId", "email.uid", Str),
        f("Url", "email.urls", Str),
        f("AccountUpn", "email.to", EmailItem),
        f("IPAddress", "src_endpoint.ip", Ip),
    ]],
    finish: finish_click,
    gives: &[("direction_id", &["NetworkMessageId", "Url", "AccountUpn"])],
};

const fn click(disposition_id: i64, action_id: i64) -> (Activity, Activity) {
    let sets: &'static [(&'static str, i64)] = match (disposition_id, action_id) {
        (1, 1) => &[("disposition_id", 1), ("action_id", 1)],
        (2, 2) => &[("disposition_id", 2), ("action_id", 2)],
        (27, _) => &[("disposition_id", 27)],
        _ => &[("disposition_id", 14)],
    };
    (
        Activity::new(4012, 3).sets(sets),
        Activity::new(4009, 3).sets(sets).shape(&CLICK_EMAIL_SHAPE),
    )
}

const ALLOWED: (Activity, Activity) = click(1, 1);
const BLOCKED: (Activity, Activity) = click(2, 2);
const ERROR_PAGE: (Activity, Activity) = click(27, 0);
const SCANNING: (Activity, Activity) = click(14, 0);
const OTHER_CLICK: Activity = Activity::new(4009, 99).shape(&CLICK_EMAIL_SHAPE);

pub static URL_CLICK_EVENTS: Table = Table {
    name: "UrlClickEvents",
    product: Product::Office365,
    key: &["NetworkMessageId", "Url", "AccountUpn", "Timestamp", "ReportId"],
    activities: &[
        ("ClickAllowed", ALLOWED.0.successor(&ALLOWED.1)),
        ("ClickBlocked", BLOCKED.0.successor(&BLOCKED.1)),
        ("ClickBlockedByTenantPolicy", BLOCKED.0.successor(&BLOCKED.1)),
        ("UrlErrorPage", ERROR_PAGE.0.successor(&ERROR_PAGE.1)),
        ("UrlScanInProgress", SCANNING.0.successor(&SCANNING.1)),
    ],
    prefixes: &[],
    fallback: Activity::new(4012, 99).successor(&OTHER_CLICK),
    shape: &CLICK_SHAPE,
    join: None,
    licence: None,
};

fn finish_click(e: &mut Event, _ctx: &Context) {
    if e.get("email").is_some() {
        e.set("direction_id", 0);
        // `email.urls` holds url objects.
        if let Some(u) = e.get("email.urls").filter(|u| u.as_str().is_some()).cloned() {
            e.set(
                "email.urls",
                V::Arr(vec![V::Obj(super::value::Obj(vec![("url_string".into(), u)]))]),
            );
        }
        finish_email_object(e);
    } else {
        common::require_any(e, "url", &["url_string", "path"]);
    }
    if e.get("actor.user").is_some() {
        e.copy("actor.user.email_addr", "actor.user.name");
    }
}

// ---------------------------------------------------------------------------
// EmailPostDeliveryEvents → 4009 Email Activity (guide §20)
// ---------------------------------------------------------------------------

static POST_DELIVERY: Shape = Shape {
    fields: &[&[
        f("NetworkMessageId", "email.uid", Str),
        f("InternetMessageId", "email.message_uid", Str),
        f("RecipientEmailAddress", "email.to", EmailItem),
    ]],
    finish: finish_post_delivery,
    gives: &[],
};

pub static EMAIL_POST_DELIVERY_EVENTS: Table = Table {
    name: "EmailPostDeliveryEvents",
    product: Product::Office365,
    key: &["NetworkMessageId", "RecipientEmailAddress", "ActionType", "Timestamp", "ReportId"],
    activities: &[
        ("Phish ZAP", Activity::new(4009, 3).sets(&[("direction_id", 0)])),
        ("Malware ZAP", Activity::new(4009, 3).sets(&[("direction_id", 0)])),
        ("Spam ZAP", Activity::new(4009, 3).sets(&[("direction_id", 0)])),
        ("Manual remediation", Activity::new(4009, 99).sets(&[("direction_id", 0)])),
    ],
    prefixes: &[],
    fallback: Activity::new(4009, 99).sets(&[("direction_id", 0)]),
    shape: &POST_DELIVERY,
    join: None,
    licence: None,
};

fn finish_post_delivery(e: &mut Event, _ctx: &Context) {
    let disposition = match e.column_text("Action").as_deref() {
        Some("Moved to quarantine") => Some(3),
        Some("Soft delete" | "Hard delete" | "Soft deleted" | "Hard deleted") => Some(5),
        Some("Moved to junk folder" | "Moved to junk") => Some(18),
        Some(_) => Some(99),
        None => None,
    };
    if let Some(d) = disposition {
        if d == 99 {
            e.set("disposition", e.column("Action", Str).unwrap_or_default());
        } else {
            e.drop_column("Action");
        }
        e.set("disposition_id", d);
    }
    match e.column_text("ActionResult").as_deref() {
        Some("Success") => {
            e.drop_column("ActionResult");
            e.set("status_id", 1);
            e.set("status", "Success");
        }
        Some("Error") => {
            e.drop_column("ActionResult");
            e.set("status_id", 2);
            e.set("status", "Failure");
        }
        _ => {}
    }
    finish_email_object(e);
}

/// Folds attachment (4009 `email.files[]`) and URL (4012 `url`) events into
/// every EmailEvents event of the same message (`email.uid`), one per
/// recipient; their left-over columns go under the message's
/// `unmapped.<table>[]`. The positions of the events whose message is not
/// among `messages` are returned: those stand alone.
pub fn fold_into_messages<'a>(messages: &mut [Obj<'a>], events: &mut [Obj<'a>]) -> Vec<usize> {
    let index = fold::index(messages, "email.uid");
    let mut alone = Vec::new();
    for (at, event) in events.iter().enumerate() {
        let targets = fold::leaders_of(&index, event.at("email.uid").or_else(|| event.get("email_uid")));
        if targets.is_empty() {
            alone.push(at);
            continue;
        }
        let table = fold::table_of(event, "joined");
        for &i in targets {
            let message = &mut messages[i];
            let Some(V::Obj(email)) = message.get_mut("email") else {
                continue;
            };
            if let Some(V::Arr(files)) = event.at("email.files") {
                fold::append(email, "files", files.iter().cloned());
            }
            if let Some(url) = event.get("url") {
                fold::append(email, "urls", [url.clone()]);
            }
            if let Some(kept) = event.get("unmapped") {
                fold::keep_unmapped(message, table.clone(), kept.clone());
            }
        }
    }
    alone
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fold as it was before the index (a search of every message for
    /// each event, on `serde_json` values): the oracle.
    fn reference(messages: &mut [Value], events: Vec<Value>) -> Vec<Value> {
        let mut alone = Vec::new();
        for event in events {
            let uid = event.pointer("/email/uid").or_else(|| event.get("email_uid")).cloned();
            let mut matched = false;
            for message in messages
                .iter_mut()
                .filter(|m| uid.is_some() && m.pointer("/email/uid") == uid.as_ref())
            {
                matched = true;
                let Some(email) = message.get_mut("email").and_then(Value::as_object_mut) else {
                    continue;
                };
                if let Some(Value::Array(files)) = event.pointer("/email/files")
                    && let Value::Array(l) = email.entry("files").or_insert_with(|| json!([]))
                {
                    l.extend(files.iter().cloned());
                }
                if let Some(url) = event.get("url")
                    && let Value::Array(l) = email.entry("urls").or_insert_with(|| json!([]))
                {
                    l.push(url.clone());
                }
                if let Some(u) = event.get("unmapped") {
                    let table = event.pointer("/metadata/log_name").and_then(Value::as_str).unwrap_or("joined");
                    let unmapped = message.as_object_mut().unwrap().entry("unmapped").or_insert_with(|| json!({}));
                    if let Some(Value::Array(l)) = unmapped.as_object_mut().map(|u| u.entry(table).or_insert_with(|| json!([]))) {
                        l.push(u.clone());
                    }
                }
            }
            if !matched {
                alone.push(event);
            }
        }
        alone
    }

    /// A message (4009 with `email`) or an attachment or URL event; its uid
    /// under `email` or, for a URL event without `email`, as `email_uid`.
    fn event(log_name: &'static str) -> impl Strategy<Value = Value> {
        (fold::some_key(), any::<[bool; 4]>(), 0..100u32).prop_map(move |(uid, has, n)| {
            let mut e = json!({"metadata": {"log_name": log_name}});
            match (has[0], uid) {
                (true, Some(uid)) => e["email_uid"] = uid,
                (false, Some(uid)) => e["email"] = json!({"uid": uid}),
                (true, None) => e["email"] = json!("not an object"),
                (false, None) => e["email"] = json!({}),
            }
            if has[1] && e["email"].is_object() {
                e["email"]["files"] = json!([{"name": format!("f{n}")}]);
            }
            if has[2] {
                e["url"] = json!({"url_string": format!("https://x/{n}")});
            }
            if has[3] {
                e["unmapped"] = json!({"Column": n});
            }
            e
        })
    }

    proptest! {
        /// Each event goes to every message of its uid, as the search of
        /// every message did; the rest stand alone, in order.
        #[test]
        fn events_fold_as_a_search_of_every_message_would(
            messages in proptest::collection::vec(event("EmailEvents"), 0..6),
            events in proptest::collection::vec(event("EmailUrlInfo"), 0..8),
        ) {
            fold::folds_alike(fold_into_messages, reference, messages, events)?;
        }
    }
}
