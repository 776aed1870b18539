//! Mixpanel's ingestion formats: the request body and one record, parsed and checked.
//!
//! Bodies come as form fields (`data=<json or base64 json>&verbose=1`, what the SDKs send) or
//! as raw JSON; `data` holds one record or a list. Records are checked one by one so a bad one
//! never costs the good ones.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::Serialize;
use serde_json::{Map, Value};

use super::profile::{
    GROUP_OPERATIONS, GroupRef, GroupUpdate, OPERATIONS, ProfileOp, ProfileUpdate,
};
use crate::domain::{DistinctId, MAX_NAME_LEN, Timestamp};
use crate::store::NewEvent;

/// How a device's anonymous distinct_id begins: `$device:<$device_id>`.
pub const DEVICE_PREFIX: &str = "$device:";

/// Most properties an event or profile operation may carry, as Mixpanel allows.
pub const MAX_PROPERTIES: usize = 255;
/// Deepest nesting of lists and objects inside one property value.
pub const MAX_DEPTH: usize = 3;

/// A decoded request body.
#[derive(Debug)]
pub struct Payload {
    /// The records, in the order sent.
    pub records: Vec<Value>,
    /// Whether the client asked for Mixpanel's verbose answer (`verbose=1`).
    pub verbose: bool,
    /// Whether `data` came as a form field (body or query string), as the SDKs send it,
    /// rather than as a raw JSON body.
    pub form: bool,
    /// Whether the client asked Mixpanel to geolocate it from its address (`ip=1`).
    pub ip: bool,
    /// Whether the client loads the answer as an image (`img=1`, the tracking pixel).
    pub img: bool,
}

/// Why a body could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// The flags the SDKs send beside `data`, in the query string or the form body.
#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    verbose: bool,
    ip: bool,
    img: bool,
}

impl Flags {
    /// The flags set in a form (a query string or a form body), and its `data` field (the
    /// first), decoded: one pass over a body that is mostly `data`.
    fn read(form: &str) -> (Self, Option<Cow<'_, str>>) {
        let (mut flags, mut data) = (Self::default(), None);
        for (name, value) in fields(form) {
            let flag = match name.as_ref() {
                "data" if data.is_none() => {
                    data = Some(form_decoded(value));
                    continue;
                }
                "verbose" => &mut flags.verbose,
                "ip" => &mut flags.ip,
                "img" => &mut flags.img,
                _ => continue,
            };
            *flag |= form_decoded(value) == "1";
        }
        (flags, data)
    }

    fn or(self, other: Self) -> Self {
        Self {
            verbose: self.verbose || other.verbose,
            ip: self.ip || other.ip,
            img: self.img || other.img,
        }
    }
}

/// A form's fields (`application/x-www-form-urlencoded`): each name, decoded, and its value as
/// sent. Values are decoded only where they are read: a browser's whole batch is one of them.
fn fields(form: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    form.split('&')
        .filter(|f| !f.is_empty())
        .map(|f| f.split_once('=').unwrap_or((f, "")))
        .map(|(name, value)| (form_decoded(name), value))
}

/// A form component decoded as browsers encode it: `+` is a space and `%XX` a byte; a `%`
/// without two hex digits after it stands for itself, and bytes that are not UTF-8 become
/// U+FFFD. Copied a run at a time between escapes: a browser's base64 batch is mostly runs,
/// and decoding it byte by byte (`form_urlencoded`) cost about a tenth of the service's time
/// on browser batches (perf, 2026-12-07).
fn form_decoded(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    if memchr::memchr2(b'%', b'+', bytes).is_none() {
        return Cow::Borrowed(raw);
    }
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(found) = memchr::memchr2(b'%', b'+', &bytes[at..]) {
        let escape = at + found;
        out.extend_from_slice(&bytes[at..escape]);
        at = escape + 1;
        if bytes[escape] == b'+' {
            out.push(b' ');
        } else if let (Some(high), Some(low)) = (hex(bytes.get(at)), hex(bytes.get(at + 1))) {
            out.push((high * 16 + low) as u8);
            at += 2;
        } else {
            out.push(b'%');
        }
    }
    out.extend_from_slice(&bytes[at..]);
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Decodes a request into its records: `data` from a form body, a raw JSON body, or the
/// query string (the GET and image-pixel shape); `verbose`, `ip` and `img` from either.
pub fn decode_request(query: &str, body: &[u8], form: bool) -> Result<Payload, BodyError> {
    let (flags, query_data) = Flags::read(query);
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError(format!("the body is not valid UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    let raw_json = !form && (trimmed.starts_with('[') || trimmed.starts_with('{'));
    let (data, flags, form) = if raw_json {
        (Cow::Borrowed(text), flags, false)
    } else if !trimmed.is_empty() {
        let (body_flags, data) = Flags::read(text);
        let data = data.ok_or_else(|| BodyError("the form has no `data` field".into()))?;
        (decode_data(data)?, flags.or(body_flags), true)
    } else {
        let data = query_data.ok_or_else(|| {
            BodyError("the request has no `data`, in its body or its query string".into())
        })?;
        (decode_data(data)?, flags, true)
    };
    let value: Value = serde_json::from_str(&data)
        .map_err(|e| BodyError(format!("`data` is not valid JSON: {e}")))?;
    let records = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(BodyError(
                "`data` must be a JSON object or a list of objects".into(),
            ));
        }
    };
    Ok(Payload {
        records,
        verbose: flags.verbose,
        form,
        ip: flags.ip,
        img: flags.img,
    })
}

/// `data` is JSON, or JSON in base64 as older SDKs send it.
fn decode_data(data: Cow<'_, str>) -> Result<Cow<'_, str>, BodyError> {
    let t = data.trim_start();
    if t.starts_with('[') || t.starts_with('{') {
        return Ok(data);
    }
    STANDARD
        .decode(data.trim())
        .or_else(|_| URL_SAFE.decode(data.trim()))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Cow::Owned)
        .ok_or_else(|| BodyError("`data` is neither JSON nor base64-encoded JSON".into()))
}

/// Why one record was refused, in the shape of Mixpanel's `failed_records`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordError {
    /// The record's position in the batch.
    pub index: usize,
    /// Its `$insert_id`, when it had a readable one.
    #[serde(rename = "$insert_id", skip_serializing_if = "Option::is_none")]
    pub insert_id: Option<String>,
    /// The field at fault, as a JSON path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Which endpoint a record arrived on: `/import` demands more than `/track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Live tracking; time defaults to now.
    Track,
    /// Historical import; time and `$insert_id` are required.
    Import,
}

/// The moment and tolerance records are judged by.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    /// Now.
    pub now: Timestamp,
    /// How far ahead of now an event may be stamped.
    pub max_future_ms: i64,
}

/// An event record, parsed: the token it names, if any, and the event to store.
#[derive(Debug)]
pub struct ParsedEvent {
    /// `properties.token`.
    pub token: Option<String>,
    /// The event.
    pub event: NewEvent,
}

fn fail(
    index: usize,
    insert_id: &Option<String>,
    field: &str,
    message: impl Into<String>,
) -> RecordError {
    RecordError {
        index,
        insert_id: insert_id.clone(),
        field: field.to_owned(),
        message: message.into(),
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks property count, key lengths and nesting depth.
fn check_properties(props: &Map<String, Value>, field: &str) -> Result<(), String> {
    if props.len() > MAX_PROPERTIES {
        return Err(format!(
            "{field} has {} properties; at most {MAX_PROPERTIES} are allowed",
            props.len()
        ));
    }
    for (k, v) in props {
        if k.is_empty() || k.len() > MAX_NAME_LEN {
            return Err(format!(
                "{field} has a property name that is empty or longer than {MAX_NAME_LEN} bytes"
            ));
        }
        if depth(v) > MAX_DEPTH {
            return Err(format!(
                "{field}.{k} is nested deeper than {MAX_DEPTH} levels"
            ));
        }
    }
    Ok(())
}

/// Mixpanel times are seconds (possibly fractional) or milliseconds since the epoch.
fn event_time(v: &Value) -> Result<Timestamp, String> {
    let n = v
        .as_f64()
        .ok_or("must be a number of seconds or milliseconds since the epoch")?;
    if !n.is_finite() || n < 0.0 {
        return Err("must be a positive number of seconds or milliseconds since the epoch".into());
    }
    // Below 1e11 a number can only be seconds: 1e11 ms is 1973, 1e11 s is the year 5138.
    let ms = if n < 1e11 { n * 1000.0 } else { n };
    if ms > 4.0e15 {
        return Err("is too far in the future".into());
    }
    Ok(Timestamp::from_millis(ms as i64))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn insert_id_of(props: Option<&Map<String, Value>>) -> Option<String> {
    props.and_then(|p| p.get("$insert_id")).and_then(text)
}

/// Parses and checks one event record.
pub fn parse_event(
    index: usize,
    record: Value,
    endpoint: Endpoint,
    rules: TimeRules,
) -> Result<ParsedEvent, RecordError> {
    let Value::Object(mut obj) = record else {
        return Err(fail(index, &None, "", "each record must be a JSON object"));
    };
    let insert_id = insert_id_of(obj.get("properties").and_then(Value::as_object));
    let name = match obj.get("event") {
        Some(Value::String(s))
            if !s.trim().is_empty() && s.len() <= MAX_NAME_LEN && !s.contains('\0') =>
        {
            s.clone()
        }
        Some(Value::String(_)) => {
            return Err(fail(
                index,
                &insert_id,
                "event",
                format!("must be 1 to {MAX_NAME_LEN} bytes, with no NUL character"),
            ));
        }
        Some(_) => return Err(fail(index, &insert_id, "event", "must be a string")),
        None => return Err(fail(index, &insert_id, "event", "is required")),
    };
    let Some(Value::Object(mut props)) = obj.remove("properties") else {
        return Err(fail(
            index,
            &insert_id,
            "properties",
            "is required and must be an object",
        ));
    };
    check_properties(&props, "properties").map_err(|m| fail(index, &insert_id, "properties", m))?;
    let token = props
        .remove("token")
        .and_then(|t| t.as_str().map(str::to_owned));
    // Simplified ID merge: without a distinct_id, the event belongs to its $user_id, else to
    // its device as "$device:<$device_id>"; a `$merge` event to the first id it merges.
    let given = props.remove("distinct_id").as_ref().and_then(text);
    let derived = || {
        let user = props.get("$user_id").and_then(text);
        let device = props.get("$device_id").and_then(text);
        let merged = props
            .get("$distinct_ids")
            .and_then(|ids| ids.as_array()?.first().and_then(text));
        user.or_else(|| device.map(|d| format!("{DEVICE_PREFIX}{d}")))
            .or(merged)
    };
    let distinct_id = match given.or_else(derived) {
        Some(d) => DistinctId::parse(&d)
            .map_err(|e| fail(index, &insert_id, "properties.distinct_id", e.0))?,
        None => {
            return Err(fail(
                index,
                &insert_id,
                "properties.distinct_id",
                "is required (or $user_id, $device_id, or $distinct_ids in a $merge)",
            ));
        }
    };
    let time = match props.remove("time") {
        Some(t) => event_time(&t).map_err(|m| fail(index, &insert_id, "properties.time", m))?,
        // The server SDKs send `merge` to /import without a time: it happens when received.
        None if endpoint == Endpoint::Track || name == "$merge" => rules.now,
        None => {
            return Err(fail(
                index,
                &insert_id,
                "properties.time",
                "is required on /import",
            ));
        }
    };
    if time.millis() > rules.now.millis() + rules.max_future_ms {
        return Err(fail(
            index,
            &insert_id,
            "properties.time",
            "is too far in the future",
        ));
    }
    props.remove("$insert_id");
    if let Some(id) = &insert_id {
        let ok = !id.is_empty()
            && id.len() <= 36
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(fail(
                index,
                &insert_id,
                "properties.$insert_id",
                "must be 1 to 36 letters, digits or '-'",
            ));
        }
    } else if endpoint == Endpoint::Import && name != "$merge" {
        // A merge sent twice merges nothing more: it needs no id to be deduplicated by.
        return Err(fail(
            index,
            &None,
            "properties.$insert_id",
            "is required on /import",
        ));
    }
    Ok(ParsedEvent {
        token,
        event: NewEvent {
            event: name,
            distinct_id,
            time,
            insert_id,
            properties: props,
        },
    })
}

/// A profile record, parsed: its `$token` and the update.
#[derive(Debug)]
pub struct ParsedUpdate {
    /// `$token`.
    pub token: Option<String>,
    /// The update.
    pub update: ProfileUpdate,
}

/// Parses and checks one engage record: `$token`, `$distinct_id` and exactly one operation.
pub fn parse_update(index: usize, record: &Value) -> Result<ParsedUpdate, RecordError> {
    let none = None;
    let (obj, token) = profile_record(index, record)?;
    let distinct_id = obj
        .get("$distinct_id")
        .and_then(text)
        .ok_or_else(|| fail(index, &none, "$distinct_id", "is required"))
        .and_then(|d| DistinctId::parse(&d).map_err(|e| fail(index, &none, "$distinct_id", e.0)))?;
    let op = operation(index, obj, &OPERATIONS)?;
    Ok(ParsedUpdate {
        token,
        update: ProfileUpdate { distinct_id, op },
    })
}

/// A profile record's object and the `$token` it names.
fn profile_record(
    index: usize,
    record: &Value,
) -> Result<(&Map<String, Value>, Option<String>), RecordError> {
    let obj = record
        .as_object()
        .ok_or_else(|| fail(index, &None, "", "each record must be a JSON object"))?;
    let token = obj
        .get("$token")
        .and_then(|t| t.as_str().map(str::to_owned));
    Ok((obj, token))
}

/// The one operation a profile record carries, out of those `allowed`.
fn operation(
    index: usize,
    obj: &Map<String, Value>,
    allowed: &[&str],
) -> Result<ProfileOp, RecordError> {
    let none = None;
    let ops: Vec<&str> = OPERATIONS
        .iter()
        .copied()
        .filter(|op| obj.contains_key(*op))
        .collect();
    let [op] = ops[..] else {
        return Err(fail(
            index,
            &none,
            "",
            format!("a record needs exactly one of {}", allowed.join(", ")),
        ));
    };
    if !allowed.contains(&op) {
        return Err(fail(
            index,
            &none,
            op,
            format!(
                "is not an operation here; use one of {}",
                allowed.join(", ")
            ),
        ));
    }
    let arg = &obj[op];
    if let Value::Object(m) = arg {
        check_properties(m, op).map_err(|m| fail(index, &none, op, m))?;
    }
    ProfileOp::parse(op, arg).map_err(|m| fail(index, &none, op, m))
}

/// A group record, parsed: the token it names and the update.
#[derive(Debug)]
pub struct ParsedGroupUpdate {
    /// `$token`.
    pub token: Option<String>,
    /// The update.
    pub update: GroupUpdate,
}

/// Parses and checks one `/groups` record: `$token`, `$group_key`, `$group_id` (text or a
/// number) and exactly one of the operations groups take.
pub fn parse_group_update(index: usize, record: &Value) -> Result<ParsedGroupUpdate, RecordError> {
    let none = None;
    let (obj, token) = profile_record(index, record)?;
    let name = |field: &str| {
        let value = obj
            .get(field)
            .and_then(text)
            .ok_or_else(|| fail(index, &none, field, "is required, as text or a number"))?;
        // PostgreSQL refuses a NUL in text: it would fail the write, not the request.
        if value.is_empty() || value.len() > MAX_NAME_LEN || value.contains('\0') {
            return Err(fail(
                index,
                &none,
                field,
                format!("must be 1 to {MAX_NAME_LEN} bytes, with no NUL character"),
            ));
        }
        Ok(value)
    };
    let group = GroupRef {
        key: name("$group_key")?,
        id: name("$group_id")?,
    };
    let op = operation(index, obj, &GROUP_OPERATIONS)?;
    Ok(ParsedGroupUpdate {
        token,
        update: GroupUpdate { group, op },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    fn rules() -> TimeRules {
        TimeRules {
            now: Timestamp::from_millis(NOW),
            max_future_ms: 3_600_000,
        }
    }

    #[test]
    fn bodies_decode_from_form_base64_and_raw_json() {
        let raw = br#"[{"event":"a"},{"event":"b"}]"#;
        assert_eq!(decode_request("", raw, false).unwrap().records.len(), 2);
        let form =
            serde_urlencoded::to_string([("data", r#"{"event":"a"}"#), ("verbose", "1")]).unwrap();
        let p = decode_request("", form.as_bytes(), true).unwrap();
        assert!(p.verbose && p.records.len() == 1);
        let b64 = STANDARD.encode(r#"{"event":"a"}"#);
        assert_eq!(
            decode_request("", format!("data={}", urlencode(&b64)).as_bytes(), true)
                .unwrap()
                .records
                .len(),
            1
        );
        assert!(decode_request("", b"data=%7Bnot json", true).is_err());
        assert!(decode_request("", &[0xff, 0xfe], false).is_err());
        assert!(decode_request("", b"42", false).is_err());
    }

    #[test]
    fn flags_and_data_come_from_the_query_string_too() {
        // The browser SDK: flags in the query, data in a form body.
        let b64 = urlencode(&STANDARD.encode(r#"[{"event":"a"},{"event":"b"}]"#));
        let p = decode_request(
            "verbose=1&ip=1&_=1733",
            format!("data={b64}").as_bytes(),
            false,
        )
        .unwrap();
        assert!(p.verbose && p.ip && !p.img && p.form && p.records.len() == 2);
        // The Node SDK's GET and the image pixel: everything in the query.
        let p = decode_request(&format!("data={b64}&ip=0&verbose=0&img=1"), b"", false).unwrap();
        assert!(!p.verbose && !p.ip && p.img && p.records.len() == 2);
        // A raw JSON body; ip=1 in the query still counts.
        let p = decode_request("ip=1", br#"{"event":"a"}"#, false).unwrap();
        assert!(!p.verbose && p.ip && !p.form);
        let none = decode_request("verbose=1", b"", false).unwrap_err();
        assert!(none.0.contains("no `data`"), "{none}");
        assert!(decode_request("data=%zz&verbose=1", b"", false).is_err());
    }

    fn urlencode(s: &str) -> String {
        serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
    }

    /// What `form_urlencoded` (through serde_urlencoded) makes of one value.
    fn as_the_crate_decodes(raw: &str) -> String {
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("x={raw}")).unwrap();
        fields
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    #[test]
    fn form_values_decode_as_form_urlencoded_decodes_them() {
        for raw in [
            "",
            "plain",
            "a+b%20c",
            "%2B%2f%3D",
            "%zz",
            "%4",
            "%",
            "100%",
            "%%41",
            "%E2%82%AC",
            "%FF%FEok",
            "+++",
            "%e2%82",
            "é%C3%A9",
        ] {
            assert_eq!(form_decoded(raw), as_the_crate_decodes(raw), "{raw:?}");
        }
        // Names are decoded too; values only where they are read.
        let p = decode_request(
            "verb%6Fse=1",
            b"d%61ta=%7B%22event%22%3A%22a+b%22%7D&ip=%31",
            false,
        )
        .unwrap();
        assert!(p.verbose && p.ip);
        assert_eq!(p.records, vec![json!({"event": "a b"})]);
    }

    proptest::proptest! {
        #[test]
        fn any_form_value_decodes_as_form_urlencoded_decodes_it(raw in "([^&]|%[0-9a-fA-F]{2})*") {
            proptest::prop_assert_eq!(form_decoded(&raw), as_the_crate_decodes(&raw));
        }
    }

    #[test]
    fn a_server_sdks_merge_needs_neither_distinct_id_nor_time() {
        let r =
            json!({"event": "$merge", "properties": {"$distinct_ids": ["u1", "u2"], "token": "t"}});
        let p = parse_event(0, r, Endpoint::Import, rules()).unwrap();
        assert_eq!(p.event.distinct_id.as_str(), "u1");
        assert_eq!(p.event.time.millis(), NOW);
    }

    #[test]
    fn events_take_seconds_or_millis_and_strip_reserved_properties() {
        let r = json!({"event": "Buy", "properties": {"token": "t", "distinct_id": 7, "time": 1_699_999_999.5, "$insert_id": "abc-1", "price": 3}});
        let p = parse_event(0, r, Endpoint::Import, rules()).unwrap();
        assert_eq!(p.token.as_deref(), Some("t"));
        assert_eq!(p.event.distinct_id.as_str(), "7");
        assert_eq!(p.event.time.millis(), 1_699_999_999_500);
        assert_eq!(p.event.insert_id.as_deref(), Some("abc-1"));
        assert_eq!(Value::Object(p.event.properties), json!({"price": 3}));
        let ms = json!({"event": "Buy", "properties": {"distinct_id": "u", "time": NOW}});
        assert_eq!(
            parse_event(0, ms, Endpoint::Track, rules())
                .unwrap()
                .event
                .time
                .millis(),
            NOW
        );
    }

    #[test]
    fn bad_records_name_the_field() {
        let cases = [
            (json!("x"), ""),
            (json!({"properties": {"distinct_id": "u"}}), "event"),
            (
                json!({"event": "", "properties": {"distinct_id": "u"}}),
                "event",
            ),
            (json!({"event": "a"}), "properties"),
            (
                json!({"event": "a", "properties": {}}),
                "properties.distinct_id",
            ),
            (
                json!({"event": "a", "properties": {"distinct_id": "u", "time": "noon"}}),
                "properties.time",
            ),
            (
                json!({"event": "a", "properties": {"distinct_id": "u", "time": (NOW + 7_200_000)}}),
                "properties.time",
            ),
            (
                json!({"event": "a", "properties": {"distinct_id": "u", "$insert_id": "no spaces"}}),
                "properties.$insert_id",
            ),
            (
                json!({"event": "a", "properties": {"distinct_id": "u", "deep": {"a": {"b": {"c": {"d": 1}}}}}}),
                "properties",
            ),
        ];
        for (i, (record, field)) in cases.iter().enumerate() {
            let e = parse_event(i, record.clone(), Endpoint::Track, rules()).unwrap_err();
            assert_eq!(e.field, *field, "case {i}: {}", e.message);
            assert_eq!(e.index, i);
        }
        let no_time = json!({"event": "a", "properties": {"distinct_id": "u", "$insert_id": "x"}});
        assert_eq!(
            parse_event(0, no_time, Endpoint::Import, rules())
                .unwrap_err()
                .field,
            "properties.time"
        );
    }

    #[test]
    fn engage_records_need_exactly_one_operation() {
        let ok = json!({"$token": "t", "$distinct_id": "u", "$set": {"plan": "pro"}});
        assert_eq!(parse_update(0, &ok).unwrap().token.as_deref(), Some("t"));
        let two = json!({"$distinct_id": "u", "$set": {}, "$unset": []});
        assert!(parse_update(0, &two).is_err());
        let none = json!({"$distinct_id": "u"});
        assert!(parse_update(0, &none).is_err());
        assert_eq!(
            parse_update(0, &json!({"$set": {}})).unwrap_err().field,
            "$distinct_id"
        );
    }
}
