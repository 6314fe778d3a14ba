//! Which Microsoft cloud and Graph version a tenant is reached at, and the
//! origins that follow for the host's allow-list.

use serde::Deserialize;

/// A Microsoft cloud (graph-api.md §1.8: Microsoft Graph national cloud
/// deployments).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// The global service; GCC (Moderate) tenants use it too.
    Global,
    /// GCC (Moderate): the global hosts.
    Gcc,
    /// US Government L4.
    GccHigh,
    /// US Government L5 (DoD).
    Dod,
    /// China, operated by 21Vianet: named only to be refused clearly.
    #[serde(alias = "21vianet")]
    China,
}

impl Cloud {
    pub fn login_endpoint(self) -> &'static str {
        match self {
            Cloud::Global | Cloud::Gcc => "https://login.microsoftonline.com",
            Cloud::GccHigh | Cloud::Dod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    pub fn graph_endpoint(self) -> &'static str {
        match self {
            Cloud::Global | Cloud::Gcc => "https://graph.microsoft.com",
            Cloud::GccHigh => "https://graph.microsoft.us",
            Cloud::Dod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// The Graph API version.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum ApiVersion {
    #[serde(rename = "v1.0")]
    V1,
    #[serde(rename = "beta")]
    Beta,
}

impl ApiVersion {
    pub fn path(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// `scheme://authority` of a URL.
pub fn origin(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..i + 3], &rest[..end])
        }
        None => url.to_string(),
    }
}
