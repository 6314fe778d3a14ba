//! OCSF events as MessagePack records, the form Fluent Bit takes them in:
//! over the Forward protocol (`forward`) and from an input plugin
//! (`handoff`). Encoding is `rmpv`'s.

use anyhow::{Context, Result};
use rmpv::Value as Mp;

/// A JSON value as MessagePack (strings stay strings, integers stay exact).
pub fn to_msgpack(v: &serde_json::Value) -> Mp {
    match v {
        serde_json::Value::Null => Mp::Nil,
        serde_json::Value::Bool(b) => Mp::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Mp::from(u),
            (_, Some(i), _) => Mp::from(i),
            (_, _, Some(f)) => Mp::F64(f),
            _ => Mp::String(n.to_string().into()),
        },
        serde_json::Value::String(s) => Mp::String(s.as_str().into()),
        serde_json::Value::Array(items) => Mp::Array(items.iter().map(to_msgpack).collect()),
        serde_json::Value::Object(map) => Mp::Map(map.iter().map(|(k, v)| (Mp::String(k.as_str().into()), to_msgpack(v))).collect()),
    }
}

/// NDJSON events as a MessagePack stream of `[EventTime, record]` entries,
/// one per line: the event's `time` (epoch milliseconds) as Fluent Bit's
/// EventTime (ext type 0: seconds and nanoseconds, big-endian), the event
/// itself as the record.
pub fn event_entries(events: &[u8]) -> Result<Vec<u8>> {
    let mut entries = Vec::with_capacity(events.len());
    for line in events.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: serde_json::Value = serde_json::from_slice(line).context("an event is not JSON")?;
        let ms = event.get("time").and_then(serde_json::Value::as_i64).unwrap_or(0);
        let mut time = Vec::with_capacity(8);
        time.extend_from_slice(&((ms.div_euclid(1000)) as u32).to_be_bytes());
        time.extend_from_slice(&((ms.rem_euclid(1000) * 1_000_000) as u32).to_be_bytes());
        let entry = Mp::Array(vec![Mp::Ext(0, time), to_msgpack(&event)]);
        rmpv::encode::write_value(&mut entries, &entry)?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_the_event_time_and_exact_integers() {
        let events = b"{\"time\":1700000000123,\"n\":9007199254740993}\n{\"time\":-1500}\n";
        let bytes = event_entries(events).unwrap();
        let mut cursor = &bytes[..];
        let first = rmpv::decode::read_value(&mut cursor).unwrap();
        let second = rmpv::decode::read_value(&mut cursor).unwrap();
        assert!(cursor.is_empty());
        let Mp::Ext(0, time) = &first[0] else { panic!("{first}") };
        assert_eq!(u32::from_be_bytes(time[..4].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_be_bytes(time[4..].try_into().unwrap()), 123_000_000);
        assert_eq!(first[1]["n"].as_u64(), Some(9_007_199_254_740_993), "above 2^53, exact");
        let Mp::Ext(0, time) = &second[0] else { panic!("{second}") };
        assert_eq!(i64::from(u32::from_be_bytes(time[..4].try_into().unwrap()) as i32), -2);
        assert_eq!(u32::from_be_bytes(time[4..].try_into().unwrap()), 500_000_000);
        assert!(event_entries(b"{not json}\n").is_err());
    }
}
