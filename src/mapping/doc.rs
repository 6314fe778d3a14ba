//! Renders `docs/mapping.md` from the mapping tables themselves, so the
//! document cannot drift from the code: `cargo run --example mapping-doc`
//! writes it, and a test fails when the committed file differs.

use super::field::Conv;
use super::{Activity, Shape, TABLES, Table, ocsf};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The decisions where the mapping guide leaves a choice, and why.
const DECISIONS: &str = r#"## Decisions

1. **Initiating process.** `InitiatingProcess*` is always `actor.process` (and its account `actor.user`).
   In Process Activity a copy also goes to `process.parent_process`: Defender reports the creator, and
   cannot tell it apart from the OS parent (OCSF's *Representing Process Parentage*). The new process's
   own account (`Account*`) is `process.user`, never the actor.
2. **Nothing is dropped.** Every column a rule does not consume lands under `unmapped` with its original
   name and value (`AdditionalFields` with keys that were mapped removed). A column that holds JSON (the
   reference's `dynamic` columns, such as `RawEventData`, and `AdditionalFields`) is kept as the object or
   array its JSON text holds, so it has one type whether runHuntingQuery sends it as text or the Streaming
   API as a value (`field::is_dynamic`); text that holds no object or array stays a string. A value
   that does not convert (a non-numeric pid, a UPN that is not an email address, an IP that is not an
   address) stays there too, verbatim. `null` and `""` mean "absent" and are left out. An OCSF object that
   would be invalid (a process with no pid, a file with no name, an endpoint with only a port) moves
   to `unmapped.<its OCSF path>` instead of breaking the event. A column always keeps its own name: where a
   row has a column named like the first part of such a path (a made-up `evidence`), what was moved
   there steps aside to `unmapped.evidence_ocsf` (with `_ocsf` added again while that is taken too), so
   neither is lost.
3. **Unknown ActionTypes** take the table's fallback class and activity 99 with `activity_name` set to the
   ActionType, so new ActionTypes still produce valid events. (A table whose fallback is a listed
   activity, such as DeviceInfo's 2 Collect, keeps that activity's caption; the ActionType stays in
   `metadata.event_code`.) A table the collector does not know is a
   configuration error that lists the known tables.
4. **`OpenProcess`** (DeviceProcessEvents) is 1007 activity 3 Open, not 99: OCSF has the precise activity.
5. **`*Inspected`** network rows (Http, Ssl, Ssh, Ntlm, NetworkSignature, ...) are 4001 activity 6 Traffic;
   `DnsConnectionInspected` is 4003 Traffic.
6. **Protection content updates.** `AntivirusDefinitionsUpdated/UpdateFailed/EmergencyUpdatesInstalled`
   are 5019 Device Config State Change (the guide's alternative to 6002), so that 5019 has a source in the
   default output; 6002 still comes from firewall, Application Guard and service installs.
7. **`DeviceBootAttestationInfo`** is 5019 Device Config State Change, 2 Collect, as the guide says.
8. **Services and the Security log.** By default `ServiceInstalled` (DeviceEvents) and `Service
   creation` (IdentityDirectoryEvents) are 6002 Application Lifecycle, 1 Install, with the service as
   the app (its binary, `FolderPath` joined with `FileName`, as `app.path`), and `SecurityLogCleared` is
   1007/99. These keep the default output within the class list earlier releases promised, so that
   rules written against it keep matching. With `ocsf.deprecated_classes: false` (the mode that opts
   into OCSF's current classes) `ServiceInstalled` is 201004 Windows Service Activity, 1 Create
   (`win_service` with name, account, start and service types, and `service_file`; a row that names
   the service but none of its account, start type or type, which OCSF's Windows service needs one of,
   stays 6002 Install, as by default), and
   `SecurityLogCleared` is 1008 Event Log Activity, 1 Clear, of the Security log.
9. **DeviceFileCertificateInfo** has no file name, which OCSF requires. It becomes 5040 Live Evidence
   Info (query type File, result Exists) with the SHA1 standing in for the name and the label
   `file-name-is-sha1`.
10. **Deprecated classes.** By default the output uses 4011, 4012 and 5014, as other OCSF feeds of
    Defender do. `ocsf.deprecated_classes: false` emits 4009 with `email.files[]` (EmailAttachmentInfo),
    4009 with `email.urls[]` and the clicking user in `email.to` (UrlClickEvents), 1010 Peripheral
    Activity (PnP and USB rows), and the classes of decision 8. In that mode EmailAttachmentInfo and EmailUrlInfo follow
    EmailEvents' windows and fold into the message they belong to (`email.files[]`, `email.urls[]`, on
    every recipient's event). An EmailUrlInfo row whose message is not in the window stays 4012: 4009
    requires a sender or a recipient, which that table does not carry.
11. **Missing `Timestamp`.** A row without one (seen in portal exports) takes the collection time and
    the label `time-is-collection-time`, instead of being dropped. `defender-ocsf map` does the same,
    with the time of mapping.
12. **Rows that lack what a class requires.** A row that cannot give an object OCSF requires (a
    DeviceProcessEvents row projected to `Timestamp, FileName, InitiatingProcessFileName`, as in
    Microsoft's runHuntingQuery examples, has no device and no process id) is rejected, counted and
    named with every column that would give it, those of the column list and those a `finish` step
    reads (listed under each table); nothing is made up. One exception, labelled: DeviceEvents
    process ActionTypes that Defender itself reports with no process at all (a WMI-created process)
    get Defender's own "no process" id, pid 0, with the label `process-unknown`. Reflexive ActionTypes
    (screenshot, clipboard, token change) use the acting process. What a class requires includes what
    makes a required object one (a finding's `uid` from `AlertId` or `BehaviorId`, an API call's
    `operation`, a scan's name or id, a piece of evidence's file) and required values (`email_uid`
    of 4011 and 4012). A row that cannot give what a deprecated class requires but can give its
    successor's is the successor's, with or without `deprecated_classes`: a click with no
    `NetworkMessageId` (not in a mail) is 4009, not 4012.
13. **Actor.** System classes require an `actor`. When a row names no initiating process or account, the
    actor is the reporting sensor (`actor.app_name`).
14. **Identity directory changes.** `Account*` is the actor; `TargetAccount*` the account changed. When
    no target is named, the actor changed itself. Enable/disable and lock/unlock share one ActionType
    and are told apart by `AdditionalFields` (`TO.ACCOUNT_DISABLED`, `TO.ACCOUNT_LOCKED`, or in older rows
    `TO.ACCOUNT_STATE`); `Task scheduling` runs on `TargetDeviceName`, or else on the destination device; group membership changes read
    `TO.GROUP`/`FROM.GROUP`, and without a group name they are 3001 Account Change (3006 requires a group).
15. **Logon results.** `LogonAttempted` is Logon with status 0 Unknown; Windows logon types map to
    `logon_type_id`, MDI's descriptive ones ("Credentials validation") stay as `logon_type` with id 99.
16. **Email ids.** `NetworkMessageId` is `email.uid` (what AlertEvidence, attachments and clicks join on)
    and `InternetMessageId` is `email.message_uid`, never the other way round.
17. **AlertEvidence** becomes one `evidences[]` entry chosen by `EntityType`; folded into its AlertInfo
    finding when both arrive in one window, otherwise a standalone 2004 with activity 2 Update.
18. **`metadata.uid`** is a hash of the table and the row's natural key (below), with `Timestamp`
    compared at 100 ns resolution, so downstream systems can deduplicate. A key column that is missing,
    null or `""` counts as absent, so a row has the same uid whether Graph (which sends every column) or
    the Streaming API (which may leave empty ones out) brought it. (Before #21 a null key column was
    hashed as `null`: rows with one got a different uid from this version on.)
19. **Captions** are always the schema's caption for their id ("Ntlm" becomes `auth_protocol` "NTLM",
    "RemoteInteractive" becomes `logon_type` "Remote Interactive"); only 99 Other keeps the source's word.
    The tests check every caption of every event against the compiled OCSF 1.8.0 schema.
20. **Profiles.** `metadata.profiles` lists the profiles whose attributes the event fills: `host` with a
    `device`, `security_control` with a disposition, action, malware, attacks or `is_alert`, `incident`
    with a verdict or assignee.
21. **Nothing overwritten.** When two sources name one attribute (`SenderIPv4` and `SenderIPv6`, a
    PnP device's `DeviceDescription` and `ProductName`, a task's `Account*` and `SubjectUserName`), the
    first fills it and the other stays under `unmapped`.
22. **Defender Antivirus outcomes.** `AdditionalFields` `Severity` (Low, Moderate, High, Severe) sets
    the finding's severity; `Action` sets the disposition (Quarantine 3, Remove 5, Block 2, Clean 11,
    Allow 1, NoAction 16), and without one `WasRemediated: true` is 11 Corrected. `AppLockerBlock*` is
    disposition 2 Blocked with action 2 Denied.
23. **DNS.** The query's name, type, class and transaction id, `rcode_id` and the answers with their TTLs
    come from `AdditionalFields` (DnsConnectionInspected, DnsQueryResponse).
24. **Tables beyond the first twenty** follow `defender-mapping-guide-more-tables.md`. Those that need a
    licence most tenants lack (the Entra ID sign-in tables, CloudAppEvents, BehaviorInfo and
    BehaviorEntities, GraphApiAuditEvents, OAuthAppInfo, and Defender for Cloud's CloudAuditEvents and
    CloudProcessEvents) are collected only when `tables` names them; `check` says which the tenant has.
    IdentityInfo needs only Entra ID and is collected by default, like DeviceInfo (latest row per
    `AccountObjectId`). Of each replaced pair (AADSignInEventsBeta and EntraIdSignInEvents,
    AADSpnSignInEventsBeta and EntraIdSpnSignInEvents) name one: they hold the same sign-ins.
    The sign-in tables' `Country` (two letters), `Latitude` and `Longitude` are the client's
    `src_endpoint.location`; coordinates go there only beside a city, country, region or postal code,
    one of which OCSF's location needs, and otherwise stay under `unmapped` with their names.
    The tables of the guide's §33 are not mapped yet.
25. **CloudAppEvents classes.** The guide's 6006 File Hosting Activity (SharePoint and OneDrive file
    operations) and 3005 User Access Management (role, consent and mailbox permission grants) have no
    JSON Schema among those the project validates every event against, so those ActionTypes are 6003
    API Activity, their activity by the guide's verb rule (Add/New → Create, Get/…Accessed → Read,
    Set/Update/… → Update, Remove/…Deleted → Delete, otherwise 99 named by the ActionType). A directory,
    group or mail row whose record does not name the account, group or sender its class requires is 6003
    too, rather than an invalid event. `RawEventData` stays whole under `unmapped`.
26. **IdentityInfo** is 5003 User Inventory Info. Its JSON Schema is not among the shared files; the tests
    derive it from 5001's (the compiled schema gives 5003 the same attributes plus a required `user`).
    **OAuthAppInfo** is 5023 Cloud Resources Inventory Info, 2 Collect (guide §30), whose schema the tests
    derive the same way (5001's attributes, `device` optional, plus `resources[]` and at least one of
    them, `resource_details` defined as in 6003's schema). It is an entity table: each collection emits
    the latest state per `OAuthAppId` and `ServicePrincipalId`. The app is the one entry of
    `resources[]`, typed "OAuth application": `OAuthAppId` its `uid`, `ServicePrincipalId` its
    `uid_alt`, `AppName`, `AddedOnTime`, `LastModifiedTime` and `PrivilegeLevel` (as `criticality`);
    the columns OCSF has no attribute for (`AppStatus`, `AppOrigin`, `IsAdminConsented`,
    `ConsentedUsersCount`, `LastUsedTime` in epoch milliseconds, `AppOwnerTenantId`, and the
    `VerifiedPublisher`, `Permissions` and `AssignedRoles` lists) are its `data`, under their own names,
    so the permissions stay with the app. `RiskScore` is `risk_score`. A row with neither the app's id
    nor its name is rejected: no resource is made up.
27. **Entra sign-ins.** `ErrorCode` 0 is Success, the interrupt codes (50074, 50076, 50079, 50125, 50140,
    50199) are 99 "Interrupted", any other is Failure. A service principal's `user.type` is the schema's
    "Service" caption; whether it is a managed identity stays in `unmapped.IsManagedIdentity`.
28. **Behaviors** are findings below the alert threshold: `is_alert` false, severity Informational, the
    behavior's ActionType as `finding_info.analytic` (Behavioral). BehaviorEntities fold into their
    BehaviorInfo as `evidences[]` (a cloud resource as a top-level `resources[]` entry), as AlertEvidence
    folds into AlertInfo; an entity whose behavior is not in the window stands alone as 2004 Update.
    The behavior's own `AccountUpn`/`AccountObjectId` is an evidence too, even when a User entity row
    names the same account.
29. **Objects that are not one.** An optional object without what makes it one in OCSF (a device named
    only by its machine group, an HTTP response without a status code, a DNS query without the name
    asked for, a product named only by its feature, a location only described) is kept under
    `unmapped`, at its OCSF path, rather than written invalid; so is a value outside its enum (an HTTP
    method OCSF does not list stays in `api.operation` only). Where the parts came from one column, the
    column stays as it came (a network adapter's type with no name, MAC or address; `OSPlatform`
    without a source address; `Country` without a city or region). An enum's caption is the schema's
    (an integrity level `MEDIUM` is `Medium`). A property test maps random rows of each table's own
    columns and the `row_text` fuzz target maps any text; each event must validate against its class.
30. **Defender for Cloud.** CloudAuditEvents is 6003 by its ActionType, documented (`Create`) or
    streamed (`CloudAuditEventCreate`). Its outcome is read from `RawEventData`, which stays whole under
    `unmapped`: a Kubernetes status code below 400 is Success, an Azure `status` Succeeded or Failed, an
    AWS record Failure with an `errorCode` and Success without. The first resource column that is set
    (`ResourceId`, `AzureResourceId`, `AwsResourceName`, `GcpFullResourceName`) is the target resource's
    uid; an `IPAddress` list is the client and the addresses it came through. A record that names no
    caller (`Account`, or Kubernetes' user) has its `UserAgent` as the actor's app; without either it is
    rejected. CloudProcessEvents is 1007: `FileName` holds a path (kept under `unmapped` too when
    `FolderPath` gives the process another one), `ProcessName` (a kernel's short
    name) stays under `unmapped` when it is not the file's name, the initiating process is the actor
    and takes the parent's name when it is the parent, and the device is the cluster or VM the resource
    column names (`device.type_id` 0), not a node. Container and Kubernetes columns stay under
    `unmapped`: OCSF has them only with the container profile, which this project does not apply.
"#;

fn conv_name(conv: Conv) -> String {
    match conv {
        Conv::Str => "text".into(),
        Conv::Int => "integer".into(),
        Conv::Bool => "boolean".into(),
        Conv::Time => "epoch ms".into(),
        Conv::Hash(id) => format!("hash (algorithm {id})"),
        Conv::Integrity => "integrity level + id".into(),
        Conv::NamedItem => "append {name}".into(),
        Conv::Json => "parsed JSON".into(),
        Conv::Ip => "IP address".into(),
        Conv::Port => "port".into(),
        Conv::Email => "email address".into(),
        Conv::Item => "append".into(),
        Conv::EmailItem => "append email address".into(),
    }
}

fn activity_cell(a: &Activity) -> String {
    let class = ocsf::class(a.class_uid);
    let mut cell = format!(
        "{} {} / {} {}",
        a.class_uid,
        class.name,
        a.activity_id,
        class.activity_name(a.activity_id)
    );
    if let Some(s) = a.status_id {
        let _ = write!(cell, ", status {s}");
    }
    for (path, v) in a.sets {
        let _ = write!(cell, ", `{path}` {v}");
    }
    if let Some(next) = a.successor {
        let c = ocsf::class(next.class_uid);
        let _ = write!(
            cell,
            "; without deprecated classes: {} {} / {}",
            next.class_uid,
            c.name,
            c.activity_name(next.activity_id)
        );
    }
    cell
}

fn shapes(table: &Table) -> Vec<&'static Shape> {
    let mut out: Vec<&'static Shape> = Vec::new();
    let all = table
        .activities
        .iter()
        .chain(table.prefixes.iter())
        .map(|(_, a)| a)
        .chain([&table.fallback]);
    for shape in std::iter::once(table.shape).chain(all.flat_map(|a| [a.shape, a.successor.and_then(|s| s.shape)]).flatten()) {
        if !out.iter().any(|s| std::ptr::eq(*s, shape)) {
            out.push(shape);
        }
    }
    out
}

/// The whole document.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# OCSF mapping\n\n");
    out.push_str("<!-- Generated by `cargo run --example mapping-doc > docs/mapping.md` from src/mapping/. Do not edit by hand. -->\n\n");
    out.push_str("Every advanced-hunting table the collector reads, the OCSF 1.8.0 class and activity each ActionType\n");
    out.push_str("becomes, and where each column goes. The rules follow `shared/ocsf/defender-mapping-guide.md`; the\n");
    out.push_str("decisions below cover the places where it leaves a choice. Column rules marked *derived* in a table's\n");
    out.push_str("notes are applied in code (`finish` functions) rather than listed.\n\n");
    out.push_str(DECISIONS);

    let mut by_class: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
    for table in TABLES {
        for a in table.all_activities() {
            by_class.entry(a.class_uid).or_default().insert(table.name);
        }
    }
    out.push_str("\n## Classes and their sources\n\n| class | produced by |\n|---|---|\n");
    for (uid, tables) in &by_class {
        let _ = writeln!(
            out,
            "| {uid} {} | {} |",
            ocsf::class(*uid).name,
            tables.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    out.push_str("| 2005 Incident Finding | Graph `GET /security/incidents` (optional stream) |\n");

    for table in TABLES {
        let _ = write!(
            out,
            "\n## {}\n\nProduct: {}. Natural key: {}.\n\n",
            table.name,
            table.product.name(),
            table.key.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        );
        if let Some(licence) = table.licence {
            let _ = write!(
                out,
                "Needs {licence}: collected only when `tables` names it; `check` says whether the tenant has it.\n\n"
            );
        }
        out.push_str("| ActionType | class / activity |\n|---|---|\n");
        for (name, a) in table.activities {
            let _ = writeln!(out, "| `{name}` | {} |", activity_cell(a));
        }
        for (prefix, a) in table.prefixes {
            let _ = writeln!(out, "| `{prefix}*` | {} |", activity_cell(a));
        }
        let _ = writeln!(out, "| any other | {} |", activity_cell(&table.fallback));
        out.push_str("\n| column | OCSF attribute | conversion |\n|---|---|---|\n");
        let mut seen = BTreeSet::new();
        for shape in shapes(table) {
            for field in shape.fields.iter().flat_map(|f| f.iter()) {
                if seen.insert((field.column, field.to)) {
                    let _ = writeln!(out, "| `{}` | `{}` | {} |", field.column, field.to, conv_name(field.conv));
                }
            }
        }
        // What a rejected row's message names beside the columns above.
        let mut made = BTreeSet::new();
        for shape in shapes(table) {
            for (object, columns) in shape.gives {
                made.insert((*object, *columns));
            }
        }
        if !made.is_empty() {
            out.push_str(
                "\nRequired objects the `finish` steps make from other columns (a row rejected for lacking one is told them):\n\n",
            );
            out.push_str("| object | made from |\n|---|---|\n");
            for (object, columns) in made {
                let from = match columns.is_empty() {
                    true => "no column: made for every row".to_string(),
                    false => columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                };
                let _ = writeln!(out, "| `{object}` | {from} |");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// docs/mapping.md is what the generator writes today.
    #[test]
    fn docs_mapping_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("mapping.md");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == super::render(),
            "docs/mapping.md is out of date; regenerate it with: cargo run --example mapping-doc > docs/mapping.md"
        );
    }
}
