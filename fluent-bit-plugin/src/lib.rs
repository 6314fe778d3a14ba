//! `defender_ocsf`, a Fluent Bit input plugin: the defender-ocsf collector
//! inside Fluent Bit, configured in Fluent Bit's own YAML.
//!
//! Fluent Bit loads this library from the `plugins:` section of its
//! configuration and drives it through its external plugin interface, the
//! C ABI of its Go proxy (`src/flb_plugin_proxy.c`, `src/proxy/go/go.c`):
//!
//! - `FLBPluginRegister` names the input;
//! - `FLBPluginInit` reads the instance's properties, checks them as
//!   `defender-ocsf run` would, and starts the collector on its own thread;
//!   a bad configuration fails Fluent Bit's start with our message;
//! - `FLBPluginInputCallbackCtx`, called about once a second on the input's
//!   thread, hands Fluent Bit the batches waiting, never waiting itself;
//! - `FLBPluginInputCleanupCallbackCtx` follows Fluent Bit's append: the
//!   batches are delivered, and their checkpoints are saved;
//! - `FLBPluginExit` stops every input of this library.
//!
//! Each instance passes its own context to the `Ctx` callbacks, so several
//! `defender_ocsf` inputs (tenants) can run in one Fluent Bit. The work is
//! the host library's (`defender_ocsf_host`): the same component, sandbox,
//! limits and egress policy as the `defender-ocsf` program.

pub mod abi;
mod instance;
pub mod log;
pub mod properties;

use abi::{InputPlugin, ProxyDef};
use defender_ocsf_host::config::RunConfig;
use instance::Instance;
use std::ffi::{CStr, CString, c_int, c_void};
use std::sync::Mutex;

/// The input's name in Fluent Bit's configuration.
pub const NAME: &str = "defender_ocsf";

/// Every running instance, by address, for `FLBPluginExit`, which Fluent Bit
/// calls without a context.
static INSTANCES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Fills in the plugin's definition: an input (1) of the Go proxy (11),
/// named `defender_ocsf`, with its properties as the config map.
///
/// # Safety
/// `def` is Fluent Bit's definition to fill in.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut ProxyDef) -> c_int {
    let Some(def) = (unsafe { def.as_mut() }) else { return -1 };
    def.kind = abi::INPUT_PLUGIN;
    def.proxy = abi::GOLANG_PROXY;
    def.flags = 0;
    def.name = CString::new(NAME).expect("no NUL").into_raw();
    def.description = CString::new("Microsoft Defender XDR advanced hunting as OCSF 1.8.0 events")
        .expect("no NUL")
        .into_raw();
    def.config_map = properties::config_map();
    0
}

/// Starts one input: 1 on success, 0 (Fluent Bit then refuses to start)
/// after logging what to fix.
///
/// # Safety
/// `plugin` is the structure Fluent Bit passes, with its API table and the
/// instance being initialised.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut InputPlugin) -> c_int {
    guarded(0, || unsafe { init(plugin) })
}

/// A panic must not unwind into Fluent Bit (it would abort it): it is
/// logged, and the callback returns `failed`.
fn guarded<T>(failed: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("a defender_ocsf callback panicked; this is a bug, please report it with the log above");
        failed
    })
}

unsafe fn init(plugin: *mut InputPlugin) -> c_int {
    let Some(plugin) = (unsafe { plugin.as_mut() }) else { return 0 };
    let Some(api) = (unsafe { plugin.api.as_ref() }) else { return 0 };
    let (Some(get_property), Some(print)) = (api.input_get_property, api.log_print) else {
        return 0;
    };
    let fluent_log = log::FluentBitLog::new(print);
    let instance = plugin.i_ins;
    let get = |key: &str| -> Option<String> {
        let key = CString::new(key).ok()?;
        // SAFETY: the API's getter with the instance Fluent Bit initialises;
        // it returns null or a C string Fluent Bit owns.
        let value = unsafe { get_property(key.as_ptr(), instance) };
        (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned())
    };
    let fail = |message: String| -> c_int {
        let line = serde_json::json!({"level": "ERROR", "message": message});
        fluent_log.say(abi::LOG_ERROR, &line.to_string());
        0
    };
    let config = match properties::read(get)
        .and_then(|(file, values)| RunConfig::from_file_and_overrides(file.as_deref(), values, &|name| std::env::var(name).ok()))
    {
        Ok(config) => config,
        Err(e) => return fail(format!("configuration error: {e:#}")),
    };
    match &config.log_file {
        Some(path) => {
            if let Err(e) = defender_ocsf_host::telemetry::init_logging(&config.log_level, Some(path)) {
                return fail(format!("configuration error: {e:#}"));
            }
        }
        None => defender_ocsf_host::telemetry::init_logging_to(&config.log_level, fluent_log),
    }
    let started = match Instance::start(config) {
        Ok(started) => Box::new(started),
        Err(message) => return fail(message),
    };
    let address = Box::into_raw(started);
    INSTANCES.lock().unwrap_or_else(|p| p.into_inner()).push(address as usize);
    // SAFETY: the context of the instance being initialised; Fluent Bit
    // hands `remote_context` back to the Ctx callbacks.
    if let Some(context) = unsafe { plugin.context.as_mut() } {
        context.remote_context = address.cast();
    }
    tracing::info!("collecting");
    1
}

/// Hands Fluent Bit the waiting batches of the instance `context`, if any.
///
/// # Safety
/// `context` is what `FLBPluginInit` set; `data` and `size` are Fluent
/// Bit's out-parameters.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginInputCallbackCtx(context: *mut c_void, data: *mut *mut c_void, size: *mut usize) -> c_int {
    let (Some(instance), false, false) = (unsafe { context.cast::<Instance>().as_ref() }, data.is_null(), size.is_null()) else {
        return -1;
    };
    let (pointer, len) = guarded(None, || instance.collect()).unwrap_or((std::ptr::null_mut(), 0));
    unsafe {
        *data = pointer.cast();
        *size = len;
    }
    0
}

/// Fluent Bit has appended `data`: its batches are delivered.
///
/// # Safety
/// `context` is what `FLBPluginInit` set; `data` what the collect callback
/// returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginInputCleanupCallbackCtx(context: *mut c_void, data: *mut c_void) -> c_int {
    if let Some(instance) = unsafe { context.cast::<Instance>().as_ref() } {
        guarded((), || instance.cleanup(data.cast()));
    }
    0
}

/// Fluent Bit is stopping: stop every instance. Fluent Bit calls this once
/// per instance, without saying which.
#[unsafe(no_mangle)]
pub extern "C" fn FLBPluginExit() -> c_int {
    let running: Vec<usize> = std::mem::take(&mut *INSTANCES.lock().unwrap_or_else(|p| p.into_inner()));
    for address in running {
        // SAFETY: addresses of instances `FLBPluginInit` leaked; each is
        // taken out of INSTANCES once. It is left allocated: Fluent Bit may
        // still hold it as a context until it frees the input.
        let instance = unsafe { &*(address as *const Instance) };
        guarded((), || instance.stop());
    }
    0
}
