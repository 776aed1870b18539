//! The document an export request produces: everything stored about its people, streamed as
//! one JSON object page by page, so a person with millions of events needs no more memory
//! than a page. Sensitive properties are redacted as in every other read.

use std::collections::{BTreeSet, VecDeque};

use actix_web::web::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};

use crate::domain::subject_request::{JobState, RequestKind, SubjectRequest};
use crate::domain::{DistinctId, ProjectId, Timestamp};
use crate::error::AppError;
use crate::events::{EventView, redact};
use crate::store::{EventCursor, EventFilter, PropertyKind, SharedStore};

/// Events read per page while streaming.
const PAGE: u32 = 500;

/// What an export stream needs.
pub struct ExportPlan {
    /// The store to read from.
    pub store: SharedStore,
    /// The project.
    pub project: ProjectId,
    /// The request being served.
    pub request_id: String,
    /// GDPR or CCPA.
    pub compliance_type: &'static str,
    /// The people, in order.
    pub people: Vec<DistinctId>,
    /// Sensitive event properties.
    pub sensitive_events: Vec<String>,
    /// Sensitive profile properties.
    pub sensitive_profiles: Vec<String>,
    /// Whether the reader may see sensitive values.
    pub reveal: bool,
    /// When the document was made.
    pub now: Timestamp,
    /// Told once, when the stream ends, what actually went out.
    pub on_end: Option<OnEnd>,
}

/// A finished export request's document, ready to stream: the plan, and what the audit
/// entry written before any of it is read says.
pub struct Download {
    /// What to stream (`on_end` unset: the caller says how the end is recorded).
    pub plan: ExportPlan,
    /// The entry's details.
    pub details: Value,
}

/// Prepares `request`'s document, for a reader who may (`reveal`) or may not see sensitive
/// values; refused (409) unless it is a finished export.
pub async fn download(
    store: &SharedStore,
    request: &SubjectRequest,
    reveal: bool,
    now: Timestamp,
) -> Result<Download, AppError> {
    if request.kind != RequestKind::Export || request.state != JobState::Success {
        return Err(AppError::Conflict(format!(
            "request {} is a {} request in state {}; a document is ready for an export at SUCCESS",
            request.id,
            request.kind.as_str(),
            request.state.as_str()
        )));
    }
    let people = store
        .subject_request_ids(&request.id)
        .await?
        .iter()
        .map(|d| DistinctId::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a stored distinct_id: {}", e.0)))?;
    let project = request.project.clone();
    let sensitive_events = store
        .sensitive_properties(&project, PropertyKind::Event)
        .await?;
    let sensitive_profiles = store
        .sensitive_properties(&project, PropertyKind::Profile)
        .await?;
    let details = json!({
        "request_id": request.id,
        "compliance_type": request.compliance_type.as_str(),
        "people": people.len(),
        "sensitive_properties": {"event": sensitive_events, "profile": sensitive_profiles},
        "sensitive_revealed": reveal,
    });
    let plan = ExportPlan {
        store: store.clone(),
        project,
        request_id: request.id.clone(),
        compliance_type: request.compliance_type.as_str(),
        people,
        sensitive_events,
        sensitive_profiles,
        reveal,
        now,
        on_end: None,
    };
    Ok(Download { plan, details })
}

/// How an export stream ended: the records (profiles and events) it sent, and whether the
/// document was complete (not cut short by an error or a client that went away).
pub type OnEnd =
    Box<dyn FnOnce(u64, bool) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

impl ExportPlan {
    /// A profile's (or group profile's) properties as this export may show them.
    fn redacted_profile(
        &self,
        mut props: serde_json::Map<String, Value>,
    ) -> serde_json::Map<String, Value> {
        redact(
            &mut props,
            &self.sensitive_profiles,
            self.reveal,
            &mut BTreeSet::new(),
            &mut BTreeSet::new(),
        );
        props
    }
}

/// The document an export download streams (its schema; the stream writes it piece by piece
/// from these same types).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExportDocument {
    /// The project.
    project: String,
    /// The subject request it answers.
    request_id: String,
    /// `gdpr` or `ccpa`.
    compliance_type: &'static str,
    /// When it was made (RFC 3339).
    generated_at: String,
    /// Whether sensitive values are redacted (the reader lacks `events:read_sensitive`).
    sensitive_redacted: bool,
    /// Each person asked about, in the request's order.
    subjects: Vec<SubjectExport>,
}

/// Everything stored about one person.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SubjectExport {
    /// The person's distinct_id.
    distinct_id: String,
    /// Their profile, if they have one.
    profile: Option<ExportedProfile>,
    /// Group profiles that name them.
    group_profiles: Vec<ExportedGroupProfile>,
    /// Their events, oldest first.
    events: Vec<EventView>,
}

/// A person's profile in an export.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExportedProfile {
    /// Its properties (sensitive ones redacted unless the reader may see them).
    #[schema(value_type = Object)]
    properties: serde_json::Map<String, Value>,
    /// When it last changed.
    updated_at: String,
}

/// A group profile that names the person.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExportedGroupProfile {
    /// The group key, such as `company`.
    group_key: String,
    /// The group's id.
    group_id: String,
    /// Its properties (redacted as profiles are).
    #[schema(value_type = Object)]
    properties: serde_json::Map<String, Value>,
    /// When it last changed.
    updated_at: String,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, AppError> {
    Ok(serde_json::to_string(value).map_err(anyhow::Error::from)?)
}

struct Cursor {
    plan: ExportPlan,
    records: u64,
    queue: VecDeque<DistinctId>,
    current: Option<(DistinctId, Option<EventCursor>, bool)>,
    started: bool,
    first_subject: bool,
    done: bool,
}

impl Cursor {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, AppError> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            let head = to_json(&ExportDocument {
                project: self.plan.project.as_str().to_owned(),
                request_id: self.plan.request_id.clone(),
                compliance_type: self.plan.compliance_type,
                generated_at: self.plan.now.to_rfc3339(),
                sensitive_redacted: !self.plan.reveal,
                subjects: Vec::new(),
            })?;
            // Open the object and its "subjects" list: the head without `]}`.
            let open = head.strip_suffix("]}").unwrap_or(&head);
            return Ok(Some(Bytes::from(open.to_owned())));
        }
        let Some((person, after, first_event)) = self.current.take() else {
            let Some(person) = self.queue.pop_front() else {
                self.done = true;
                return Ok(Some(Bytes::from_static(b"]}\n")));
            };
            let profile = self
                .plan
                .store
                .profile(&self.plan.project, &person)
                .await?
                .map(|p| {
                    self.records += 1;
                    ExportedProfile {
                        properties: self.plan.redacted_profile(p.properties),
                        updated_at: p.updated_at.to_rfc3339(),
                    }
                });
            // Group profiles that name them (a company's owner, a team's members).
            let groups: Vec<ExportedGroupProfile> = self
                .plan
                .store
                .groups_naming(&self.plan.project, &[person.as_str().to_owned()])
                .await?
                .into_iter()
                .map(|g| {
                    self.records += 1;
                    ExportedGroupProfile {
                        group_key: g.group.key.to_string(),
                        group_id: g.group.id.to_string(),
                        properties: self.plan.redacted_profile(g.properties),
                        updated_at: g.updated_at.to_rfc3339(),
                    }
                })
                .collect();
            let sep = if self.first_subject { "" } else { "," };
            self.first_subject = false;
            // The subject without its closing `]}`: its events follow page by page.
            let subject = to_json(&SubjectExport {
                distinct_id: person.as_str().to_owned(),
                profile,
                group_profiles: groups,
                events: Vec::new(),
            })?;
            let open = format!("{sep}{}", subject.strip_suffix("]}").unwrap_or(&subject));
            self.current = Some((person, None, true));
            return Ok(Some(Bytes::from(open)));
        };
        let filter = EventFilter {
            project: self.plan.project.clone(),
            distinct_ids: vec![person.clone()],
            event: None,
            from: None,
            to: None,
        };
        let rows = self.plan.store.query_events(&filter, after, PAGE).await?;
        let Some(last) = rows.last() else {
            return Ok(Some(Bytes::from_static(b"]}")));
        };
        let next = EventCursor {
            time: last.time,
            id: last.id,
        };
        let mut out = String::new();
        self.records += rows.len() as u64;
        for (i, e) in rows.into_iter().enumerate() {
            let mut view = EventView::from(e);
            redact(
                &mut view.properties,
                &self.plan.sensitive_events,
                self.plan.reveal,
                &mut BTreeSet::new(),
                &mut BTreeSet::new(),
            );
            if !(first_event && i == 0) {
                out.push(',');
            }
            out.push_str(&to_json(&view)?);
        }
        self.current = Some((person, Some(next), false));
        Ok(Some(Bytes::from(out)))
    }
}

/// The export document as a stream of chunks. A database error mid-way ends the stream
/// early, so the client sees invalid JSON rather than a silently short document.
pub fn stream(plan: ExportPlan) -> impl Stream<Item = Result<Bytes, AppError>> {
    let queue = plan.people.iter().cloned().collect();
    let cursor = Cursor {
        plan,
        records: 0,
        queue,
        current: None,
        started: false,
        first_subject: true,
        done: false,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        match c.next_chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), c)),
            Ok(None) => {
                if let Some(end) = c.plan.on_end.take() {
                    end(c.records, true).await;
                }
                None
            }
            Err(e) => {
                c.done = true;
                if let Some(end) = c.plan.on_end.take() {
                    end(c.records, false).await;
                }
                Some((Err(e), c))
            }
        }
    })
}

impl Drop for Cursor {
    fn drop(&mut self) {
        // The client went away mid-document: what it was sent is still told.
        if let Some(end) = self.plan.on_end.take() {
            tokio::spawn(end(self.records, false));
        }
    }
}
