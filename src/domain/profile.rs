//! Mixpanel profile ("engage") operations, applied to a stored profile as pure functions.

use serde_json::{Map, Value};

use crate::domain::DistinctId;

/// One engage operation.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileOp {
    /// `$set`: overwrite these properties.
    Set(Map<String, Value>),
    /// `$set_once`: set these properties only where absent.
    SetOnce(Map<String, Value>),
    /// `$add`: add numbers to numeric properties.
    Add(Map<String, Value>),
    /// `$append`: push a value onto list properties.
    Append(Map<String, Value>),
    /// `$union`: add list values not already present.
    Union(Map<String, Value>),
    /// `$remove`: remove a value from list properties.
    Remove(Map<String, Value>),
    /// `$unset`: delete these properties.
    Unset(Vec<String>),
    /// `$delete`: delete the whole profile.
    Delete,
}

/// An operation on one person's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    /// Whose profile.
    pub distinct_id: DistinctId,
    /// What to do.
    pub op: ProfileOp,
}

/// The operation names a record may carry, exactly one per record.
pub const OPERATIONS: [&str; 8] = [
    "$set",
    "$set_once",
    "$add",
    "$append",
    "$union",
    "$remove",
    "$unset",
    "$delete",
];

impl ProfileOp {
    /// Parses the operation named `name` with its JSON argument.
    pub fn parse(name: &str, arg: &Value) -> Result<Self, String> {
        let object = || match arg {
            Value::Object(m) => Ok(m.clone()),
            _ => Err(format!("{name} takes an object of properties")),
        };
        Ok(match name {
            "$set" => Self::Set(object()?),
            "$set_once" => Self::SetOnce(object()?),
            "$add" => {
                let m = object()?;
                if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_number()) {
                    return Err(format!("$add needs a number for {k:?}"));
                }
                Self::Add(m)
            }
            "$append" => Self::Append(object()?),
            "$union" => {
                let m = object()?;
                if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_array()) {
                    return Err(format!("$union needs a list for {k:?}"));
                }
                Self::Union(m)
            }
            "$remove" => Self::Remove(object()?),
            "$unset" => match arg {
                Value::Array(items) => Self::Unset(
                    items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or("$unset takes a list of property names")
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err("$unset takes a list of property names".into()),
            },
            "$delete" => Self::Delete,
            other => return Err(format!("unknown profile operation {other:?}")),
        })
    }
}

impl ProfileUpdate {
    /// The profile after this update; `None` when the profile is deleted or never existed
    /// and the operation creates nothing.
    pub fn apply(&self, current: Option<Map<String, Value>>) -> Option<Map<String, Value>> {
        self.op.apply(current)
    }
}

/// Most ids one person may have; links beyond are not made (Mixpanel allows 500).
pub const MAX_IDS_PER_PERSON: usize = 100;

/// An id to be known as another person's: `alias` becomes one more id of `canonical`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    /// The id that joins.
    pub alias: DistinctId,
    /// The person it joins.
    pub canonical: DistinctId,
}

/// Whether a group profile's property value names the person `id`: it is their id, or a list
/// holding it (a company's `owner`, a team's `members`). That is the only way a group profile
/// can be about a person that the service can tell.
pub fn names(value: &Value, id: &str) -> bool {
    match value {
        Value::String(s) => s == id,
        Value::Number(n) => n.to_string() == id,
        Value::Array(items) => items.iter().any(|v| !v.is_array() && names(v, id)),
        _ => false,
    }
}

/// Takes out of `props` every mention of `id` (see [`names`]): properties that are the id go,
/// lists lose it; true if anything changed.
pub fn unname(props: &mut Map<String, Value>, id: &str) -> bool {
    let before = props.clone();
    props.retain(|_, v| v.is_array() || !names(v, id));
    for v in props.values_mut() {
        if let Value::Array(items) = v {
            items.retain(|item| item.is_array() || !names(item, id));
        }
    }
    *props != before
}

/// A group: Mixpanel's group analytics key (`company`) and the group's id in it (`acme`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupRef {
    /// The group key, such as `company`.
    pub key: String,
    /// The group's id under that key; numbers are kept as their decimal text.
    pub id: String,
}

/// An operation on one group's profile (`/groups`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupUpdate {
    /// Whose profile.
    pub group: GroupRef,
    /// What to do.
    pub op: ProfileOp,
}

/// The operations a group profile takes: Mixpanel's groups API has no `$add` or `$append`.
pub const GROUP_OPERATIONS: [&str; 6] = [
    "$set",
    "$set_once",
    "$union",
    "$remove",
    "$unset",
    "$delete",
];

impl ProfileOp {
    /// The profile after this operation; `None` when the profile is deleted or never existed
    /// and the operation creates nothing.
    pub fn apply(&self, current: Option<Map<String, Value>>) -> Option<Map<String, Value>> {
        let existed = current.is_some();
        let mut p = current.unwrap_or_default();
        match self {
            ProfileOp::Delete => return None,
            ProfileOp::Set(m) => p.extend(m.clone()),
            ProfileOp::SetOnce(m) => {
                for (k, v) in m {
                    p.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            ProfileOp::Add(m) => {
                for (k, v) in m {
                    let base = p.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                    let sum = base + v.as_f64().unwrap_or(0.0);
                    let n = if sum.fract() == 0.0 && sum.abs() < 9.0e15 {
                        Value::from(sum as i64)
                    } else {
                        Value::from(sum)
                    };
                    p.insert(k.clone(), n);
                }
            }
            ProfileOp::Append(m) => {
                for (k, v) in m {
                    list(&mut p, k).push(v.clone());
                }
            }
            ProfileOp::Union(m) => {
                for (k, v) in m {
                    let l = list(&mut p, k);
                    for item in v.as_array().into_iter().flatten() {
                        if !l.contains(item) {
                            l.push(item.clone());
                        }
                    }
                }
            }
            ProfileOp::Remove(m) => {
                for (k, v) in m {
                    if let Some(Value::Array(l)) = p.get_mut(k) {
                        l.retain(|x| x != v);
                    }
                }
            }
            ProfileOp::Unset(keys) => {
                if !existed {
                    return None;
                }
                for k in keys {
                    p.remove(k);
                }
            }
        }
        Some(p)
    }
}

/// The list under `key`, created (or replacing a scalar) as needed.
fn list<'a>(p: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = p
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(vec![]));
    if !slot.is_array() {
        *slot = Value::Array(vec![]);
    }
    slot.as_array_mut().expect("made a list above")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_group_profile_names_a_person_only_by_their_exact_id() {
        use serde_json::json;
        assert!(super::names(&json!("cust-7"), "cust-7"));
        assert!(super::names(&json!(42), "42"));
        assert!(super::names(&json!(["a", "cust-7"]), "cust-7"));
        assert!(!super::names(&json!("cust-70"), "cust-7"));
        assert!(!super::names(&json!([["cust-7"]]), "cust-7"));
        assert!(!super::names(&json!({"owner": "cust-7"}), "cust-7"));
        let mut props = json!({"owner": "cust-7", "members": ["cust-7", "cust-9"], "n": 7, "deep": [["cust-7"]]})
            .as_object()
            .unwrap()
            .clone();
        assert!(super::unname(&mut props, "cust-7"));
        assert_eq!(
            serde_json::Value::Object(props.clone()),
            json!({"members": ["cust-9"], "n": 7, "deep": [["cust-7"]]})
        );
        assert!(
            !super::unname(&mut props, "cust-7"),
            "nothing left to take out"
        );
    }

    use serde_json::json;

    use super::*;

    fn apply(op: &str, arg: Value, current: Option<Value>) -> Option<Value> {
        let u = ProfileUpdate {
            distinct_id: DistinctId::parse("u").unwrap(),
            op: ProfileOp::parse(op, &arg).unwrap(),
        };
        u.apply(current.map(|v| v.as_object().unwrap().clone()))
            .map(Value::Object)
    }

    #[test]
    fn operations_follow_mixpanel() {
        let p = Some(json!({"plan": "free", "n": 1, "tags": ["a"]}));
        assert_eq!(
            apply("$set", json!({"plan": "pro"}), p.clone()).unwrap()["plan"],
            "pro"
        );
        assert_eq!(
            apply("$set_once", json!({"plan": "pro", "x": 1}), p.clone()).unwrap()["plan"],
            "free"
        );
        assert_eq!(
            apply("$add", json!({"n": 2, "m": 1.5}), p.clone()).unwrap(),
            json!({"plan": "free", "n": 3, "m": 1.5, "tags": ["a"]})
        );
        assert_eq!(
            apply("$append", json!({"tags": "b"}), p.clone()).unwrap()["tags"],
            json!(["a", "b"])
        );
        assert_eq!(
            apply("$union", json!({"tags": ["a", "c"]}), p.clone()).unwrap()["tags"],
            json!(["a", "c"])
        );
        assert_eq!(
            apply("$remove", json!({"tags": "a"}), p.clone()).unwrap()["tags"],
            json!([])
        );
        assert_eq!(
            apply("$unset", json!(["plan", "tags"]), p.clone()).unwrap(),
            json!({"n": 1})
        );
        assert_eq!(apply("$delete", json!(""), p.clone()), None);
        assert_eq!(apply("$unset", json!(["plan"]), None), None);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(ProfileOp::parse("$add", &json!({"n": "x"})).is_err());
        assert!(ProfileOp::parse("$set", &json!([1])).is_err());
        assert!(ProfileOp::parse("$unset", &json!({"a": 1})).is_err());
        assert!(ProfileOp::parse("$explode", &json!({})).is_err());
    }
}
