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
        uid: 5023,
        name: "Cloud Resources Inventory Info",
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
/// constraints, less the profiles' `osint` and `cloud`, and its required
/// values beyond those every event has; a conformance test compares the
/// two).
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
        2005 => &[&["finding_info_list"], &["assignee", "assignee_group"], &["status_id"]],
        3001 => &[&["user"]],
        3002 => &[&["user"], &["service", "dst_endpoint"]],
        3006 => &[&["group"]],
        4001 | 4003 => &[ENDPOINT],
        4009 => &[&["email"], &["direction_id"]],
        4011 => &[&["email_uid"], &["file"]],
        4012 => &[&["email_uid"], &["url"]],
        5001 | 5002 | 5019 => &[DEVICE],
        5003 => &[&["user"]],
        5014 => &[&["peripheral_device"], &["query_result_id"]],
        5023 => &[&["container", "database", "databucket", "idp", "resources", "table"]],
        5040 => &[DEVICE, &["query_evidence"], &["query_result_id"]],
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

/// What a `device` needs to be one.
/// A location needs one of these (OCSF's `at_least_one`): coordinates
/// alone do not make one.
pub const LOCATION_IDENTITY: &[&str] = &["city", "country", "postal_code", "region"];

pub const DEVICE_IDENTITY: &[&str] = &["uid", "hostname", "name", "ip", "instance_uid", "interface_uid", "interface_name"];

/// The attributes that make an object valid (its `at_least_one`, or its
/// one required attribute): the ones whose source columns an error about
/// a missing object names.
pub fn identity(object: &str) -> &'static [&'static str] {
    match object {
        "device" => DEVICE_IDENTITY,
        "process" => &["pid", "uid", "cpid"],
        "user" | "group" => &["uid", "name", "account"],
        "job" | "app" | "win_service" | "file" => &["name"],
        "peripheral_device" => &["name", "uid"],
        "email" => &["from", "to"],
        "reg_key" => &["path"],
        "reg_value" => &["name", "path"],
        "dst_endpoint" | "src_endpoint" => ENDPOINT_IDENTITY,
        "actor" => &["process", "user", "invoked_by", "session", "app_name", "app_uid"],
        "finding_info" => &["uid"],
        "api" => &["operation"],
        "scan" => &["name", "uid"],
        // One of them, and only one: the kind of thing the evidence is.
        "query_evidence" => &[
            "connection_info",
            "file",
            "folder",
            "group",
            "job",
            "kernel",
            "module",
            "network_interfaces",
            "peripheral_device",
            "process",
            "reg_key",
            "reg_value",
            "service",
            "session",
            "startup_item",
            "user",
        ],
        _ => &[],
    }
}

/// An event's `type_name`: its class's name and its activity's caption
/// ("Process Activity: Launch"), made once for every class and activity.
pub fn type_name(class: &Class, activity_id: u32) -> &'static str {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<(u32, &'static str), String>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut names = std::collections::HashMap::new();
        for class in CLASSES {
            for (_, activity) in [(0, "Unknown"), (99, "Other")].iter().chain(class.activities) {
                names.insert((class.uid, *activity), format!("{}: {activity}", class.name));
            }
        }
        names
    });
    // Every caption `activity_name` gives is among them.
    names.get(&(class.uid, class.activity_name(activity_id))).map_or("", String::as_str)
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

#[cfg(test)]
mod tests {
    /// Each class's type names are its name and the caption of the activity,
    /// for any activity id, listed or not.
    #[test]
    fn type_names_are_the_class_and_the_activity_caption() {
        for class in super::CLASSES {
            for id in (0..=100).chain([u32::MAX]) {
                let expected = format!("{}: {}", class.name, class.activity_name(id));
                assert_eq!(super::type_name(class, id), expected, "{} {id}", class.uid);
            }
        }
    }

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
