//! The slice of the OCSF 1.8.0 catalogue the collector emits: class names,
//! categories and activity captions, so that events carry the captions next
//! to their ids. Checked against the compiled schema by the conformance tests.

pub const VERSION: &str = "1.8.0";

/// One OCSF event class.
#[derive(Debug)]
pub struct Class {
    pub uid: u32,
    pub name: &'static str,
    pub category_uid: u32,
    /// Activities other than 0 Unknown and 99 Other.
    pub activities: &'static [(u32, &'static str)],
}

impl Class {
    pub fn activity_name(&self, id: u32) -> &'static str {
        match id {
            0 => "Unknown",
            99 => "Other",
            _ => self.activities.iter().find(|(i, _)| *i == id).map(|(_, n)| *n).unwrap_or("Unknown"),
        }
    }
}

pub static CLASSES: &[Class] = &[
    Class {
        uid: 1001,
        name: "File System Activity",
        category_uid: 1,
        activities: &[
            (1, "Create"),
            (2, "Read"),
            (3, "Update"),
            (4, "Delete"),
            (5, "Rename"),
            (6, "Set Attributes"),
            (7, "Set Security"),
            (8, "Get Attributes"),
            (9, "Get Security"),
            (10, "Encrypt"),
            (11, "Decrypt"),
            (12, "Mount"),
            (13, "Unmount"),
            (14, "Open"),
        ],
    },
    Class {
        uid: 1004,
        name: "Memory Activity",
        category_uid: 1,
        activities: &[
            (1, "Allocate Page"),
            (2, "Modify Page"),
            (3, "Delete Page"),
            (4, "Buffer Overflow"),
            (5, "Disable DEP"),
            (6, "Enable DEP"),
            (7, "Read"),
            (8, "Write"),
            (9, "Map View"),
        ],
    },
    Class {
        uid: 1005,
        name: "Module Activity",
        category_uid: 1,
        activities: &[(1, "Load"), (2, "Unload"), (3, "Invoke")],
    },
    Class {
        uid: 1006,
        name: "Scheduled Job Activity",
        category_uid: 1,
        activities: &[
            (1, "Create"),
            (2, "Update"),
            (3, "Delete"),
            (4, "Enable"),
            (5, "Disable"),
            (6, "Start"),
        ],
    },
    Class {
        uid: 1007,
        name: "Process Activity",
        category_uid: 1,
        activities: &[(1, "Launch"), (2, "Terminate"), (3, "Open"), (4, "Inject"), (5, "Set User ID")],
    },
    Class {
        uid: 1008,
        name: "Event Log Activity",
        category_uid: 1,
        activities: &[
            (1, "Clear"),
            (2, "Delete"),
            (3, "Export"),
            (4, "Archive"),
            (5, "Rotate"),
            (6, "Start"),
            (7, "Stop"),
            (8, "Restart"),
            (9, "Enable"),
            (10, "Disable"),
        ],
    },
    Class {
        uid: 1010,
        name: "Peripheral Activity",
        category_uid: 1,
        activities: &[(1, "Connect"), (2, "Disconnect"), (3, "Enable"), (4, "Disable"), (5, "Eject")],
    },
    Class {
        uid: 2003,
        name: "Compliance Finding",
        category_uid: 2,
        activities: &[(1, "Create"), (2, "Update"), (3, "Close")],
    },
    Class {
        uid: 2004,
        name: "Detection Finding",
        category_uid: 2,
        activities: &[(1, "Create"), (2, "Update"), (3, "Close")],
    },
    Class {
        uid: 2005,
        name: "Incident Finding",
        category_uid: 2,
        activities: &[(1, "Create"), (2, "Update"), (3, "Close")],
    },
    Class {
        uid: 3001,
        name: "Account Change",
        category_uid: 3,
        activities: &[
            (1, "Create"),
            (2, "Enable"),
            (3, "Password Change"),
            (4, "Password Reset"),
            (5, "Disable"),
            (6, "Delete"),
            (7, "Attach Policy"),
            (8, "Detach Policy"),
            (9, "Lock"),
            (10, "MFA Factor Enable"),
            (11, "MFA Factor Disable"),
            (12, "Unlock"),
        ],
    },
    Class {
        uid: 3002,
        name: "Authentication",
        category_uid: 3,
        activities: &[
            (1, "Logon"),
            (2, "Logoff"),
            (3, "Authentication Ticket"),
            (4, "Service Ticket Request"),
            (5, "Service Ticket Renew"),
            (6, "Preauth"),
            (7, "Account Switch"),
        ],
    },
    Class {
        uid: 3006,
        name: "Group Management",
        category_uid: 3,
        activities: &[
            (1, "Assign Privileges"),
            (2, "Revoke Privileges"),
            (3, "Add User"),
            (4, "Remove User"),
            (5, "Delete"),
            (6, "Create"),
            (7, "Add Subgroup"),
            (8, "Remove Subgroup"),
        ],
    },
    Class {
        uid: 4001,
        name: "Network Activity",
        category_uid: 4,
        activities: &[
            (1, "Open"),
            (2, "Close"),
            (3, "Reset"),
            (4, "Fail"),
            (5, "Refuse"),
            (6, "Traffic"),
            (7, "Listen"),
        ],
    },
    Class {
        uid: 4003,
        name: "DNS Activity",
        category_uid: 4,
        activities: &[(1, "Query"), (2, "Response"), (6, "Traffic")],
    },
    Class {
        uid: 4009,
        name: "Email Activity",
        category_uid: 4,
        activities: &[(1, "Send"), (2, "Receive"), (3, "Scan"), (4, "Trace"), (5, "MTA Relay")],
    },
    Class {
        uid: 4011,
        name: "Email File Activity",
        category_uid: 4,
        activities: &[(1, "Send"), (2, "Receive"), (3, "Scan")],
    },
    Class {
        uid: 4012,
        name: "Email URL Activity",
        category_uid: 4,
        activities: &[(1, "Send"), (2, "Receive"), (3, "Scan")],
    },
    Class {
        uid: 5001,
        name: "Device Inventory Info",
        category_uid: 5,
        activities: &[(1, "Log"), (2, "Collect")],
    },
    Class {
        uid: 5002,
        name: "Device Config State",
        category_uid: 5,
        activities: &[(1, "Log"), (2, "Collect")],
    },
    Class {
        uid: 5003,
        name: "User Inventory Info",
        category_uid: 5,
        activities: &[(1, "Log"), (2, "Collect")],
    },
    Class {
        uid: 5014,
        name: "Peripheral Device Query",
        category_uid: 5,
        activities: &[(1, "Query")],
    },
    Class {
        uid: 5040,
        name: "Live Evidence Info",
        category_uid: 5,
        activities: &[(1, "Query")],
    },
    Class {
        uid: 5019,
        name: "Device Config State Change",
        category_uid: 5,
        activities: &[(1, "Log"), (2, "Collect")],
    },
    Class {
        uid: 6002,
        name: "Application Lifecycle",
        category_uid: 6,
        activities: &[
            (1, "Install"),
            (2, "Remove"),
            (3, "Start"),
            (4, "Stop"),
            (5, "Restart"),
            (6, "Enable"),
            (7, "Disable"),
            (8, "Update"),
        ],
    },
    Class {
        uid: 6003,
        name: "API Activity",
        category_uid: 6,
        activities: &[(1, "Create"), (2, "Read"), (3, "Update"), (4, "Delete")],
    },
    Class {
        uid: 6007,
        name: "Scan Activity",
        category_uid: 6,
        activities: &[
            (1, "Started"),
            (2, "Completed"),
            (3, "Cancelled"),
            (4, "Duration Violation"),
            (5, "Pause Violation"),
            (6, "Error"),
            (7, "Paused"),
            (8, "Resumed"),
            (9, "Restarted"),
            (10, "Delayed"),
        ],
    },
    Class {
        uid: 201001,
        name: "Registry Key Activity",
        category_uid: 1,
        activities: &[
            (1, "Create"),
            (2, "Read"),
            (3, "Modify"),
            (4, "Delete"),
            (5, "Rename"),
            (6, "Set Security"),
            (7, "Restore"),
            (8, "Import"),
            (9, "Export"),
        ],
    },
    Class {
        uid: 201004,
        name: "Windows Service Activity",
        category_uid: 1,
        activities: &[
            (1, "Create"),
            (2, "Reconfigure"),
            (3, "Start"),
            (4, "Stop"),
            (5, "Pause"),
            (6, "Continue"),
            (7, "Delete"),
        ],
    },
    Class {
        uid: 201002,
        name: "Registry Value Activity",
        category_uid: 1,
        activities: &[(1, "Get"), (2, "Set"), (3, "Modify"), (4, "Delete")],
    },
];

/// The class with this uid. Mapping tables only name classes listed here;
/// a unit test checks that.
pub fn class(uid: u32) -> &'static Class {
    CLASSES
        .iter()
        .find(|c| c.uid == uid)
        .unwrap_or_else(|| panic!("class {uid} is used by a mapping but missing from mapping::ocsf::CLASSES"))
}

/// What a class requires at the top level: each inner list needs one of
/// its attributes (the compiled schema's required objects and `at_least_one`
/// constraints, less the profiles' `osint` and `cloud`; a conformance test
/// compares the two).
pub fn requires(uid: u32) -> &'static [&'static [&'static str]] {
    const SYSTEM: &[&str] = &["actor"];
    const DEVICE: &[&str] = &["device"];
    const ENDPOINT: &[&str] = &["dst_endpoint", "src_endpoint"];
    match uid {
        1001 => &[SYSTEM, DEVICE, &["file"]],
        1004 | 1007 => &[SYSTEM, DEVICE, &["process"]],
        1005 => &[SYSTEM, DEVICE, &["module"]],
        1006 => &[DEVICE, &["job"]],
        1008 => &[&["log_file", "log_name", "log_provider", "log_type", "log_type_id"]],
        1010 => &[SYSTEM, DEVICE, &["peripheral_device"]],
        2003 => &[&["finding_info"], &["compliance"]],
        2004 => &[&["finding_info"]],
        2005 => &[&["finding_info_list"], &["assignee", "assignee_group"]],
        3001 => &[&["user"]],
        3002 => &[&["user"], &["service", "dst_endpoint"]],
        3006 => &[&["group"]],
        4001 | 4003 => &[ENDPOINT],
        4009 => &[&["email"]],
        4011 => &[&["file"]],
        4012 => &[&["url"]],
        5001 | 5002 | 5019 => &[DEVICE],
        5003 => &[&["user"]],
        5014 => &[&["peripheral_device"]],
        5040 => &[DEVICE, &["query_evidence"]],
        6002 => &[&["app"]],
        6003 => &[SYSTEM, &["api"], &["src_endpoint"]],
        6007 => &[&["scan"]],
        201001 => &[SYSTEM, DEVICE, &["reg_key"]],
        201002 => &[SYSTEM, DEVICE, &["reg_value"]],
        201004 => &[SYSTEM, DEVICE, &["win_service"]],
        _ => &[],
    }
}

/// What a `network_endpoint` needs to be one; an endpoint with only a port
/// moves to `unmapped`.
pub const ENDPOINT_IDENTITY: &[&str] = &[
    "ip",
    "uid",
    "name",
    "hostname",
    "svc_name",
    "instance_uid",
    "interface_uid",
    "interface_name",
    "domain",
];

/// The attributes that make an object valid (its `at_least_one`, or its
/// one required attribute): the ones whose source columns an error about
/// a missing object names.
pub fn identity(object: &str) -> &'static [&'static str] {
    match object {
        "device" => &["uid", "hostname", "name", "ip", "instance_uid", "interface_uid", "interface_name"],
        "process" => &["pid", "uid", "cpid"],
        "user" | "group" => &["uid", "name", "account"],
        "job" | "app" | "win_service" | "file" => &["name"],
        "peripheral_device" => &["name", "uid"],
        "email" => &["from", "to"],
        "reg_key" => &["path"],
        "reg_value" => &["name", "path"],
        "dst_endpoint" | "src_endpoint" => ENDPOINT_IDENTITY,
        _ => &[],
    }
}

pub fn category_name(uid: u32) -> &'static str {
    match uid {
        1 => "System Activity",
        2 => "Findings",
        3 => "Identity & Access Management",
        4 => "Network Activity",
        5 => "Discovery",
        6 => "Application Activity",
        _ => "Other",
    }
}

pub fn status_name(id: u32) -> &'static str {
    match id {
        1 => "Success",
        2 => "Failure",
        99 => "Other",
        _ => "Unknown",
    }
}

/// OCSF profiles and the top-level attributes that put an event in them
/// (the compiled schema's `profiles` on each class attribute).
pub const PROFILES: &[(&str, &[&str])] = &[
    ("host", &["device"]),
    (
        "security_control",
        &[
            "action_id",
            "attacks",
            "authorizations",
            "confidence_id",
            "disposition_id",
            "firewall_rule",
            "is_alert",
            "malware",
            "malware_scan_info",
            "policy",
            "risk_level_id",
            "risk_score",
        ],
    ),
    (
        "incident",
        &[
            "assignee",
            "assignee_group",
            "is_suspected_breach",
            "priority_id",
            "src_url",
            "ticket",
            "tickets",
            "verdict_id",
        ],
    ),
    ("cloud", &["api", "cloud"]),
];

/// The caption of a `fingerprint.algorithm_id`.
pub fn hash_algorithm(id: u8) -> &'static str {
    match id {
        1 => "MD5",
        2 => "SHA-1",
        3 => "SHA-256",
        4 => "SHA-512",
        99 => "Other",
        _ => "Unknown",
    }
}

const USER_TYPES: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "User"),
    (2, "Admin"),
    (3, "System"),
    (4, "Service"),
    (99, "Other"),
];
const ACCOUNT_TYPES: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "LDAP Account"),
    (2, "Windows Account"),
    (6, "Azure AD Account"),
    (99, "Other"),
];
/// `device.type_id` and `network_endpoint.type_id` share their enum.
const DEVICE_TYPES: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "Server"),
    (2, "Desktop"),
    (3, "Laptop"),
    (4, "Tablet"),
    (5, "Mobile"),
    (6, "Virtual"),
    (7, "IOT"),
    (8, "Browser"),
    (9, "Firewall"),
    (10, "Switch"),
    (11, "Hub"),
    (12, "Router"),
    (13, "IDS"),
    (14, "IPS"),
    (15, "Load Balancer"),
    (99, "Other"),
];
const OS_TYPES: &[(i64, &str)] = &[
    (0, "Unknown"),
    (99, "Other"),
    (100, "Windows"),
    (101, "Windows Mobile"),
    (200, "Linux"),
    (201, "Android"),
    (300, "macOS"),
    (301, "iOS"),
    (302, "iPadOS"),
];
const RISK_LEVELS: &[(i64, &str)] = &[(0, "Info"), (1, "Low"), (2, "Medium"), (3, "High"), (4, "Critical"), (99, "Other")];

/// An `_id` path, its caption's path, and the schema's captions.
type CaptionList = (&'static str, &'static str, &'static [(i64, &'static str)]);

/// Caption attributes set from their `_id` siblings (`disposition` from
/// `disposition_id`, ...) by `set_captions`.
pub const CAPTIONS: &[CaptionList] = &[
    (
        "disposition_id",
        "disposition",
        &[
            (0, "Unknown"),
            (1, "Allowed"),
            (2, "Blocked"),
            (3, "Quarantined"),
            (4, "Isolated"),
            (5, "Deleted"),
            (6, "Dropped"),
            (7, "Custom Action"),
            (8, "Approved"),
            (9, "Restored"),
            (10, "Exonerated"),
            (11, "Corrected"),
            (12, "Partially Corrected"),
            (13, "Uncorrected"),
            (14, "Delayed"),
            (15, "Detected"),
            (16, "No Action"),
            (17, "Logged"),
            (18, "Tagged"),
            (19, "Alert"),
            (20, "Count"),
            (21, "Reset"),
            (22, "Captcha"),
            (23, "Challenge"),
            (24, "Access Revoked"),
            (25, "Rejected"),
            (26, "Unauthorized"),
            (27, "Error"),
            (99, "Other"),
        ],
    ),
    (
        "action_id",
        "action",
        &[
            (0, "Unknown"),
            (1, "Allowed"),
            (2, "Denied"),
            (3, "Observed"),
            (4, "Modified"),
            (99, "Other"),
        ],
    ),
    (
        "direction_id",
        "direction",
        &[
            (0, "Unknown"),
            (1, "Inbound"),
            (2, "Outbound"),
            (3, "Internal"),
            (4, "Local"),
            (99, "Other"),
        ],
    ),
    (
        "connection_info.direction_id",
        "connection_info.direction",
        &[
            (0, "Unknown"),
            (1, "Inbound"),
            (2, "Outbound"),
            (3, "Lateral"),
            (4, "Local"),
            (99, "Other"),
        ],
    ),
    (
        "connection_info.boundary_id",
        "connection_info.boundary",
        &[(0, "Unknown"), (1, "Localhost"), (2, "Internal"), (3, "External"), (99, "Other")],
    ),
    (
        "connection_info.protocol_ver_id",
        "connection_info.protocol_ver",
        &[
            (0, "Unknown"),
            (4, "Internet Protocol version 4 (IPv4)"),
            (6, "Internet Protocol version 6 (IPv6)"),
            (99, "Other"),
        ],
    ),
    (
        "rcode_id",
        "rcode",
        &[
            (0, "NoError"),
            (1, "FormError"),
            (2, "ServError"),
            (3, "NXDomain"),
            (4, "NotImp"),
            (5, "Refused"),
            (6, "YXDomain"),
            (7, "YXRRSet"),
            (8, "NXRRSet"),
            (9, "NotAuth"),
            (10, "NotZone"),
            (11, "DSOTYPENI"),
            (16, "BADSIG_VERS"),
            (17, "BADKEY"),
            (18, "BADTIME"),
            (19, "BADMODE"),
            (20, "BADNAME"),
            (21, "BADALG"),
            (22, "BADTRUNC"),
            (23, "BADCOOKIE"),
            (99, "Other"),
        ],
    ),
    (
        "query_result_id",
        "query_result",
        &[
            (0, "Unknown"),
            (1, "Exists"),
            (2, "Partial"),
            (3, "Does not exist"),
            (4, "Error"),
            (5, "Unsupported"),
            (99, "Other"),
        ],
    ),
    (
        "logon_type_id",
        "logon_type",
        &[
            (0, "Unknown"),
            (1, "System"),
            (2, "Interactive"),
            (3, "Network"),
            (4, "Batch"),
            (5, "OS Service"),
            (7, "Unlock"),
            (8, "Network Cleartext"),
            (9, "New Credentials"),
            (10, "Remote Interactive"),
            (11, "Cached Interactive"),
            (12, "Cached Remote Interactive"),
            (13, "Cached Unlock"),
            (99, "Other"),
        ],
    ),
    (
        "auth_protocol_id",
        "auth_protocol",
        &[
            (0, "Unknown"),
            (1, "NTLM"),
            (2, "Kerberos"),
            (3, "Digest"),
            (4, "OpenID"),
            (5, "SAML"),
            (6, "OAUTH 2.0"),
            (7, "PAP"),
            (8, "CHAP"),
            (9, "EAP"),
            (10, "RADIUS"),
            (11, "Basic Authentication"),
            (12, "LDAP"),
            (99, "Other"),
        ],
    ),
    (
        "injection_type_id",
        "injection_type",
        &[
            (0, "Unknown"),
            (1, "Remote Thread"),
            (2, "Load Library"),
            (3, "Queue APC"),
            (99, "Other"),
        ],
    ),
    (
        "launch_type_id",
        "launch_type",
        &[(0, "Unknown"), (1, "Spawn"), (2, "Fork"), (3, "Exec"), (99, "Other")],
    ),
    ("device.type_id", "device.type", DEVICE_TYPES),
    (
        "device.risk_level_id",
        "device.risk_level",
        &[(0, "Info"), (1, "Low"), (2, "Medium"), (3, "High"), (4, "Critical"), (99, "Other")],
    ),
    ("device.os.type_id", "device.os.type", OS_TYPES),
    (
        "verdict_id",
        "verdict",
        &[
            (0, "Unknown"),
            (1, "False Positive"),
            (2, "True Positive"),
            (3, "Disregard"),
            (4, "Suspicious"),
            (5, "Benign"),
            (6, "Test"),
            (7, "Insufficient Data"),
            (8, "Security Risk"),
            (9, "Managed Externally"),
            (10, "Duplicate"),
            (99, "Other"),
        ],
    ),
    (
        "win_service.service_start_type_id",
        "win_service.service_start_type",
        &[
            (0, "Unknown"),
            (1, "Boot"),
            (2, "System"),
            (3, "Auto"),
            (4, "Demand"),
            (5, "Disabled"),
            (99, "Other"),
        ],
    ),
    (
        "win_service.service_type_id",
        "win_service.service_type",
        &[
            (0, "Unknown"),
            (1, "Kernel Driver"),
            (2, "File System Driver"),
            (3, "Own Process"),
            (4, "Share Process"),
            (99, "Other"),
        ],
    ),
    (
        "log_type_id",
        "log_type",
        &[(0, "Unknown"), (1, "OS"), (2, "Application"), (99, "Other")],
    ),
    ("user.type_id", "user.type", USER_TYPES),
    ("actor.user.type_id", "actor.user.type", USER_TYPES),
    ("user.account.type_id", "user.account.type", ACCOUNT_TYPES),
    ("actor.user.account.type_id", "actor.user.account.type", ACCOUNT_TYPES),
    ("src_endpoint.type_id", "src_endpoint.type", DEVICE_TYPES),
    ("src_endpoint.os.type_id", "src_endpoint.os.type", OS_TYPES),
    ("risk_level_id", "risk_level", RISK_LEVELS),
    ("user.risk_level_id", "user.risk_level", RISK_LEVELS),
    (
        "reg_value.type_id",
        "reg_value.type",
        &[
            (0, "Unknown"),
            (1, "REG_BINARY"),
            (2, "REG_DWORD"),
            (3, "REG_DWORD_BIG_ENDIAN"),
            (4, "REG_EXPAND_SZ"),
            (5, "REG_LINK"),
            (6, "REG_MULTI_SZ"),
            (7, "REG_NONE"),
            (8, "REG_QWORD"),
            (9, "REG_QWORD_LITTLE_ENDIAN"),
            (10, "REG_SZ"),
            (99, "Other"),
        ],
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_mapped_activity_names_a_listed_class_and_activity() {
        for table in super::super::TABLES {
            for act in table.all_activities() {
                let class = super::class(act.class_uid);
                assert!(
                    matches!(act.activity_id, 0 | 99) || class.activities.iter().any(|(i, _)| *i == act.activity_id),
                    "{}: activity {} not in class {}",
                    table.name,
                    act.activity_id,
                    class.uid
                );
            }
        }
    }
}
