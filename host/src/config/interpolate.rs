//! `${VAR}` and `${VAR:-default}` in the configuration's values, in
//! Vector's syntax (`$$` is a literal `$`), replaced after parsing so that a
//! secret with YAML-special characters is safe.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// Interpolates every value of `map`. Every environment variable that is
/// missing is named in one error, with the key that uses it, so that one
/// attempt shows all there is to set.
pub fn interpolate_map(map: &mut Map<String, Value>, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    let mut missing = Vec::new();
    for (key, value) in map.iter_mut() {
        let mut names = Vec::new();
        interpolate_value(value, env, &mut names).with_context(|| format!("in `{key}`"))?;
        missing.extend(names.into_iter().map(|name| format!("{name} (in `{key}`)")));
    }
    match missing.len() {
        0 => Ok(()),
        1 => bail!(
            "the environment variable {} is not set; set it where defender-ocsf runs, or give a default as ${{VAR:-default}}",
            missing[0]
        ),
        _ => bail!(
            "these environment variables are not set: {}; set them where defender-ocsf runs, or give defaults as ${{VAR:-default}}",
            missing.join(", ")
        ),
    }
}

fn interpolate_value(value: &mut Value, env: &dyn Fn(&str) -> Option<String>, missing: &mut Vec<String>) -> Result<()> {
    match value {
        Value::String(s) => *s = interpolate_into(s, env, missing)?,
        Value::Array(items) => items.iter_mut().try_for_each(|v| interpolate_value(v, env, missing))?,
        Value::Object(map) => map.values_mut().try_for_each(|v| interpolate_value(v, env, missing))?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}`, `${VAR:-default}` and `$$` in `text`. A missing variable
/// without a default is an error that names the variable (never its value).
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut missing = Vec::new();
    let out = interpolate_into(text, env, &mut missing)?;
    match missing.first() {
        Some(name) => bail!("the environment variable {name} is not set"),
        None => Ok(out),
    }
}

/// [`interpolate`], adding the names of missing variables to `missing`
/// instead of failing on the first.
fn interpolate_into(text: &str, env: &dyn Fn(&str) -> Option<String>, missing: &mut Vec<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(|| anyhow!("`${{` without a closing `}}`"))?;
            let (name, default) = match inner[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&inner[..end], None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("`${{{name}}}` is not a valid environment variable reference");
            }
            match (env(name), default) {
                (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (None, None) => missing.push(name.to_string()),
                (Some(_), None) => unreachable!("handled by the first arm"),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}
