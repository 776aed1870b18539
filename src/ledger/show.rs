//! Entries as people read them: every field of the format's section 1 as JSON (details
//! parsed, hashes in hex, the time in RFC 3339 as well as milliseconds), and one table row.
//! Pure: the verifier and the service both show entries through here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::bundle::{BundleError, Line};
use super::entry::Entry;

/// `time_ms` as RFC 3339 in UTC with milliseconds, e.g. `2023-11-14T22:13:20.000Z`.
pub fn rfc3339(time_ms: i64) -> String {
    let (days, ms) = (
        time_ms.div_euclid(86_400_000),
        time_ms.rem_euclid(86_400_000),
    );
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar), after
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The names of [`entry_json`]'s fields, in the order of docs/audit-log-format.md section 1
/// (a JSON object's keys come back sorted).
pub const ENTRY_FIELDS: [&str; 19] = [
    "seq",
    "time",
    "time_ms",
    "prev",
    "salt",
    "project",
    "project_seq",
    "actor_kind",
    "actor_id",
    "auth_method",
    "second_factor",
    "action",
    "outcome",
    "records",
    "client_ip",
    "user_agent",
    "request_id",
    "subjects",
    "details",
];

/// The entry as JSON, with the field names of the format document.
pub fn entry_json(e: &Entry) -> Value {
    let details = serde_json::from_str::<Value>(&e.details)
        .unwrap_or_else(|_| Value::String(e.details.clone()));
    json!({
        "seq": e.seq,
        "time": rfc3339(e.time_ms),
        "time_ms": e.time_ms,
        "prev": hex::encode(e.prev),
        "salt": hex::encode(e.salt),
        "project": e.project,
        "project_seq": e.project_seq,
        "actor_kind": e.actor.kind.as_str(),
        "actor_id": e.actor.id,
        "auth_method": e.actor.method.as_str(),
        "second_factor": e.actor.second_factor,
        "action": e.action.as_str(),
        "outcome": e.outcome.as_str(),
        "records": e.records,
        "client_ip": e.client_ip,
        "user_agent": e.user_agent,
        "request_id": e.request_id,
        "subjects": e.subjects.iter().map(hex::encode).collect::<Vec<_>>(),
        "details": details,
    })
}

/// The columns of [`table_row`].
pub const TABLE_HEADER: &str = "seq       time                      actor                           action                      outcome  project          records";

/// The entry as one line of a table under [`TABLE_HEADER`].
pub fn table_row(e: &Entry) -> String {
    let actor = format!("{}:{}", e.actor.kind.as_str(), e.actor.id);
    format!(
        "{:<9} {:<25} {:<31} {:<27} {:<8} {:<16} {}",
        e.seq,
        rfc3339(e.time_ms),
        actor,
        e.action.as_str(),
        e.outcome.as_str(),
        e.project.as_deref().unwrap_or("-"),
        e.records
    )
}

/// The entry an `entry` line of a bundle carries, if the line is one (a key hand-over's
/// entry is shown where its own `entry` line is). Call it on a bundle that verified: it
/// decodes, and checks nothing else.
pub fn entry_of_line(text: &str) -> Result<Option<Entry>, BundleError> {
    let line: Line = serde_json::from_str(text)
        .map_err(|e| BundleError::Unusable(format!("a bundle line is not understood: {e}")))?;
    let bytes = match line {
        Line::Entry { bytes, .. } => bytes,
        _ => return Ok(None),
    };
    let raw = STANDARD
        .decode(bytes)
        .map_err(|e| BundleError::Unusable(format!("an entry is not base64: {e}")))?;
    Entry::decode(&raw)
        .map(Some)
        .map_err(|e| BundleError::Unusable(format!("an entry cannot be decoded: {e}")))
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_written_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn the_field_order_names_every_field_once() {
        let json = super::entry_json(&crate::ledger::entry::tests::sample(3));
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut listed = super::ENTRY_FIELDS.to_vec();
        keys.sort();
        listed.sort();
        assert_eq!(keys, listed);
    }
}
