//! CloudAppEvents (Defender for Cloud Apps) → 6003 API Activity by default,
//! 3002 for sign-ins, 3001 and 3006 for Entra directory changes and 4009 for
//! mail sent (guide §24). The guide's 6006 File Hosting Activity and 3005
//! User Access Management have no JSON Schema among those this project
//! validates against, so their ActionTypes stay 6003 (docs/mapping.md).
//! Also OAuthAppInfo, Defender for Cloud Apps' inventory of OAuth apps →
//! 5023 Cloud Resources Inventory Info (guide §30).

use super::cloud::{self, CLIENT, raw, raw_str};
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{ALWAYS, Activity, Product, Shape, Table};
use super::value::{Cell, Obj, V};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The acting account and app, and the service that wrote the record.
const ACTOR: &[Field] = &[
    f("AccountObjectId", "actor.user.uid_alt", Str),
    f("AccountDisplayName", "actor.user.display_name", Str),
    f("OAuthAppId", "actor.app_uid", Str),
    f("Application", "metadata.log_provider", Str),
];

/// What `finish_common` and `api_fields` make of the columns the field
/// lists do not name: every class of the table may fall back to 6003.
const API_GIVES: [(&str, &[&str]); 3] = [
    ("actor", &["AccountId", "RawEventData", "SessionData", "Application"]),
    ("api", &["ActionType"]),
    ("src_endpoint", &["Application"]),
];

static API: Shape = Shape {
    fields: &[ACTOR, CLIENT],
    finish: finish_api,
    gives: &API_GIVES,
};
static LOGON: Shape = Shape {
    fields: &[CLIENT],
    finish: finish_logon,
    gives: &[
        ("user", &["AccountObjectId", "AccountId", "RawEventData"]),
        ("service", &["Application", "ApplicationId"]),
        API_GIVES[0],
        API_GIVES[1],
        API_GIVES[2],
    ],
};
static ACCOUNT: Shape = Shape {
    fields: &[ACTOR, CLIENT],
    finish: finish_account,
    gives: &[
        ("user", &["RawEventData", "ObjectName", "ObjectId"]),
        API_GIVES[0],
        API_GIVES[1],
        API_GIVES[2],
    ],
};
static GROUP: Shape = Shape {
    fields: &[ACTOR, CLIENT],
    finish: finish_group,
    gives: &[
        ("group", &["RawEventData", "ObjectName", "ObjectId"]),
        API_GIVES[0],
        API_GIVES[1],
        API_GIVES[2],
    ],
};
static MAIL: Shape = Shape {
    fields: &[ACTOR, CLIENT],
    finish: finish_mail,
    gives: &[
        ("email", &["RawEventData"]),
        ("direction_id", ALWAYS),
        API_GIVES[0],
        API_GIVES[1],
        API_GIVES[2],
    ],
};

pub static CLOUD_APP_EVENTS: Table = Table {
    name: "CloudAppEvents",
    product: Product::CloudApps,
    key: &["ReportId", "Timestamp"],
    activities: &[
        ("UserLoggedIn", Activity::new(3002, 1).status(1).shape(&LOGON)),
        ("UserLoginFailed", Activity::new(3002, 1).status(2).shape(&LOGON)),
        ("Add user.", Activity::new(3001, 1).shape(&ACCOUNT)),
        ("Enable account.", Activity::new(3001, 2).shape(&ACCOUNT)),
        ("Change user password.", Activity::new(3001, 3).shape(&ACCOUNT)),
        ("Reset user password.", Activity::new(3001, 4).shape(&ACCOUNT)),
        ("Set force change user password.", Activity::new(3001, 4).shape(&ACCOUNT)),
        ("Disable account.", Activity::new(3001, 5).shape(&ACCOUNT)),
        ("Delete user.", Activity::new(3001, 6).shape(&ACCOUNT)),
        ("Update user.", Activity::new(3001, 99).shape(&ACCOUNT)),
        ("Add member to group.", Activity::new(3006, 3).shape(&GROUP)),
        ("Remove member from group.", Activity::new(3006, 4).shape(&GROUP)),
        ("Add group.", Activity::new(3006, 6).shape(&GROUP)),
        ("Delete group.", Activity::new(3006, 5).shape(&GROUP)),
        ("Send", Activity::new(4009, 1).shape(&MAIL)),
        ("SendAs", Activity::new(4009, 1).shape(&MAIL)),
        ("SendOnBehalf", Activity::new(4009, 1).shape(&MAIL)),
    ],
    prefixes: &[],
    // Everything else: API Activity, its activity by the verb rule.
    fallback: Activity::new(6003, 99),
    shape: &API,
    join: None,
    licence: Some("Microsoft Defender for Cloud Apps with app connectors"),
};

/// The members of `RawEventData` the finish steps read: each step reads
/// them once, with [`raw`], and hands them on.
const RAW_KEYS: &[&str] = &[
    "UserId",
    "AppId",
    "Id",
    "ResultStatus",
    "LogonError",
    "ErrorNumber",
    "Target",
    "ModifiedProperties",
    "SendAsUserSmtp",
    "SendOnBehalfOfUserSmtp",
    "MailboxOwnerUPN",
    "Item",
];

/// What every class of the table shares (guide §24.2): the acting account,
/// its type, the client device, the record's own id and status.
fn finish_common(e: &mut Event, user: &str, raw: &Map<String, Value>) {
    let join = super::field::join;
    // The account id: the object id, else AccountId (a GUID for Microsoft apps).
    let object_id = e.get_str(&join(user, "uid_alt")).map(|s| s.into_owned());
    let account_id = match e.column("AccountId", Str) {
        Some(Value::String(id)) if object_id.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(&id)) => {
            e.drop_column("AccountId");
            Some(id)
        }
        _ => None,
    };
    match (object_id, account_id) {
        (Some(_), _) => cloud::entra_account(e, user),
        (None, Some(id)) => {
            let (type_id, caption) = if cloud::is_guid(&id) {
                (6, "Azure AD Account")
            } else {
                (0, "Unknown")
            };
            e.set_owned(&join(user, "account.type_id"), type_id);
            e.set_owned(&join(user, "account.type"), caption);
            e.set_owned(&join(user, "account.uid"), id);
        }
        (None, None) => {}
    }
    if let Some(upn) = raw_str(raw, "UserId") {
        if e.get(&join(user, "name")).is_none() {
            e.set_owned(&join(user, "name"), upn.clone());
        }
        if super::field::is_email(&upn) && e.get(&join(user, "email_addr")).is_none() {
            e.set_owned(&join(user, "email_addr"), upn);
        }
    }
    let kind = e.column("AccountType", Str);
    let type_id = match kind.as_ref().and_then(Value::as_str) {
        Some("Regular") => Some(1),
        Some("Admin") => Some(2),
        Some("System") => Some(3),
        Some("Application") => Some(4),
        _ => None,
    };
    if let (Some(id), true) = (type_id, e.get(user).is_some()) {
        e.drop_column("AccountType");
        e.set_owned(&join(user, "type_id"), id);
        if id == 4
            && let Some(name) = e.get_str(&join(user, "display_name")).map(|s| s.into_owned())
        {
            e.set("actor.app_name", name);
        }
    }
    super::common::require_any(e, user, &["name", "uid", "account"]);
    if e.get("actor.app_uid").is_none()
        && let Some(app) = raw_str(raw, "AppId")
    {
        e.set("actor.app_uid", app);
    }
    if let Some(Value::Object(session)) = e.column("SessionData", Json)
        && let Some(id) = session.get("InLineSessionId").and_then(Value::as_str).filter(|s| !s.is_empty())
    {
        e.set("actor.session.uid", id.to_string());
    }
    cloud::client_device(e);
    if let Some(id) = raw_str(raw, "Id")
        && e.get("metadata.original_event_uid").is_none()
    {
        e.set("metadata.original_event_uid", id);
    }
    // Status from the audit record's ResultStatus.
    let status = raw_str(raw, "ResultStatus");
    match status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("succeeded" | "success" | "true") => e.set("status_id", 1),
        Some("failed" | "false") => e.set("status_id", 2),
        Some(_) => {
            e.set("status_id", 99);
            e.set("status", status.unwrap_or_default());
        }
        None => {}
    }
    if let Some(s) = e.get("status_id").and_then(V::as_u64)
        && s != 99
    {
        e.set("status", super::ocsf::status_name(s as u32));
    }
}

/// The service the row came from, for API classes' required endpoint.
fn service_name(e: &Event) -> Option<String> {
    e.get_str("metadata.log_provider").map(|s| s.into_owned())
}

fn finish_api(e: &mut Event, _ctx: &Context) {
    let raw = raw(e, RAW_KEYS);
    finish_common(e, "actor.user", &raw);
    api_fields(e, &raw);
}

/// What makes the event an API Activity: the operation and its activity,
/// the service, the request, the resources and the required endpoint and
/// actor. Also the end of a row of another class that falls back to 6003
/// (`to_api`), after its own `finish_common`.
fn api_fields(e: &mut Event, raw: &Map<String, Value>) {
    let operation = e.get_str("metadata.event_code").map(|s| s.into_owned());
    if let Some(op) = &operation {
        e.set("api.operation", op.clone());
        let activity = cloud::api_activity(op);
        if activity != 99 {
            e.set_activity(activity);
        }
    }
    if let Some(app) = service_name(e) {
        e.set("api.service.name", app);
    }
    e.map_column("ApplicationId", "api.service.uid", Str);
    let request = raw_str(raw, "Id").or_else(|| e.get_str("metadata.original_event_uid").map(|s| s.into_owned()));
    if let Some(uid) = request {
        e.set("api.request.uid", uid);
    }
    resources(e);
    let service = service_name(e);
    cloud::service_endpoint(e, service);
    super::common::finish_endpoints(e);
    if e.get("actor").is_none()
        && let Some(app) = service_name(e)
    {
        e.set("actor.app_name", app);
    }
}

/// `ObjectName`/`ObjectId`/`ObjectType` as the target resource, and the
/// other `ActivityObjects` (whose list stays under `unmapped`). Each
/// resource is made as the event's own object, its members in the order
/// of their names (as a `serde_json` map would have them).
fn resources(e: &mut Event) {
    let [name, uid, kind] = ["ObjectName", "ObjectId", "ObjectType"].map(|column| e.take_string(column));
    // The (name, uid) of each resource made so far.
    type NameAndUid<'a> = (Option<Cow<'a, str>>, Option<Cow<'a, str>>);
    let mut seen: Vec<NameAndUid> = Vec::new();
    if name.is_some() || uid.is_some() {
        seen.push((name.clone().map(Cow::Owned), uid.clone().map(Cow::Owned)));
        e.push(
            "resources",
            resource(name.map(Cow::Owned), (1, "Target"), kind.map(Cow::Owned), uid.map(Cow::Owned)),
        );
    } else if let Some(kind) = kind {
        e.put_column("ObjectType", kind.into());
    }
    let Some(objects) = activity_objects(e) else {
        return;
    };
    for o in objects {
        let (name, uid) = (o.name.0, o.id.0);
        if (name.is_none() && uid.is_none()) || seen.contains(&(name.clone(), uid.clone())) {
            continue;
        }
        seen.push((name.clone(), uid.clone()));
        let role = match o.role.0.as_deref() {
            Some("Target object") => (1, "Target"),
            Some("Actor") => (2, "Actor"),
            Some("Parameter") => (4, "Related"),
            _ => (0, "Unknown"),
        };
        e.push("resources", resource(name, role, o.kind.0, uid));
    }
}

/// A resource of the event: its members in the order of their names.
fn resource<'a>(
    name: Option<Cow<'a, str>>,
    (role_id, role): (i64, &'static str),
    kind: Option<Cow<'a, str>>,
    uid: Option<Cow<'a, str>>,
) -> V<'a> {
    let mut r = Obj(Vec::with_capacity(5));
    if let Some(n) = name {
        r.0.push((Cow::Borrowed("name"), V::Str(n)));
    }
    r.0.push((Cow::Borrowed("role"), V::from(role)));
    r.0.push((Cow::Borrowed("role_id"), V::Int(role_id)));
    if let Some(t) = kind {
        r.0.push((Cow::Borrowed("type"), V::Str(t)));
    }
    if let Some(u) = uid {
        r.0.push((Cow::Borrowed("uid"), V::Str(u)));
    }
    V::Obj(r)
}

/// What the mapping reads of an entry of `ActivityObjects`; the rest of the
/// entry (most of it: a list of properties, of values) is skipped unread.
#[derive(serde::Deserialize)]
struct ActivityObject<'t> {
    #[serde(rename = "Name", default, borrow)]
    name: Text<'t>,
    #[serde(rename = "Id", default, borrow)]
    id: Text<'t>,
    #[serde(rename = "Role", default, borrow)]
    role: Text<'t>,
    #[serde(rename = "Type", default, borrow)]
    kind: Text<'t>,
}

impl ActivityObject<'_> {
    fn into_owned<'a>(self) -> ActivityObject<'a> {
        let owned = |t: Text| Text(t.0.map(|c| Cow::Owned(c.into_owned())));
        ActivityObject {
            name: owned(self.name),
            id: owned(self.id),
            role: owned(self.role),
            kind: owned(self.kind),
        }
    }
}

/// A member of an entry that is text, and not empty, borrowed from the
/// cell where it has no escape; `None` for any other value, which is
/// skipped unread.
#[derive(Default)]
struct Text<'t>(Option<Cow<'t, str>>);

impl<'de: 't, 't> serde::Deserialize<'de> for Text<'t> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct Read;
        impl<'de> Visitor<'de> for Read {
            type Value = Option<Cow<'de, str>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok((!s.is_empty()).then_some(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok((!s.is_empty()).then(|| Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok((!s.is_empty()).then_some(Cow::Owned(s)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        deserializer.deserialize_any(Read).map(Text)
    }
}

/// The entries of `ActivityObjects` (a JSON array, or text holding one),
/// if it is a list. Read member by member, an array cell's strings
/// borrowed from it; a list this reading does not settle as parsing the
/// whole list would (an entry that is not an object, a name given twice,
/// an escaped `\u` code, which may be a lone surrogate) is parsed whole.
fn activity_objects<'a>(e: &Event<'a, '_>) -> Option<Vec<ActivityObject<'a>>> {
    let settled = |text: &str| !text.contains("\\u");
    match e.row.get(e.columns, "ActivityObjects") {
        None => return None,
        Some(&Cell::Raw(raw)) if !raw.starts_with('"') => {
            if let Some(objects) = settled(raw).then(|| serde_json::from_str(raw).ok()).flatten() {
                return Some(objects);
            }
        }
        Some(cell) => {
            let text = cell.json_text().filter(|t| settled(t));
            if let Some(objects) = text.and_then(|t| {
                serde_json::from_str::<Vec<ActivityObject>>(&t)
                    .ok()
                    .map(|o| o.into_iter().map(ActivityObject::into_owned).collect())
            }) {
                return Some(objects);
            }
        }
    }
    let Some(Value::Array(objects)) = e.column("ActivityObjects", Json) else {
        return None;
    };
    let field = |o: &Value, k: &str| {
        Text(
            o.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| Cow::Owned(s.to_string())),
        )
    };
    let read = |o: &Value| ActivityObject {
        name: field(o, "Name"),
        id: field(o, "Id"),
        role: field(o, "Role"),
        kind: field(o, "Type"),
    };
    Some(objects.iter().map(read).collect())
}

/// A sign-in to a cloud app (guide §24.5): the account is the user.
fn finish_logon(e: &mut Event, _ctx: &Context) {
    e.map_column("AccountObjectId", "user.uid_alt", Str);
    e.map_column("AccountDisplayName", "user.display_name", Str);
    let raw = raw(e, RAW_KEYS);
    finish_common(e, "user", &raw);
    e.map_column("Application", "service.name", Str);
    e.map_column("ApplicationId", "service.uid", Str);
    // The service that wrote the record, as in every class of the table.
    e.copy("service.name", "metadata.log_provider");
    if let Some(error) = raw_str(&raw, "LogonError") {
        e.set("status_detail", error);
    }
    if let Some(n) = raw
        .get("ErrorNumber")
        .and_then(|v| super::field::convert(v, Str))
        .and_then(|v| v.as_str().map(str::to_string))
    {
        e.set("status_code", n);
    }
    if e.column("IsImpersonated", Bool) == Some(Value::Bool(true)) {
        e.drop_column("IsImpersonated");
        e.set("account_switch_type_id", 2);
        e.set("account_switch_type", "Impersonate");
    }
    e.set("is_remote", true);
    super::common::finish_endpoints(e);
    if e.get("user").is_none() {
        // No account to sign in: the record is an API activity after all.
        to_api(e);
        api_fields(e, &raw);
    }
}

/// The directory account a 3001 changes: the target of the record.
fn finish_account(e: &mut Event, _ctx: &Context) {
    let raw = raw(e, RAW_KEYS);
    finish_common(e, "actor.user", &raw);
    let targets: Vec<String> = raw
        .get("Target")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|x| x.get("ID").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let upn = targets.iter().find(|t| super::field::is_email(t)).cloned();
    let guid = targets.iter().find(|t| cloud::is_guid(t)).cloned();
    if let Some(u) = upn.or_else(|| e.column("ObjectName", Str).and_then(|v| v.as_str().map(str::to_string))) {
        e.drop_column("ObjectName");
        if super::field::is_email(&u) {
            e.set("user.email_addr", u.clone());
        }
        e.set("user.name", u);
    }
    if let Some(id) = guid.or_else(|| {
        e.column("ObjectId", Str)
            .and_then(|v| v.as_str().filter(|s| cloud::is_guid(s)).map(str::to_string))
    }) {
        e.drop_column("ObjectId");
        e.set("user.uid_alt", id);
    }
    cloud::entra_account(e, "user");
    if e.get("user").is_none() {
        to_api(e);
        api_fields(e, &raw);
        return;
    }
    endpoint_or_service(e);
}

/// A group change (guide §24.8): the group from the record's modified
/// properties, else the object; without a group, an API activity.
fn finish_group(e: &mut Event, _ctx: &Context) {
    let raw = raw(e, RAW_KEYS);
    finish_common(e, "actor.user", &raw);
    let modified = |name: &str| {
        raw.get("ModifiedProperties")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|p| p.get("Name").and_then(Value::as_str) == Some(name)))
            .and_then(|p| p.get("NewValue").and_then(Value::as_str))
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
    };
    let name = modified("Group.DisplayName").or_else(|| e.take_string("ObjectName"));
    let uid = modified("Group.ObjectID").or_else(|| e.take_string("ObjectId"));
    if let Some(n) = name {
        e.set("group.name", n);
    }
    if let Some(u) = uid {
        e.set("group.uid", u);
    }
    if e.get("group").is_none() {
        to_api(e);
        api_fields(e, &raw);
        return;
    }
    endpoint_or_service(e);
}

/// Mail sent from a mailbox (guide §24.9): the sender and the message;
/// without a sender address, an API activity.
fn finish_mail(e: &mut Event, _ctx: &Context) {
    let raw = raw(e, RAW_KEYS);
    finish_common(e, "actor.user", &raw);
    let sender = ["SendAsUserSmtp", "SendOnBehalfOfUserSmtp", "MailboxOwnerUPN"]
        .iter()
        .find_map(|k| raw_str(&raw, k))
        .filter(|s| super::field::is_email(s));
    let Some(sender) = sender else {
        to_api(e);
        api_fields(e, &raw);
        return;
    };
    e.set("email.from", sender);
    e.set("direction_id", 0);
    if let Some(Value::Object(item)) = raw.get("Item") {
        if let Some(id) = item.get("InternetMessageId").and_then(Value::as_str) {
            e.set("email.message_uid", id.to_string());
        }
        if let Some(s) = item.get("Subject").and_then(Value::as_str) {
            e.set("email.subject", s.to_string());
        }
        if let Some(n) = item.get("SizeInBytes").and_then(Value::as_i64) {
            e.set("email.size", n);
        }
    }
    // Email Activity has no http_request: the user agent stays in the row.
    if let Some(agent) = e.remove("http_request.user_agent").and_then(|v| v.as_str().map(|s| s.into_owned())) {
        e.put_column("UserAgent", Value::String(agent));
    }
    super::common::finish_endpoints(e);
}

/// The client's endpoint, or the service's when the row names no client.
fn endpoint_or_service(e: &mut Event) {
    let service = service_name(e);
    cloud::service_endpoint(e, service);
    super::common::finish_endpoints(e);
}

/// Turns the event into 6003 API Activity, its activity by the verb rule.
fn to_api(e: &mut Event) {
    let operation = e.get_str("metadata.event_code").map(|s| s.into_owned()).unwrap_or_default();
    e.set_class(6003, cloud::api_activity(&operation));
    // The sign-in's user, if any, is the actor of the API call.
    if let Some(user) = e.remove("user") {
        e.set("actor.user", user);
    }
    for path in [
        "service",
        "is_remote",
        "account_switch_type_id",
        "account_switch_type",
        "email",
        "direction_id",
        "group",
    ] {
        super::common::move_to_unmapped(e, path);
    }
}

// ---------------------------------------------------------------------------
// OAuthAppInfo → 5023 Cloud Resources Inventory Info (guide §30), an entity
// table: the app is the one resource of each state.
// ---------------------------------------------------------------------------

/// The app's columns, put on `resource` first: `finish_oauth_app` makes it
/// the one entry of `resources[]` (a list no field can write into). What
/// OCSF has no attribute for is the resource's `data`, under the column's
/// own name, with the app.
const OAUTH_APP: &[Field] = &[
    f("OAuthAppId", "resource.uid", Str),
    f("ServicePrincipalId", "resource.uid_alt", Str),
    f("AppName", "resource.name", Str),
    f("AddedOnTime", "resource.created_time", Time),
    f("LastModifiedTime", "resource.modified_time", Time),
    f("PrivilegeLevel", "resource.criticality", Str),
    f("AppStatus", "resource.data.AppStatus", Str),
    f("AppOrigin", "resource.data.AppOrigin", Str),
    f("IsAdminConsented", "resource.data.IsAdminConsented", Bool),
    f("ConsentedUsersCount", "resource.data.ConsentedUsersCount", Int),
    f("LastUsedTime", "resource.data.LastUsedTime", Time),
    f("AppOwnerTenantId", "resource.data.AppOwnerTenantId", Str),
    f("VerifiedPublisher", "resource.data.VerifiedPublisher", Json),
    f("Permissions", "resource.data.Permissions", Json),
    f("AssignedRoles", "resource.data.AssignedRoles", Json),
    f("RiskScore", "risk_score", Int),
];

static OAUTH_APP_SHAPE: Shape = Shape {
    fields: &[OAUTH_APP],
    finish: finish_oauth_app,
    gives: &[("resources", &["OAuthAppId", "AppName"])],
};

pub static OAUTH_APP_INFO: Table = Table {
    name: "OAuthAppInfo",
    product: Product::CloudApps,
    key: &["OAuthAppId", "ServicePrincipalId", "ReportId", "Timestamp"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(5023, 2),
    shape: &OAUTH_APP_SHAPE,
    join: None,
    licence: Some("Microsoft Defender for Cloud Apps with app governance"),
};

/// The app as `resources[0]`, when its id or name says which app it is;
/// otherwise its columns go under `unmapped` and the row is rejected, as
/// 5023 requires a resource.
fn finish_oauth_app(e: &mut Event, _ctx: &Context) {
    let named = matches!(e.get("resource"), Some(V::Obj(o)) if o.contains_key("uid") || o.contains_key("name"));
    if !named {
        super::common::move_to_unmapped(e, "resource");
        return;
    }
    e.set("resource.type", "OAuth application");
    if let Some(app) = e.root.remove("resource") {
        e.push("resources", app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(row: Value) -> Value {
        crate::mapping::map_json(&CLOUD_APP_EVENTS, row)
    }

    #[test]
    fn activity_objects_read_member_by_member_are_those_of_the_parsed_list() {
        use crate::mapping::cells::{Cells, Columns};
        // What the whole list parsed gives: each entry's four members, or
        // nothing when the cell holds no list.
        let parsed = |cell: &Value| {
            let list = match cell {
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                other => other.clone(),
            };
            let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
            list.as_array().map(|l| {
                l.iter()
                    .map(|o| ["Name", "Id", "Role", "Type"].map(|k| text(o, k)))
                    .collect::<Vec<_>>()
            })
        };
        let read = |e: &Event| {
            activity_objects(e).map(|l| {
                l.iter()
                    .map(|o| [&o.name, &o.id, &o.role, &o.kind].map(|t| t.0.as_deref().map(str::to_string)))
                    .collect::<Vec<_>>()
            })
        };
        let lists = [
            json!([{"Name": "a", "Id": "1", "Role": "Actor", "Type": "User", "Properties": [{"Name": "x", "Value": "y"}]}]),
            json!([{"Name": "", "Id": null}, {"Type": 5, "Role": ["Actor"]}, {}]),
            json!([{"Name": "José \"q\"", "Id": "C:\\x"}]),
            json!(["not an object", {"Name": "a"}]),
            json!([]),
            json!({"Name": "an object, not a list"}),
            json!("text"),
        ];
        let mut cells: Vec<Value> = lists.iter().map(|l| Value::String(l.to_string())).collect();
        cells.extend(lists.iter().cloned());
        // A name given twice (its last value counts), an escaped code, a
        // lone surrogate, white space around the list.
        for text in [
            r#"[{"Name": "a", "Name": "b"}]"#,
            r#"[{"Name": "\u0041\u00e9"}]"#,
            r#"[{"Name": "a", "Other": "\ud800"}]"#,
            " \n [ {\"Name\" : \"a\"} ] ",
        ] {
            cells.push(Value::String(text.to_string()));
        }
        for cell in &cells {
            let row = format!(r#"{{"ActivityObjects": {cell}}}"#);
            let columns = Columns::default();
            let e = Event::new(Cells::read(&row, &columns).unwrap(), &columns);
            assert_eq!(read(&e), parsed(cell), "{row}");
        }
        for raw in [r#"[{"Name": "a", "Name": "b"}]"#, r#"[{"Name": "\u0041"}]"#] {
            let row = format!(r#"{{"ActivityObjects": {raw}}}"#);
            let columns = Columns::default();
            let e = Event::new(Cells::read(&row, &columns).unwrap(), &columns);
            assert_eq!(read(&e), parsed(&serde_json::from_str(raw).unwrap()), "{row}");
        }
    }

    #[test]
    fn an_exchange_cmdlet_is_api_activity_by_its_verb() {
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r1", "ActionType": "New-InboxRule", "Application": "Microsoft Exchange Online",
            "ApplicationId": 20893, "AccountObjectId": "007c979b-47e7-4747-b9a3-58de6bdb275a", "AccountType": "Regular", "IPAddress": "198.51.100.2",
            "ObjectName": "Forward all", "ObjectType": "Inbox rule", "RawEventData": "{\"Id\":\"rec-1\",\"UserId\":\"a@contoso.com\",\"ResultStatus\":\"True\"}"}),
        );
        assert_eq!(
            (e["class_uid"].clone(), e["activity_id"].clone(), e["status_id"].clone()),
            (json!(6003), json!(1), json!(1))
        );
        assert_eq!(
            e["api"],
            json!({"operation": "New-InboxRule", "service": {"name": "Microsoft Exchange Online", "uid": "20893"}, "request": {"uid": "rec-1"}})
        );
        assert_eq!(e["actor"]["user"]["email_addr"], "a@contoso.com");
        assert_eq!(e["actor"]["user"]["type_id"], 1);
        assert_eq!(
            e["resources"],
            json!([{"name": "Forward all", "type": "Inbox rule", "role_id": 1, "role": "Target"}])
        );
        assert_eq!(e["metadata"]["original_event_uid"], "r1");
    }

    #[test]
    fn a_service_record_without_a_client_names_the_service_as_its_endpoint() {
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r2", "ActionType": "AirInvestigationData", "Application": "Microsoft 365",
            "AccountId": "airinvestigation", "AccountType": "Regular", "RawEventData": {"Actions": []}}),
        );
        assert_eq!(
            (e["activity_id"].clone(), e["activity_name"].clone()),
            (json!(99), json!("AirInvestigationData"))
        );
        assert_eq!(e["src_endpoint"], json!({"svc_name": "Microsoft 365"}));
        assert_eq!(
            e["actor"]["user"]["account"],
            json!({"uid": "airinvestigation", "type_id": 0, "type": "Unknown"})
        );
    }

    #[test]
    fn sign_ins_group_changes_and_sent_mail_take_their_classes() {
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r3", "ActionType": "UserLoginFailed", "Application": "Office 365",
            "AccountObjectId": "007c979b-47e7-4747-b9a3-58de6bdb275a", "IPAddress": "198.51.100.3", "RawEventData": "{\"LogonError\":\"InvalidPassword\",\"ErrorNumber\":50126}"}),
        );
        assert_eq!(
            (e["class_uid"].clone(), e["status_id"].clone(), e["status_detail"].clone()),
            (json!(3002), json!(2), json!("InvalidPassword"))
        );
        assert_eq!(e["service"]["name"], "Office 365");
        assert_eq!(e["user"]["account"]["uid"], "007c979b-47e7-4747-b9a3-58de6bdb275a");
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r4", "ActionType": "Add member to group.", "Application": "Office 365",
            "ObjectName": "Finance", "ObjectId": "g-1", "IPAddress": "198.51.100.4"}),
        );
        assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(3006), json!(3)));
        assert_eq!(e["group"], json!({"name": "Finance", "uid": "g-1"}));
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r5", "ActionType": "Send", "Application": "Microsoft Exchange Online",
            "IPAddress": "198.51.100.5", "UserAgent": "Outlook", "RawEventData": {"MailboxOwnerUPN": "a@contoso.com", "Item": {"InternetMessageId": "<m@contoso.com>", "Subject": "Hi"}}}),
        );
        assert_eq!((e["class_uid"].clone(), e["direction_id"].clone()), (json!(4009), json!(0)));
        assert_eq!(
            e["email"],
            json!({"from": "a@contoso.com", "message_uid": "<m@contoso.com>", "subject": "Hi"})
        );
        assert_eq!(e["unmapped"]["UserAgent"], "Outlook");
        // No sender address: an API activity instead of an invalid email.
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r6", "ActionType": "Send", "Application": "Microsoft Exchange Online", "IPAddress": "198.51.100.6"}),
        );
        assert_eq!(e["class_uid"], 6003);
        // A sign-in that names no account: an API activity, with its operation.
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r7", "ActionType": "UserLoggedIn", "Application": "Office 365", "IPAddress": "198.51.100.7"}),
        );
        assert_eq!(
            (e["class_uid"].clone(), e["api"]["operation"].clone()),
            (json!(6003), json!("UserLoggedIn"))
        );
        assert_eq!(e["unmapped"]["service"]["name"], "Office 365");
    }

    #[test]
    fn only_the_members_a_step_reads_are_taken_from_the_raw_record() {
        use crate::mapping::cells::{Cells, Columns};
        let columns = Columns::default();
        let text = r#"{"Id": "first", "Big": {"x": [1, 2]}, "UserId": " a@contoso.com ", "Id": "rec-2"}"#;
        for row in [json!({"RawEventData": text}).to_string(), format!(r#"{{"RawEventData": {text}}}"#)] {
            let e = Event::new(Cells::read(&row, &columns).unwrap(), &columns);
            let raw = raw(&e, &["Id", "UserId", "Absent"]);
            assert_eq!(
                Value::Object(raw.clone()),
                json!({"Id": "rec-2", "UserId": " a@contoso.com "}),
                "{row}"
            );
            assert_eq!(raw_str(&raw, "UserId").as_deref(), Some("a@contoso.com"));
        }
        // A value a step put back is read too.
        let mut e = Event::new(Cells::empty(), &columns);
        e.put_column("RawEventData", json!({"Id": "r", "Other": 1}));
        assert_eq!(Value::Object(raw(&e, &["Id"])), json!({"Id": "r"}));
        // And the record itself stays whole under `unmapped`, as the
        // object its text holds (as it would be, given as a value).
        let e = map(
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r9", "ActionType": "New-InboxRule",
            "Application": "Microsoft Exchange Online", "AccountId": "x", "RawEventData": text}),
        );
        assert_eq!(e["api"]["request"]["uid"], "rec-2");
        assert_eq!(e["unmapped"]["RawEventData"], serde_json::from_str::<Value>(text).unwrap());
    }
}
