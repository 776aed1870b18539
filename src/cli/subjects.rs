//! Data-subject requests: `auditgate subject-request ...`.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{open, print};
use crate::audit::AuditLog;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::ledger::entry::Action;

#[derive(Debug, Subcommand)]
pub(super) enum SubjectRequestCommand {
    /// Make a request; a running service (or `subject-request run`) carries it out.
    Create {
        /// The project.
        #[arg(long)]
        project: String,
        /// `export`, `erase`, `erase_property` or `anonymize`.
        #[arg(long)]
        kind: String,
        /// A ticket reference.
        #[arg(long)]
        reason: String,
        /// A distinct_id (repeat for more, up to 2000).
        #[arg(long = "distinct-id", required = true)]
        distinct_ids: Vec<String>,
        /// `GDPR` or `CCPA`.
        #[arg(long, default_value = "GDPR")]
        compliance_type: String,
        /// `erase_property`: the property to delete.
        #[arg(long)]
        property: Option<String>,
        /// `anonymize`: a property to drop (repeat for more).
        #[arg(long = "drop")]
        drop_properties: Vec<String>,
    },
    /// A project's requests, newest first.
    List {
        /// The project.
        #[arg(long)]
        project: String,
    },
    /// One request.
    Show {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
    },
    /// Write a finished export's document (everything stored about its people, sensitive
    /// properties redacted) to a file, logged like a download through the API.
    Download {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
        /// Where to write it (created; an existing file is not overwritten).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: std::path::PathBuf,
    },
    /// Cancel a request that has not started.
    Cancel {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
    },
    /// Give a large erasure its second approval, as the operator.
    Approve {
        /// The project.
        #[arg(long)]
        project: String,
        /// The request's id.
        id: String,
    },
    /// Run every open request now, in this process.
    Run,
}

pub(super) fn request_json(r: &crate::privacy::subjects::SubjectRequest) -> serde_json::Value {
    json!({
        "id": r.id, "project": r.project, "kind": r.kind.as_str(),
        "compliance_type": r.compliance_type.as_str(), "status": r.state.as_str(),
        "requested_by": r.requested_by, "reason": r.reason, "subject_count": r.subject_count,
        "needs_approval": r.needs_approval, "approved_by": r.approved_by,
        "events": r.events_affected, "profiles": r.profiles_affected, "error": r.error,
        "created_at": r.created_at.to_rfc3339(),
        "completed_at": r.completed_at.map(|t| t.to_rfc3339()),
    })
}

pub(super) fn request_line(r: &crate::privacy::subjects::SubjectRequest) -> String {
    format!(
        "{}  {:<14} {:<9} {} people, {} events, {} profiles  by {}  ({}){}",
        r.id,
        r.kind.as_str(),
        r.state.as_str(),
        r.subject_count,
        r.events_affected,
        r.profiles_affected,
        r.requested_by,
        r.reason,
        match approval(r) {
            "" => String::new(),
            a => format!("  {a}"),
        }
    )
}

fn approval(r: &crate::privacy::subjects::SubjectRequest) -> &'static str {
    match (r.needs_approval, &r.approved_by) {
        (true, None) => "awaiting approval",
        (true, Some(_)) => "approved",
        (false, _) => "",
    }
}

pub(super) async fn subject_command(
    cmd: SubjectRequestCommand,
    settings: &Settings,
    as_json: bool,
) -> anyhow::Result<()> {
    use crate::privacy::subjects::{self, ComplianceType, JobState, NewRequest, RequestKind};
    let store = open(settings).await?;
    let clock: crate::clock::SharedClock = Arc::new(SystemClock);
    let find = |project: &ProjectId, id: &str| {
        let (store, project, id) = (store.clone(), project.clone(), id.to_owned());
        async move {
            store
                .subject_request(&project, &id)
                .await?
                .with_context(|| format!("no request {id} in {project}"))
        }
    };
    match cmd {
        SubjectRequestCommand::List { project } => {
            let project = ProjectId::parse(&project)?;
            let all = store.subject_requests(&project).await?;
            let text = super::table(
                &[
                    "id", "kind", "state", "people", "events", "profiles", "by", "reason",
                    "approval",
                ],
                all.iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.kind.as_str().to_owned(),
                            r.state.as_str().to_owned(),
                            r.subject_count.to_string(),
                            r.events_affected.to_string(),
                            r.profiles_affected.to_string(),
                            r.requested_by.clone(),
                            r.reason.clone(),
                            approval(r).to_owned(),
                        ]
                    })
                    .collect(),
                &format!(
                    "No subject requests in {project}: `auditgate subject-request create` makes one."
                ),
            );
            print(
                as_json,
                json!(all.iter().map(request_json).collect::<Vec<_>>()),
                &text,
            );
        }
        SubjectRequestCommand::Show { project, id } => {
            let r = find(&ProjectId::parse(&project)?, &id).await?;
            print(as_json, request_json(&r), &request_line(&r));
        }
        SubjectRequestCommand::Create {
            project,
            kind,
            reason,
            distinct_ids,
            compliance_type,
            property,
            drop_properties,
        } => {
            let project = ProjectId::parse(&project)?;
            match store.project(&project).await? {
                Some(p) if p.is_live() => {}
                _ => anyhow::bail!("no project {project}"),
            }
            let new = NewRequest {
                kind: RequestKind::parse(&kind).with_context(|| {
                    format!("{kind:?} is not export, erase, erase_property or anonymize")
                })?,
                compliance_type: ComplianceType::parse(&compliance_type.to_ascii_uppercase())
                    .with_context(|| format!("{compliance_type:?} is not GDPR or CCPA"))?,
                reason,
                distinct_ids: distinct_ids
                    .iter()
                    .map(|d| crate::domain::DistinctId::parse(d))
                    .collect::<Result<_, _>>()?,
                property,
                drop_properties,
            };
            if new.kind.erases() {
                super::confirm(&format!(
                    "A {} request for {} people in {project}",
                    new.kind.as_str(),
                    new.distinct_ids.len()
                ))?;
            }
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            let p = subjects::prepare(
                &store,
                &log,
                &project,
                "system:cli".into(),
                new,
                &settings.privacy,
                clock.now(),
            )
            .await?;
            log.record_cli_about(
                Action::SubjectsRequest,
                Some(&project),
                0,
                p.details,
                p.subjects,
            )
            .await?;
            store.create_subject_request(&p.request, &p.people).await?;
            print(as_json, request_json(&p.request), &request_line(&p.request));
        }
        SubjectRequestCommand::Download {
            project,
            id,
            output,
        } => {
            use futures_util::StreamExt;
            use std::io::Write;
            let project = ProjectId::parse(&project)?;
            let r = find(&project, &id).await?;
            let crate::privacy::export::Download { mut plan, details } =
                crate::privacy::export::download(&store, &r, false, clock.now()).await?;
            let (ended, streamed) = tokio::sync::oneshot::channel();
            plan.on_end = Some(Box::new(move |records, _complete| {
                let _ = ended.send(records);
                Box::pin(async {})
            }));
            // Created before anything is read or logged: a path that cannot be written costs
            // nothing, and an existing file is never replaced.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            // Written before any data is read, as for every download; if it cannot be, the
            // empty file goes too.
            let logged = async {
                let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
                let subjects = log.pseudonyms(&project, &plan.people).await?;
                log.record_cli_about(
                    Action::SubjectsExport,
                    Some(&project),
                    r.events_affected,
                    details,
                    subjects.clone(),
                )
                .await?;
                anyhow::Ok((log, subjects))
            };
            let (log, subjects) = match logged.await {
                Ok(done) => done,
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(&output);
                    return Err(e);
                }
            };
            let mut body = Box::pin(crate::privacy::export::stream(plan));
            let mut written = 0u64;
            let mut failure = None;
            while let Some(chunk) = body.next().await {
                match chunk.map_err(anyhow::Error::from).and_then(|bytes| {
                    file.write_all(&bytes)?;
                    Ok(bytes.len())
                }) {
                    Ok(n) => written += n as u64,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drop(body);
            let complete = failure.is_none() && file.sync_all().is_ok();
            let records = streamed.await.unwrap_or(0);
            log.record_cli_about(
                Action::SubjectsExport,
                Some(&project),
                records,
                json!({"request_id": r.id, "streamed_records": records, "complete": complete, "written_bytes": written}),
                subjects,
            )
            .await?;
            if let Some(e) = failure {
                return Err(e.context(format!("{} is incomplete", output.display())));
            }
            print(
                as_json,
                json!({"request_id": r.id, "file": output, "bytes": written}),
                &format!("wrote {} ({written} bytes)", output.display()),
            );
        }
        SubjectRequestCommand::Cancel { project, id } => {
            let project = ProjectId::parse(&project)?;
            let r = find(&project, &id).await?;
            anyhow::ensure!(
                JobState::CANCELLABLE.contains(&r.state),
                "request {id} is {}: only PENDING or STAGING requests can be cancelled",
                r.state.as_str()
            );
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            log.record_cli(
                Action::SubjectsRequest,
                Some(&project),
                0,
                json!({"change": "cancel", "request_id": id, "state_before": r.state.as_str()}),
            )
            .await?;
            anyhow::ensure!(
                store
                    .move_subject_request(
                        &id,
                        &JobState::CANCELLABLE,
                        JobState::Revoked,
                        clock.now()
                    )
                    .await?,
                "request {id} started meanwhile"
            );
            if r.kind.erases() {
                store.drop_subject_request_ids(&id).await?;
            }
            let r = find(&project, &id).await?;
            print(as_json, request_json(&r), &request_line(&r));
        }
        SubjectRequestCommand::Approve { project, id } => {
            let project = ProjectId::parse(&project)?;
            let r = find(&project, &id).await?;
            anyhow::ensure!(
                r.needs_approval && r.approved_by.is_none() && r.state == JobState::Pending,
                "request {id} awaits no approval"
            );
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            log.record_cli(
                Action::SubjectsRequest,
                Some(&project),
                0,
                json!({"change": "approve", "request_id": id, "requested_by": r.requested_by}),
            )
            .await?;
            store
                .approve_subject_request(&id, "system:cli", clock.now())
                .await?;
            let r = find(&project, &id).await?;
            print(as_json, request_json(&r), &request_line(&r));
        }
        SubjectRequestCommand::Run => {
            let log = AuditLog::start(store.clone(), clock.clone(), &settings.audit).await?;
            let n = subjects::run_open(&store, &log, &clock, true).await?;
            print(as_json, json!({"ended": n}), &format!("{n} requests ended"));
        }
    }
    Ok(())
}
