//! Entra ID sign-ins → 3002 Authentication (guide §26, §27) and Graph API
//! requests → 6003 API Activity (guide §29). These tables have no
//! ActionType: a column (ErrorCode, RequestMethod) decides what a row says.

use super::cloud::{self, CLIENT};
use super::event::Event;
use super::field::{Context, Conv::*, Field, f};
use super::table::{ALWAYS, Activity, Product, Shape, Table};
use super::value::V;
use serde_json::{Value, json};

/// A sign-in's own ids and outcome.
const SIGN_IN: &[Field] = &[
    f("ErrorCode", "status_code", Str),
    f("CorrelationId", "metadata.correlation_uid", Str),
    f("SessionId", "session.uid", Str),
    f("UniqueTokenId", "authentication_token.uid", Str),
    f("RiskEventTypes", "risk_details", Str),
];

/// The user who signs in (guide §26, §23.2).
const USER: &[Field] = &[
    f("AccountObjectId", "user.uid_alt", Str),
    f("AccountUpn", "user.email_addr", Email),
    f("AccountDisplayName", "user.display_name", Str),
    f("Application", "service.name", Str),
    f("ApplicationId", "service.uid", Str),
    f("ResourceDisplayName", "dst_endpoint.svc_name", Str),
    f("ResourceId", "dst_endpoint.uid", Str),
    f("DeviceName", "src_endpoint.hostname", Str),
    f("EntraIdDeviceId", "src_endpoint.uid", Str),
];

/// The service principal or managed identity that signs in (guide §27).
const PRINCIPAL: &[Field] = &[
    f("ServicePrincipalName", "user.name", Str),
    f("ServicePrincipalId", "user.uid_alt", Str),
    f("Application", "actor.app_name", Str),
    f("ApplicationId", "actor.app_uid", Str),
    f("ResourceDisplayName", "service.name", Str),
    f("ResourceId", "service.uid", Str),
];

static USER_SIGN_IN: Shape = Shape {
    fields: &[SIGN_IN, USER, CLIENT],
    finish: finish_user_sign_in,
    gives: &[("user", &["AccountObjectId", "AccountUpn"])],
};
static PRINCIPAL_SIGN_IN: Shape = Shape {
    fields: &[SIGN_IN, PRINCIPAL, CLIENT],
    finish: finish_principal_sign_in,
    gives: &[("user", &["ServicePrincipalId"])],
};

const SIGN_IN_KEY: &[&str] = &["ReportId", "RequestId", "Timestamp"];

/// Entra ID P2 is needed for the sign-in tables (guide §23.7).
pub const ENTRA_P2: &str = "Microsoft Entra ID P2";

const fn sign_in_table(name: &'static str, shape: &'static Shape) -> Table {
    Table {
        name,
        product: Product::EntraId,
        key: SIGN_IN_KEY,
        activities: &[],
        prefixes: &[],
        fallback: Activity::new(3002, 1),
        shape,
        join: None,
        licence: Some(ENTRA_P2),
    }
}

pub static ENTRA_ID_SIGN_IN_EVENTS: Table = sign_in_table("EntraIdSignInEvents", &USER_SIGN_IN);
/// The beta table EntraIdSignInEvents replaces; the same sign-ins (collect one).
pub static AAD_SIGN_IN_EVENTS_BETA: Table = sign_in_table("AADSignInEventsBeta", &USER_SIGN_IN);
pub static ENTRA_ID_SPN_SIGN_IN_EVENTS: Table = sign_in_table("EntraIdSpnSignInEvents", &PRINCIPAL_SIGN_IN);
pub static AAD_SPN_SIGN_IN_EVENTS_BETA: Table = sign_in_table("AADSpnSignInEventsBeta", &PRINCIPAL_SIGN_IN);

/// `ErrorCode` 0 is success, any other a failure (guide §26); the codes
/// that send the user to an extra step are 99 Other, "Interrupted".
fn sign_in_status(e: &mut Event) {
    let Some(code) = e.get_str("status_code").and_then(|c| c.trim().parse::<i64>().ok()) else {
        return;
    };
    match code {
        0 => {
            e.set("status_id", 1);
            e.set("status", "Success");
        }
        50074 | 50076 | 50079 | 50125 | 50140 | 50199 => {
            e.set("status_id", 99);
            e.set("status", "Interrupted");
        }
        _ => {
            e.set("status_id", 2);
            e.set("status", "Failure");
        }
    }
}

/// What every sign-in shares: outcome, location, a remote logon.
fn finish_sign_in(e: &mut Event) {
    sign_in_status(e);
    cloud::country(e);
    cloud::coordinates(e);
    e.set("is_remote", true);
    // The request id is the source's own record id where ReportId is not.
    if e.get("metadata.original_event_uid").is_none() {
        e.map_column("RequestId", "metadata.original_event_uid", Str);
    }
    super::common::finish_endpoints(e);
}

fn finish_user_sign_in(e: &mut Event, _ctx: &Context) {
    finish_sign_in(e);
    // The beta table's legacy device id, unless the new one is there.
    if e.get("src_endpoint.uid").is_none() {
        e.map_column("AadDeviceId", "src_endpoint.uid", Str);
    }
    // The client's device describes the source endpoint the row names; an
    // OS alone is none, and its columns then stay under `unmapped`.
    if super::common::has_any(e.get("src_endpoint"), super::ocsf::ENDPOINT_IDENTITY) {
        cloud::client_device(e);
    }
    cloud::entra_account(e, "user");
    if let Some(user) = e.get("user").cloned() {
        e.set("actor.user", user);
    }
    if let Some(t) = e.take_string("LogonType") {
        // List-shaped text: ["interactiveUser"].
        let t = t.trim().trim_start_matches('[').trim_end_matches(']').replace('"', "");
        e.set("logon_type_id", 99);
        e.set("logon_type", t.trim().to_string());
    }
    let success = e.get("status_id").and_then(V::as_i64) == Some(1);
    match e.column_text("AuthenticationRequirement").as_deref() {
        Some("multiFactorAuthentication") if success => {
            e.drop_column("AuthenticationRequirement");
            e.set("is_mfa", true);
        }
        Some("singleFactorAuthentication") => {
            e.drop_column("AuthenticationRequirement");
            e.set("is_mfa", false);
        }
        _ => {}
    }
    // Conditional Access: 0 applied (allowed), 1 failed (denied), 2 not applied.
    let ca = e.column("ConditionalAccessStatus", Int).and_then(|v| v.as_i64());
    let outcome = match ca {
        Some(0) => Some((1, 1)),
        Some(1) => Some((2, 26)),
        Some(2) => Some((3, 16)),
        _ => None,
    };
    if let Some((action, disposition)) = outcome {
        e.drop_column("ConditionalAccessStatus");
        e.set("action_id", action);
        e.set("disposition_id", disposition);
    }
    conditional_access_policies(e);
    // RiskLevelAggregated: 1 none, 10 low, 50 medium, 100 high (0 not set).
    let risk = match e.column("RiskLevelAggregated", Int).and_then(|v| v.as_i64()) {
        Some(1) => Some(0),
        Some(10) => Some(1),
        Some(50) => Some(2),
        Some(100) => Some(3),
        _ => None,
    };
    if let Some(id) = risk {
        e.drop_column("RiskLevelAggregated");
        e.set("risk_level_id", id);
    }
    let idp = match e.column_text("TokenIssuerType").as_deref() {
        Some("0" | "AzureAD") => Some("Microsoft Entra ID"),
        Some("1" | "ADFederationServices") => Some("AD FS"),
        _ => None,
    };
    if let Some(name) = idp {
        e.drop_column("TokenIssuerType");
        e.set("actor.idp.name", name);
    }
}

/// `ConditionalAccessPolicies` (a JSON list) as `authorizations[]`: each
/// policy evaluated, with its result; those not enabled are left out. The
/// list stays under `unmapped` as it came.
fn conditional_access_policies(e: &mut Event) {
    let Some(Value::Array(policies)) = e.column("ConditionalAccessPolicies", Json) else {
        return;
    };
    let mut list = Vec::new();
    for p in &policies {
        let result = p.get("result").and_then(Value::as_str).unwrap_or_default();
        if result.is_empty() || result.eq_ignore_ascii_case("notEnabled") {
            continue;
        }
        let mut policy = serde_json::Map::new();
        if let Some(id) = p.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            policy.insert("uid".into(), id.into());
        }
        if let Some(name) = p.get("displayName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            policy.insert("name".into(), name.into());
        }
        if policy.is_empty() {
            continue;
        }
        policy.insert("is_applied".into(), matches!(result, "success" | "failure").into());
        list.push(json!({"decision": result, "policy": policy}));
    }
    if !list.is_empty() {
        e.set("authorizations", Value::Array(list));
    }
}

fn finish_principal_sign_in(e: &mut Event, _ctx: &Context) {
    finish_sign_in(e);
    cloud::entra_account(e, "user");
    if e.get("user").is_some() {
        e.set("user.type_id", 4);
    }
    // The principal signs in to the resource: it is also the destination.
    if let Some(name) = e.get_str("service.name").map(|s| s.into_owned()) {
        e.set("dst_endpoint.svc_name", name);
    }
    if let Some(uid) = e.get_str("service.uid").map(|s| s.into_owned()) {
        e.set("dst_endpoint.uid", uid);
    }
}

// ---------------------------------------------------------------------------
// GraphApiAuditEvents → 6003 API Activity (guide §29)
// ---------------------------------------------------------------------------

const GRAPH_REQUEST: &[Field] = &[
    f("RequestMethod", "api.operation", Str),
    f("ApiVersion", "api.version", Str),
    f("TargetWorkload", "api.service.name", Str),
    f("RequestId", "api.request.uid", Str),
    f("ClientRequestId", "http_request.uid", Str),
    f("OperationId", "metadata.correlation_uid", Str),
    f("RequestUri", "http_request.url.url_string", Str),
    f("ResponseStatusCode", "http_response.code", Int),
    f("RequestDuration", "http_response.latency", Int),
    f("ResponseSize", "http_response.length", Int),
    f("AccountObjectId", "actor.user.uid_alt", Str),
    f("ApplicationId", "actor.app_uid", Str),
    f("IdentityProvider", "actor.idp.name", Str),
    f("UniqueTokenIdentifier", "api.token.uid", Str),
];

static GRAPH_SHAPE: Shape = Shape {
    fields: &[GRAPH_REQUEST, CLIENT],
    finish: finish_graph_request,
    gives: &[("actor", ALWAYS), ("src_endpoint", ALWAYS)],
};

pub static GRAPH_API_AUDIT_EVENTS: Table = Table {
    name: "GraphApiAuditEvents",
    product: Product::Graph,
    key: &["ReportId", "RequestId", "Timestamp"],
    activities: &[],
    prefixes: &[],
    fallback: Activity::new(6003, 99),
    shape: &GRAPH_SHAPE,
    join: None,
    licence: Some("the GraphApiAuditEvents preview (high volume)"),
};

fn finish_graph_request(e: &mut Event, _ctx: &Context) {
    let method = e.get_str("api.operation").map(|m| m.trim().to_ascii_uppercase());
    let activity = match method.as_deref() {
        Some("GET" | "HEAD") => 2,
        Some("POST") => 1,
        Some("PUT" | "PATCH") => 3,
        Some("DELETE") => 4,
        _ => 99,
    };
    if activity != 99 {
        e.set_activity(activity);
    } else if let Some(m) = &method {
        e.set("activity_name", m.clone());
        e.set("type_name", format!("API Activity: {m}"));
    }
    // OCSF knows nine methods; any other word stays in `api.operation` only.
    if let Some(m) = method.filter(|m| HTTP_METHODS.contains(&m.as_str())) {
        e.set("http_request.http_method", m);
    }
    if let Some(code) = e.get("http_response.code").and_then(V::as_i64) {
        e.set("api.response.code", code);
        let (id, name) = if code < 400 { (1, "Success") } else { (2, "Failure") };
        e.set("status_id", id);
        e.set("status", name);
    }
    if let Some(uri) = e.get_str("http_request.url.url_string").map(|s| s.into_owned()) {
        request_uri(e, &uri);
    }
    // An app-only call has no user: the service principal acts.
    if e.get("actor.user").is_none() && e.map_column("ServicePrincipalId", "actor.user.uid_alt", Str) {
        e.set("actor.user.type_id", 4);
    }
    cloud::entra_account(e, "actor.user");
    cloud::service_endpoint(e, Some("Microsoft Graph".to_string()));
    super::common::finish_endpoints(e);
    // A response is one by its status code; without one, its latency and
    // length are kept under `unmapped`.
    super::common::require_any(e, "http_response", &["code"]);
    // Nothing names who called (an identity provider alone does not).
    if !super::common::has_any(e.get("actor"), super::ocsf::identity("actor")) {
        e.set("actor.app_name", "Microsoft Graph");
    }
}

/// The `http_method` values OCSF 1.8.0 allows.
const HTTP_METHODS: &[&str] = &["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"];

/// The request URI's parts, and the resource it names (the path without
/// the query; its type is the first segment after the version).
fn request_uri(e: &mut Event, uri: &str) {
    let Some(rest) = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://")) else {
        return;
    };
    let (host, path_query) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let (path, query) = path_query.split_once('?').map_or((path_query, None), |(p, q)| (p, Some(q)));
    let path = format!("/{path}");
    e.set("http_request.url.hostname", host.to_string());
    e.set("http_request.url.path", path.clone());
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        e.set("http_request.url.query_string", q.to_string());
    }
    let kind = path.split('/').filter(|s| !s.is_empty()).nth(1).map(str::to_string);
    let mut resource = json!({"uid": path, "role_id": 1, "role": "Target"});
    if let Some(k) = kind {
        resource["type"] = k.into();
    }
    e.push("resources", V::from(resource));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::map_json as map;

    #[test]
    fn a_failed_user_sign_in_with_conditional_access() {
        let e = map(
            &ENTRA_ID_SIGN_IN_EVENTS,
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r1", "ErrorCode": 50126, "AccountUpn": "a@contoso.com",
                   "AccountObjectId": "007c979b-47e7-4747-b9a3-58de6bdb275a", "Application": "Office 365", "ApplicationId": "app",
                   "IPAddress": "198.51.100.1", "Country": "FR", "Latitude": "48.85", "Longitude": "2.35", "OSPlatform": "Windows10",
                   "LogonType": "[\"interactiveUser\"]", "ConditionalAccessStatus": 1, "RiskLevelAggregated": 50,
                   "ConditionalAccessPolicies": "[{\"id\":\"p1\",\"displayName\":\"MFA\",\"result\":\"failure\"},{\"id\":\"p2\",\"result\":\"notEnabled\"}]"}),
        );
        assert_eq!(
            (e["class_uid"].clone(), e["activity_id"].clone(), e["status_id"].clone()),
            (json!(3002), json!(1), json!(2))
        );
        assert_eq!(
            e["user"]["account"],
            json!({"uid": "007c979b-47e7-4747-b9a3-58de6bdb275a", "type_id": 6, "type": "Azure AD Account", "name": "a@contoso.com"})
        );
        assert_eq!(e["user"]["name"], "a@contoso.com");
        assert_eq!(e["service"], json!({"name": "Office 365", "uid": "app"}));
        assert_eq!(e["src_endpoint"]["location"], json!({"country": "FR", "lat": 48.85, "long": 2.35}));
        assert_eq!(e["logon_type"], "interactiveUser");
        assert_eq!(
            (e["action_id"].clone(), e["disposition_id"].clone(), e["risk_level_id"].clone()),
            (json!(2), json!(26), json!(2))
        );
        assert_eq!(
            e["authorizations"],
            json!([{"decision": "failure", "policy": {"uid": "p1", "name": "MFA", "is_applied": true}}])
        );
        assert_eq!(
            e["unmapped"]["ConditionalAccessPolicies"]
                .as_str()
                .map(|s| s.contains("notEnabled")),
            Some(true)
        );
    }

    #[test]
    fn a_service_principal_sign_in_names_the_principal_as_the_user() {
        let e = map(
            &ENTRA_ID_SPN_SIGN_IN_EVENTS,
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r2", "ErrorCode": 0, "ServicePrincipalName": "backup-job",
                   "ServicePrincipalId": "11111111-2222-3333-4444-555555555555", "ResourceDisplayName": "Microsoft Graph", "ResourceId": "res", "IsManagedIdentity": true}),
        );
        assert_eq!(e["status_id"], 1);
        assert_eq!(
            (e["user"]["name"].clone(), e["user"]["type_id"].clone(), e["user"]["type"].clone()),
            (json!("backup-job"), json!(4), json!("Service"))
        );
        assert_eq!(e["dst_endpoint"], json!({"svc_name": "Microsoft Graph", "uid": "res"}));
        assert_eq!(e["unmapped"]["IsManagedIdentity"], true);
    }

    #[test]
    fn a_graph_request_is_api_activity_by_its_method() {
        let e = map(
            &GRAPH_API_AUDIT_EVENTS,
            json!({"Timestamp": "2026-01-01T00:00:00Z", "ReportId": "r3", "RequestMethod": "patch", "ResponseStatusCode": "403", "RequestDuration": "57",
                   "RequestUri": "https://graph.microsoft.com/v1.0/users/abc?$select=id", "ServicePrincipalId": "sp", "IpAddress": "203.0.113.9", "RequestId": "q1"}),
        );
        assert_eq!(
            (e["class_uid"].clone(), e["activity_id"].clone(), e["status_id"].clone()),
            (json!(6003), json!(3), json!(2))
        );
        assert_eq!(e["http_request"]["http_method"], "PATCH");
        assert_eq!(e["http_request"]["url"]["path"], "/v1.0/users/abc");
        assert_eq!(e["resources"][0]["type"], "users");
        assert_eq!(e["http_response"], json!({"code": 403, "latency": 57}));
        assert_eq!(e["actor"]["user"]["type_id"], 4);
        assert_eq!(e["api"]["request"]["uid"], "q1");
    }
}
