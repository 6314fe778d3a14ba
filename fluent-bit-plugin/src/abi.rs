//! The C structures Fluent Bit shares with an external ("Go proxy") plugin,
//! laid out as in Fluent Bit 5.1's headers:
//! `include/fluent-bit/flb_plugin_proxy.h` (`flb_plugin_proxy_def`,
//! `flb_plugin_input_proxy_context`), `src/proxy/go/go.h`
//! (`flbgo_input_plugin`), `include/fluent-bit/flb_api.h` (`flb_api`) and
//! `include/fluent-bit/flb_config_map.h` (`flb_config_map`). Only the fields
//! this plugin reads or writes are typed; the rest keep their size.

use std::ffi::{c_char, c_int, c_void};

/// `FLB_PROXY_INPUT_PLUGIN`.
pub const INPUT_PLUGIN: c_int = 1;
/// `FLB_PROXY_GOLANG`: the proxy whose C ABI this plugin implements.
pub const GOLANG_PROXY: c_int = 11;
/// `FLB_CONFIG_MAP_STR`.
pub const CONFIG_MAP_STR: c_int = 0;

/// Fluent Bit's log levels (`FLB_LOG_ERROR` ... `FLB_LOG_TRACE`).
pub const LOG_ERROR: c_int = 1;
pub const LOG_WARN: c_int = 2;
pub const LOG_INFO: c_int = 3;
pub const LOG_DEBUG: c_int = 4;
pub const LOG_TRACE: c_int = 5;

/// `struct flb_plugin_proxy_def`: what `FLBPluginRegister` fills in.
#[repr(C)]
pub struct ProxyDef {
    pub kind: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *mut c_char,
    pub description: *mut c_char,
    pub event_type: c_int,
    pub config_map: *mut ConfigMapEntry,
}

/// `flb_log_print(type, file, line, fmt, ...)`.
pub type LogPrint = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...);

/// `input_get_property(key, instance)`: the property's value, or null.
pub type GetProperty = unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char;

/// `struct flb_api`: the functions Fluent Bit lends a plugin.
#[repr(C)]
pub struct Api {
    pub output_get_property: *const c_void,
    pub input_get_property: Option<GetProperty>,
    pub output_get_cmt_instance: *const c_void,
    pub input_get_cmt_instance: *const c_void,
    pub log_print: Option<LogPrint>,
    pub input_log_check: *const c_void,
    pub output_log_check: *const c_void,
    pub custom_get_property: *const c_void,
    pub custom_log_check: *const c_void,
}

/// `struct flb_plugin_input_proxy_context`: one per input instance. Its
/// `remote_context` is the plugin's own pointer, handed back to the `Ctx`
/// callbacks; that is how two instances are told apart.
#[repr(C)]
pub struct InputProxyContext {
    pub coll_fd: c_int,
    pub remote_context: *mut c_void,
    pub proxy: *mut c_void,
}

/// `struct flbgo_input_plugin`: what `FLBPluginInit` receives. Fluent Bit
/// shares one per loaded library; `i_ins` and `context` are those of the
/// instance being initialised.
#[repr(C)]
pub struct InputPlugin {
    pub name: *mut c_char,
    pub api: *mut Api,
    pub i_ins: *mut c_void,
    pub context: *mut InputProxyContext,
}

/// `struct flb_config_map`: one property the plugin accepts. Fluent Bit
/// copies the list at each instance and refuses properties not in it. The
/// list ends with an entry whose name is null.
#[repr(C)]
pub struct ConfigMapEntry {
    pub kind: c_int,
    pub name: *const c_char,
    pub def_value: *const c_char,
    pub flags: c_int,
    pub set_property: c_int,
    pub offset: usize,
    pub desc: *const c_char,
    /// `struct flb_config_map_val value` (a union, `raw`, `mult`, `_head`)
    /// and `struct mk_list _head`: Fluent Bit's own, zero here.
    pub private: [usize; 7],
}

// The sizes Fluent Bit's headers give these structures on 64-bit Linux.
const _: () = assert!(std::mem::size_of::<ProxyDef>() == 48);
const _: () = assert!(std::mem::size_of::<Api>() == 72);
const _: () = assert!(std::mem::size_of::<InputProxyContext>() == 24);
const _: () = assert!(std::mem::size_of::<ConfigMapEntry>() == 104);
