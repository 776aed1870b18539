//! Creating projects and their service-account tokens (used by the CLI and the tests).

use crate::auth::tokens::{self, ApiSecret};
use crate::clock::Clock;
use crate::domain::ProjectId;
use crate::store::{NewProject, Project, ServiceAccount, Store, StoreError, StoreResult};

/// Days events are kept unless a project says otherwise (five years).
pub const DEFAULT_RETENTION_DAYS: i64 = 1825;

/// A new project and the credentials shown once to whoever created it.
#[derive(Debug)]
pub struct CreatedProject {
    /// The project.
    pub project: Project,
    /// Its service account.
    pub service_account: ServiceAccount,
    /// The id of the account's first token.
    pub token_id: String,
    /// The account's secret, shown once.
    pub secret: ApiSecret,
}

/// Creates a project with a service account named `<id>-service` and one token.
pub async fn create(
    store: &dyn Store,
    clock: &dyn Clock,
    id: ProjectId,
    name: Option<String>,
) -> StoreResult<CreatedProject> {
    let project = Project {
        name: name.unwrap_or_else(|| id.to_string()),
        ingest_token: hex::encode(random_bytes::<16>()),
        retention_days: DEFAULT_RETENTION_DAYS,
        created_at: clock.now(),
        deleted_at: None,
        consent_required: false,
        consent_property: "$consent".into(),
        purged_at: None,
        allowed_origins: Default::default(),
        record_client_ip: false,
        id,
    };
    let service_account = ServiceAccount {
        id: tokens::random_id(),
        project_id: project.id.clone(),
        name: format!("{}-service", project.id),
    };
    let (token, secret) = tokens::new_token(&service_account, clock);
    let token_id = token.id.clone();
    store
        .create_project(&NewProject {
            project: project.clone(),
            service_account: service_account.clone(),
            token,
        })
        .await?;
    Ok(CreatedProject {
        project,
        service_account,
        token_id,
        secret,
    })
}

/// Creates another token for a project's service account.
pub async fn create_token(
    store: &dyn Store,
    clock: &dyn Clock,
    project: &ProjectId,
) -> StoreResult<(String, ApiSecret)> {
    let account = store
        .service_accounts(project)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            StoreError::Other(anyhow::anyhow!("project {project} has no service account"))
        })?;
    let (token, secret) = tokens::new_token(&account, clock);
    store.create_token(&token).await?;
    Ok((token.id, secret))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

/// The project `id` if it exists and is not deleted; a deleted one answers as if it never
/// existed (404).
pub async fn live(store: &dyn Store, id: &ProjectId) -> Result<Project, crate::error::AppError> {
    match store.project(id).await? {
        Some(p) if p.is_live() => Ok(p),
        _ => Err(crate::error::AppError::NotFound(format!(
            "project {id} does not exist"
        ))),
    }
}

/// A project as its administrators see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProjectView {
    /// The slug.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Days events are kept.
    pub retention_days: i64,
    /// Whether events need consent.
    pub consent_required: bool,
    /// The consent marker property.
    pub consent_property: String,
    /// The web origins browsers may send its events from; `["*"]` for any.
    pub allowed_origins: Vec<String>,
    /// Whether `ip=1` keeps the client's address in `$ip`.
    pub record_client_ip: bool,
    /// When it was deleted, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Until when it can be restored, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restorable_until: Option<String>,
}

impl ProjectView {
    /// The view of `p`, given the grace period deleted projects have.
    pub fn of(p: &Project, grace_days: i64) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            retention_days: p.retention_days,
            consent_required: p.consent_required,
            consent_property: p.consent_property.clone(),
            allowed_origins: p.allowed_origins.to_list(),
            record_client_ip: p.record_client_ip,
            deleted_at: p.deleted_at.map(|t| t.to_rfc3339()),
            restorable_until: p
                .deleted_at
                .map(|t| {
                    crate::domain::Timestamp::from_millis(t.millis() + grace_days * 86_400_000)
                })
                .map(|t| t.to_rfc3339()),
        }
    }
}
