//! Opt-outs and consent: recorded through the API (or an SDK property) under keyed lookups,
//! and enforced on the server when events and profile updates arrive.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::access::{Authorized, perm};
use crate::audit::{AuditLog, RequestContext};
use crate::domain::{DistinctId, Timestamp};
use crate::error::AppError;
use crate::events::profile::{ProfileOp, ProfileUpdate};
use crate::ledger::entry::Action;
use crate::ledger::merkle::Hash;
use crate::store::{ConsentRecord, NewEvent, Project, SharedStore};

/// Something ingested on behalf of one person.
pub trait Screened {
    /// Whose it is.
    fn person(&self) -> &DistinctId;
    /// The boolean value of property `name`, if it carries one.
    fn flag(&self, name: &str) -> Option<bool>;
    /// Whether it only removes data (always let through: it never stores anything new).
    fn removes_data(&self) -> bool {
        false
    }
}

impl Screened for NewEvent {
    fn person(&self) -> &DistinctId {
        &self.distinct_id
    }
    fn flag(&self, name: &str) -> Option<bool> {
        self.properties.get(name).and_then(Value::as_bool)
    }
}

impl Screened for ProfileUpdate {
    fn person(&self) -> &DistinctId {
        &self.distinct_id
    }
    fn flag(&self, name: &str) -> Option<bool> {
        match &self.op {
            ProfileOp::Set(m) | ProfileOp::SetOnce(m) => m.get(name).and_then(Value::as_bool),
            _ => None,
        }
    }
    fn removes_data(&self) -> bool {
        matches!(self.op, ProfileOp::Unset(_) | ProfileOp::Delete)
    }
}

/// What screening kept and what it dropped.
#[derive(Debug)]
pub struct Screen<T> {
    /// To be stored.
    pub kept: Vec<T>,
    /// Dropped: the person opted out (in this batch or before).
    pub opted_out: u64,
    /// Dropped: the project requires consent and there was none.
    pub no_consent: u64,
}

impl<T> Screen<T> {
    /// The counts, for the ingestion's audit entry and its answer.
    pub fn dropped(&self) -> Value {
        json!({"opt_out": self.opted_out, "no_consent": self.no_consent})
    }
}

/// Drops what opted-out people sent, and, where the project requires consent, what was sent
/// without it. An item whose `opt_out_property` is `true` records its person's opt-out first.
#[allow(clippy::too_many_arguments)]
pub async fn screen<T: Screened>(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::EventsIngest>,
    project: &Project,
    items: Vec<T>,
    opt_out_property: &str,
    now: Timestamp,
) -> Result<Screen<T>, AppError> {
    let mut lookups: HashMap<String, Hash> = HashMap::new();
    for item in &items {
        let p = item.person();
        if !lookups.contains_key(p.as_str()) {
            lookups.insert(p.as_str().to_owned(), audit.subject_lookup(&project.id, p));
        }
    }
    let announcing: BTreeMap<String, DistinctId> = items
        .iter()
        .filter(|i| i.flag(opt_out_property) == Some(true))
        .map(|i| (i.person().as_str().to_owned(), i.person().clone()))
        .collect();
    if !announcing.is_empty() {
        let people: Vec<DistinctId> = announcing.values().cloned().collect();
        let subjects = audit.pseudonyms(&project.id, &people).await?;
        let details = json!({"change": "opt_out", "source": "sdk", "property": opt_out_property, "people": subjects.len()});
        audit
            .record(ctx, auth, Action::SubjectsOptOut, 0, details, subjects)
            .await?;
        for p in announcing.keys() {
            store
                .set_opt_out(&project.id, &lookups[p], "sdk", now)
                .await?;
        }
    }
    let all: Vec<Hash> = lookups.values().copied().collect();
    let opted: HashSet<Hash> = store
        .opted_out(&project.id, &all)
        .await?
        .into_iter()
        .collect();
    let consent: HashMap<Hash, bool> = if project.consent_required {
        store
            .consent_states(&project.id, &all)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let mut out = Screen {
        kept: Vec::with_capacity(items.len()),
        opted_out: 0,
        no_consent: 0,
    };
    for item in items {
        if item.removes_data() {
            out.kept.push(item);
            continue;
        }
        let lookup = lookups[item.person().as_str()];
        if opted.contains(&lookup) {
            out.opted_out += 1;
            continue;
        }
        if project.consent_required {
            // A recorded withdrawal outranks a client's marker: the server's record wins.
            let allowed = match consent.get(&lookup) {
                Some(given) => *given,
                None => item.flag(&project.consent_property) == Some(true),
            };
            if !allowed {
                out.no_consent += 1;
                continue;
            }
        }
        out.kept.push(item);
    }
    Ok(out)
}

/// One person's opt-out and consent, as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preferences {
    /// Whether they opted out.
    pub opted_out: bool,
    /// Where the opt-out came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_out_source: Option<String>,
    /// When they opted out, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opted_out_at: Option<String>,
    /// Whether consent is currently recorded as given (absent: never recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<bool>,
    /// Every consent given or withdrawn, oldest first.
    pub consent_history: Vec<ConsentView>,
}

/// One recorded consent or withdrawal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// Given or withdrawn.
    pub given: bool,
    /// Where it came from.
    pub source: String,
    /// When, RFC 3339.
    pub at: String,
}

/// Reads one person's preferences for someone who asked (`subjects:consent`): the read is
/// logged first, naming the person's pseudonym.
pub async fn read(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::SubjectsConsent>,
    person: &DistinctId,
) -> Result<Preferences, AppError> {
    let subject = audit.pseudonym(auth.project(), person).await?;
    audit
        .record(
            ctx,
            auth,
            Action::SubjectsConsent,
            0,
            json!({"change": "read"}),
            vec![subject],
        )
        .await?;
    preferences(store, audit, auth, person).await
}

/// Reads one person's preferences.
pub async fn preferences(
    store: &SharedStore,
    audit: &AuditLog,
    auth: &Authorized<perm::SubjectsConsent>,
    person: &DistinctId,
) -> Result<Preferences, AppError> {
    let lookup = audit.subject_lookup(auth.project(), person);
    let opt_out = store.opt_out(auth.project(), &lookup).await?;
    let history = store.consent_history(auth.project(), &lookup).await?;
    Ok(Preferences {
        opted_out: opt_out.is_some(),
        opt_out_source: opt_out.as_ref().map(|(s, _)| s.clone()),
        opted_out_at: opt_out.map(|(_, t)| t.to_rfc3339()),
        consent: history.last().map(|c| c.given),
        consent_history: history
            .into_iter()
            .map(|c| ConsentView {
                given: c.given,
                source: c.source,
                at: c.at.to_rfc3339(),
            })
            .collect(),
    })
}

/// A change to one person's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Stop storing anything they send.
    OptOut,
    /// Undo an opt-out.
    OptIn,
    /// Consent given.
    Consent,
    /// Consent withdrawn.
    Withdraw,
}

/// Records a choice, audit entry first; false if an opt-out or opt-in changed nothing.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    store: &SharedStore,
    audit: &AuditLog,
    ctx: &RequestContext,
    auth: &Authorized<perm::SubjectsConsent>,
    person: &DistinctId,
    choice: Choice,
    source: &str,
    now: Timestamp,
) -> Result<bool, AppError> {
    if source.is_empty() || source.len() > 200 {
        return Err(AppError::Unprocessable(
            "source must be 1 to 200 bytes".into(),
        ));
    }
    let project = auth.project();
    let (action, change) = match choice {
        Choice::OptOut => (Action::SubjectsOptOut, "opt_out"),
        Choice::OptIn => (Action::SubjectsOptOut, "opt_in"),
        Choice::Consent => (Action::SubjectsConsent, "given"),
        Choice::Withdraw => (Action::SubjectsConsent, "withdrawn"),
    };
    let subjects = vec![audit.pseudonym(project, person).await?];
    let details = json!({"change": change, "source": source});
    audit
        .record(ctx, auth, action, 0, details, subjects)
        .await?;
    let lookup = audit.subject_lookup(project, person);
    Ok(match choice {
        Choice::OptOut => store.set_opt_out(project, &lookup, source, now).await?,
        Choice::OptIn => store.clear_opt_out(project, &lookup).await?,
        Choice::Consent | Choice::Withdraw => {
            let record = ConsentRecord {
                given: choice == Choice::Consent,
                source: source.to_owned(),
                at: now,
            };
            store.record_consent(project, &lookup, &record).await?;
            true
        }
    })
}
