//! Identity merge, as Mixpanel's SDKs expect it: the ids one person is known by before and
//! after signing in become one person, for reads, exports and erasure.
//!
//! Three kinds of event link an id to the person's canonical id:
//! - any event carrying both `$device_id` and `$user_id` (simplified ID merge): the device's
//!   `$device:<id>` becomes the user's;
//! - `$identify` (the SDKs' `identify`): `$anon_distinct_id` becomes `distinct_id`'s;
//! - `$create_alias` (`alias`): `distinct_id` becomes `alias`'s;
//! - `$merge` (the server SDKs' `merge`): each id of `$distinct_ids` after the first becomes
//!   the first's. Only from a service account (`/import`, as at Mixpanel): one `$merge` names
//!   up to 100 ids, and a page's public token must not ask for 100 links an event.
//!
//! The store keeps the links as a star per person (aliases point at the canonical id) and
//! refuses to merge two people who already have ids of their own, so an anonymous sender with
//! a project's public token can attach a new id to someone but never join two people's data.

use serde_json::{Map, Value};

use super::mixpanel::DEVICE_PREFIX;
use crate::domain::DistinctId;
pub use crate::domain::profile::IdentityLink as Link;
use crate::domain::profile::MAX_IDS_PER_PERSON;
use crate::store::NewEvent;

fn id_of(value: &Value) -> Option<DistinctId> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    DistinctId::parse(&text).ok()
}

fn id(props: &Map<String, Value>, key: &str) -> Option<DistinctId> {
    id_of(props.get(key)?)
}

/// Who sent a batch, which decides whether `$merge` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Anyone holding a project's public token: browsers, apps (`/track`, `/engage`).
    PublicToken,
    /// A service account, authenticated with its secret (`/import`).
    ServiceAccount,
}

/// The links a batch of events asks for, in order, without repeats or self-links.
pub fn links_of(events: &[NewEvent], sender: Sender) -> Vec<Link> {
    let mut out: Vec<Link> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in events {
        let p = &e.properties;
        let candidates = [
            // Simplified ID merge: the device joins the signed-in user.
            id(p, "$device_id")
                .zip(id(p, "$user_id"))
                .and_then(|(d, u)| {
                    let device =
                        DistinctId::parse(&format!("{DEVICE_PREFIX}{}", d.as_str())).ok()?;
                    Some((device, u))
                }),
            (e.event == "$identify")
                .then(|| id(p, "$anon_distinct_id"))
                .flatten()
                .map(|anon| (anon, e.distinct_id.clone())),
            (e.event == "$create_alias")
                .then(|| id(p, "alias"))
                .flatten()
                .map(|alias| (e.distinct_id.clone(), alias)),
        ];
        let merged: Vec<(DistinctId, DistinctId)> = match p.get("$distinct_ids") {
            Some(Value::Array(ids)) if e.event == "$merge" && sender == Sender::ServiceAccount => {
                // More ids than a person may have cannot all be linked anyway.
                let ids: Vec<DistinctId> = ids
                    .iter()
                    .filter_map(id_of)
                    .take(MAX_IDS_PER_PERSON)
                    .collect();
                ids.iter()
                    .skip(1)
                    .filter_map(|a| Some((a.clone(), ids.first()?.clone())))
                    .collect()
            }
            _ => Vec::new(),
        };
        for (alias, canonical) in candidates.into_iter().flatten().chain(merged) {
            let link = Link { alias, canonical };
            if link.alias != link.canonical
                && seen.insert((link.alias.clone(), link.canonical.clone()))
            {
                out.push(link);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Timestamp;

    fn event(name: &str, who: &str, props: Value) -> NewEvent {
        NewEvent {
            event: name.into(),
            distinct_id: DistinctId::parse(who).unwrap(),
            time: Timestamp::from_millis(0),
            insert_id: None,
            properties: props.as_object().unwrap().clone(),
        }
    }

    fn pairs(links: Vec<Link>) -> Vec<(String, String)> {
        links
            .into_iter()
            .map(|l| (l.alias.as_str().to_owned(), l.canonical.as_str().to_owned()))
            .collect()
    }

    #[test]
    fn each_sdk_call_that_merges_is_read_as_a_link() {
        let batch = [
            // Anonymous: nothing to link.
            event("Viewed", "$device:d1", json!({"$device_id": "d1"})),
            // After identify: the device joins the user, once however many events say so.
            event(
                "Signed In",
                "alice",
                json!({"$device_id": "d1", "$user_id": "alice"}),
            ),
            event(
                "Clicked",
                "alice",
                json!({"$device_id": "d1", "$user_id": "alice"}),
            ),
            // identify's own event names the anonymous id.
            event(
                "$identify",
                "alice",
                json!({"$anon_distinct_id": "$device:d1", "$user_id": "alice", "$device_id": "d1"}),
            ),
            // alias: the current id joins the alias.
            event("$create_alias", "$device:d2", json!({"alias": "bob"})),
            // An older SDK's anonymous id.
            event("$identify", "carol", json!({"$anon_distinct_id": "anon-7"})),
            // Nothing to merge with oneself, and unreadable ids are ignored.
            event("$identify", "dave", json!({"$anon_distinct_id": "dave"})),
            event("$create_alias", "erin", json!({"alias": {"not": "an id"}})),
            // A server SDK's merge: the later ids join the first.
            event(
                "$merge",
                "frank",
                json!({"$distinct_ids": ["frank", "frank-old", 7]}),
            ),
        ];
        let from_the_page = [
            ("$device:d1".to_owned(), "alice".to_owned()),
            ("$device:d2".to_owned(), "bob".to_owned()),
            ("anon-7".to_owned(), "carol".to_owned()),
        ];
        let mut from_a_server = from_the_page.to_vec();
        from_a_server.extend([
            ("frank-old".to_owned(), "frank".to_owned()),
            ("7".to_owned(), "frank".to_owned()),
        ]);
        assert_eq!(
            pairs(links_of(&batch, Sender::ServiceAccount)),
            from_a_server
        );
        // A public token's $merge is kept as an event and links nothing.
        assert_eq!(pairs(links_of(&batch, Sender::PublicToken)), from_the_page);
    }
}
