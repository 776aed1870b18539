//! The audit log as the service uses it: keys, pseudonyms, the fail-closed appender, and the
//! two calls handlers make: `authorize` (which records refusals) and `record` (which records
//! the access itself before any data is sent).

pub mod appender;
pub mod export;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod proofs;
pub mod read;
pub mod refusals;
pub mod report;
pub mod salts;

use std::future::{Ready, ready};
use std::sync::Arc;

use anyhow::Context;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde_json::{Value, json};
use tracing_actix_web::RequestId;

use crate::access::{Authorized, Denied, Principal, Requirement, Subject, authorize};
use crate::clock::SharedClock;
use crate::config::AuditSettings;
use crate::domain::{DistinctId, ProjectId};
use crate::error::AppError;
use crate::ledger::chain::Draft;
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::entry::{Action, Actor, ActorKind, AuthMethod, MAX_FIELD, Outcome, bound_text};
use crate::ledger::merkle::Hash;
use crate::ledger::note::{SignerKey, VerifierKey};
use crate::store::SharedStore;
use appender::{Appender, AppenderConfig, AuditUnavailable};
use keys::PseudonymKey;

pub use appender::AuditUnavailable as Unavailable;

/// Where a request came from, as the log records it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's IP address: the peer's, or the one a trusted proxy names.
    pub client_ip: Option<String>,
    /// The User-Agent, cut to 512 bytes.
    pub user_agent: Option<String>,
    /// The request id sent back in `x-request-id`.
    pub request_id: Option<String>,
}

impl RequestContext {
    /// The context of `req`.
    pub fn of(req: &HttpRequest) -> Self {
        let user_agent = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                let mut end = ua.len().min(512);
                while !ua.is_char_boundary(end) {
                    end -= 1;
                }
                ua[..end].to_owned()
            });
        Self {
            client_ip: client_ip(req).map(|ip| ip.to_string()),
            user_agent,
            request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy
/// (`server.trusted_proxies`) and names the client in `X-Forwarded-For`.
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    Some(match req.app_data::<crate::domain::TrustedProxies>() {
        Some(trusted) => trusted.client(peer, forwarded),
        None => peer,
    })
}

impl FromRequest for RequestContext {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// How the log names a principal.
pub fn actor_of(subject: &Subject) -> Actor {
    match subject {
        Subject::ServiceAccount { name, .. } => Actor {
            kind: ActorKind::ServiceAccount,
            id: name.clone(),
            method: AuthMethod::ApiToken,
            second_factor: false,
        },
        Subject::ProjectToken { project } => Actor {
            kind: ActorKind::ProjectToken,
            id: project.to_string(),
            method: AuthMethod::ProjectToken,
            second_factor: false,
        },
        Subject::User {
            id,
            method,
            second_factor,
            ..
        } => Actor {
            kind: ActorKind::User,
            id: id.clone(),
            method: *method,
            second_factor: *second_factor,
        },
    }
}

/// Whether the log can still tie a person to their entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Their entries carry this pseudonym.
    Named(Hash),
    /// An erasure deleted their salt at this time: no one can link them to entries again.
    Erased(crate::domain::Timestamp),
    /// No entry has named them.
    NeverNamed,
}

/// The service's audit log.
#[derive(Clone)]
pub struct AuditLog {
    appender: Appender,
    store: SharedStore,
    clock: SharedClock,
    pseudonyms: PseudonymKey,
    verifier: VerifierKey,
    /// The shared lock on the signing key's file, held as long as the log is in use.
    key_lock: Option<Arc<keys::KeyFileLock>>,
    /// Repeated anonymous refusals, summarised.
    refusals: Arc<refusals::Refusals>,
    /// Salts of people first seen, until a commit group stores them.
    new_salts: Arc<salts::NewSalts>,
    /// What `/metrics` shows of the log.
    metrics: metrics::LogMetrics,
}

impl AuditLog {
    /// Loads (or creates) the keys, registers the public key, starts the appender, and writes
    /// the log's first entry if the log is empty.
    pub async fn start(
        store: SharedStore,
        clock: SharedClock,
        settings: &AuditSettings,
    ) -> anyhow::Result<Self> {
        let lock = keys::lock_key_file(&settings.signing_key_file, false)?;
        let signer = keys::load_or_create_signer(&settings.signing_key_file, &settings.origin)?;
        let pseudonyms = PseudonymKey::load_or_create(&settings.pseudonym_key_file)?;
        let mut log = Self::start_with(store, clock, settings, vec![signer], pseudonyms).await?;
        log.key_lock = Some(Arc::new(lock));
        Ok(log)
    }

    /// Starts the log with keys already in hand; checkpoints are signed by every key given, and
    /// the last one is the log's key from now on.
    pub async fn start_with(
        store: SharedStore,
        clock: SharedClock,
        settings: &AuditSettings,
        signers: Vec<SignerKey>,
        pseudonyms: PseudonymKey,
    ) -> anyhow::Result<Self> {
        let signer = signers.last().context("no signing key")?;
        let verifier = signer.verifier();
        store
            .add_audit_key(&verifier.to_string(), clock.now())
            .await?;
        proofs::fill_in(store.as_ref()).await?;
        report::index_backlog(store.as_ref()).await?;
        let mut memory = memory::SignedMemory::load(&settings.signing_key_file)?;
        let head = store.audit_head().await?;
        // Refuse to start on a database that does not extend what this key signed: an old
        // backup, deleted files, or history rewritten while the service was down.
        memory.check(store.as_ref(), &head).await?;
        let latest = store.latest_checkpoint().await?;
        if memory.last().is_none()
            && let Some((_, note)) = &latest
        {
            // The first start with a memory (or after an upgrade): adopt the latest stored
            // checkpoint, if this key really signed it.
            let verifiers: Vec<VerifierKey> = signers.iter().map(SignerKey::verifier).collect();
            let opened = crate::ledger::checkpoint::open(note, &verifiers)?;
            memory.remember(&opened.checkpoint, note)?;
            memory.check(store.as_ref(), &head).await?;
        }
        // A crash between a commit and storing its checkpoint leaves a committed, unsigned
        // tail: sign it now, so every answered request's entry is covered by a checkpoint.
        let signed = latest.map_or(0, |(size, _)| size);
        if head.size() > signed {
            let checkpoint = Checkpoint {
                origin: settings.origin.clone(),
                size: head.size(),
                root: head.range.root(),
            };
            let note = checkpoint.sign(&signers.iter().collect::<Vec<_>>())?;
            memory.remember(&checkpoint, &note)?;
            store
                .insert_checkpoint(head.size(), &note, clock.now())
                .await?;
        }
        let new_salts = Arc::new(salts::NewSalts::default());
        let metrics = metrics::LogMetrics::default();
        metrics.tree_size.set(head.size() as i64);
        let appender = Appender::start(AppenderConfig {
            store: store.clone(),
            clock: clock.clone(),
            signers: signers.clone(),
            origin: settings.origin.clone(),
            timeout: Duration::from_millis(settings.write_timeout_ms),
            max_group: settings.max_group,
            memory,
            new_salts: new_salts.clone(),
            metrics: metrics.clone(),
        });
        let log = Self {
            appender,
            store,
            clock,
            pseudonyms,
            verifier,
            key_lock: None,
            refusals: Arc::default(),
            new_salts,
            metrics,
        };
        if log.store.audit_head().await?.size() == 0 {
            let details = json!({"origin": settings.origin, "key": log.verifier.to_string()});
            log.appender
                .append(system_draft(Action::LogInit, details))
                .await?;
        }
        Ok(log)
    }

    /// Waits until a stored checkpoint covers entry `seq` (checkpoints are stored just after
    /// their commit).
    pub async fn wait_signed(&self, seq: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self
                .store
                .latest_checkpoint()
                .await?
                .is_some_and(|(size, _)| size > seq)
            {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint covers entry {seq}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The log's series for `/metrics` (register them once, in the service's registry).
    pub fn metrics(&self) -> &metrics::LogMetrics {
        &self.metrics
    }

    /// The public key that signs checkpoints.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Whether the last append succeeded.
    pub fn is_healthy(&self) -> bool {
        self.appender.is_healthy()
    }

    /// Whether the log can be written now: true at once while appends succeed; after a failed
    /// one, a small real write to the same database decides (and, if it succeeds, the log is
    /// ready again without waiting for a request to risk an append).
    pub async fn probe_writable(&self) -> Result<(), AuditUnavailable> {
        if self.appender.is_healthy() {
            return Ok(());
        }
        self.store
            .probe_write(self.clock.now())
            .await
            .map_err(|e| AuditUnavailable(e.to_string()))?;
        self.appender.mark_healthy();
        Ok(())
    }

    /// Appends an entry; fails closed.
    pub async fn append(&self, draft: Draft) -> Result<u64, AuditUnavailable> {
        self.appender.append(draft).await
    }

    /// The pseudonym of one person in one project. A person named for the first time gets a
    /// salt that is stored with the next commit group, in the same transaction as the entry
    /// that names them (so a first read costs no commit of its own).
    pub async fn pseudonym(
        &self,
        project: &ProjectId,
        person: &DistinctId,
    ) -> Result<Hash, AppError> {
        let lookup = self.pseudonyms.lookup(project, person);
        let _making = self.new_salts.making(&lookup).lock().await;
        let salt = match self.salt_of(project, &lookup).await? {
            Some(salt) => salt,
            None => {
                let mut fresh = [0u8; 32];
                rand::fill(&mut fresh);
                self.new_salts.insert(project, lookup, fresh);
                fresh.to_vec()
            }
        };
        Ok(self.pseudonyms.pseudonym(&salt, project, person))
    }

    /// A person's salt, made but not yet stored, or stored; in that order, since a salt
    /// leaves the first only once it is in the second.
    async fn salt_of(
        &self,
        project: &ProjectId,
        lookup: &Hash,
    ) -> Result<Option<Vec<u8>>, AppError> {
        if let Some(salt) = self.new_salts.get(project, lookup) {
            return Ok(Some(salt.to_vec()));
        }
        self.store
            .subject_salt(project.as_str(), lookup)
            .await
            .map_err(|e| AuditUnavailable(e.to_string()).into())
    }

    /// The pseudonyms of several people in one project, in order.
    pub async fn pseudonyms(
        &self,
        project: &ProjectId,
        people: &[DistinctId],
    ) -> Result<Vec<Hash>, AppError> {
        let mut out = Vec::with_capacity(people.len());
        for p in people {
            out.push(self.pseudonym(project, p).await?);
        }
        Ok(out)
    }

    /// The pseudonym this person's entries carry, without making one: `Named` if their salt
    /// is stored (or waiting for the next commit), `Erased` if an erasure deleted it, and
    /// `NeverNamed` if no entry has named them.
    pub async fn existing_pseudonym(
        &self,
        project: &ProjectId,
        person: &DistinctId,
    ) -> Result<Standing, AppError> {
        let lookup = self.pseudonyms.lookup(project, person);
        if let Some(salt) = self.salt_of(project, &lookup).await? {
            return Ok(Standing::Named(
                self.pseudonyms.pseudonym(&salt, project, person),
            ));
        }
        Ok(
            match self.store.subject_erased_at(project, &lookup).await? {
                Some(at) => Standing::Erased(at),
                None => Standing::NeverNamed,
            },
        )
    }

    /// The keyed lookup of one person in one project: how their salt, opt-out and consent are
    /// found without storing the distinct_id. Not a pseudonym: it is never written to the log.
    pub fn subject_lookup(&self, project: &ProjectId, person: &DistinctId) -> Hash {
        self.pseudonyms.lookup(project, person)
    }

    /// Unlinks a person from the log for good by deleting their salt: no entry is edited, every
    /// hash and proof stays valid, but their pseudonym can no longer be tied to anyone. Only the
    /// erasure job calls it, for requests made under `subjects:erase`, after the entry that
    /// names the pseudonym is written. True if there was a salt.
    pub(crate) async fn forget_subject(
        &self,
        project: &ProjectId,
        person: &DistinctId,
    ) -> Result<bool, AppError> {
        let lookup = self.pseudonyms.lookup(project, person);
        self.new_salts.remove(project.as_str(), &lookup);
        let now = self.clock.now();
        Ok(self
            .store
            .forget_subject(project, &lookup, now)
            .await?
            .is_some())
    }

    /// `access::authorize_global`, recording a denial entry when refused.
    pub async fn authorize_global<P: Requirement>(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        action: Action,
    ) -> Result<crate::access::AuthorizedGlobal<P>, AppError> {
        match crate::access::authorize_global::<P>(principal) {
            Err(Denied::Policy(reason)) => {
                Err(self.denied::<P>(ctx, principal, None, action, reason).await)
            }
            other => Ok(other?),
        }
    }

    /// Writes the denial entry for a refused `P`, naming the missing permission.
    async fn denied<P: Requirement>(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        project: Option<&ProjectId>,
        action: Action,
        reason: String,
    ) -> AppError {
        let details = json!({"missing_permission": P::PERMISSION.as_str(), "reason": reason});
        let actor = actor_of(principal.subject());
        let draft = draft(
            ctx,
            actor,
            project,
            action,
            Outcome::Denied,
            0,
            details,
            vec![],
        );
        match self.append(draft).await {
            Ok(_) => AppError::Forbidden(reason),
            Err(e) => e.into(),
        }
    }

    /// Records a service-wide act (on people, keys) by an authorized administrator.
    pub async fn record_global<P: Requirement>(
        &self,
        ctx: &RequestContext,
        auth: &crate::access::AuthorizedGlobal<P>,
        action: Action,
        details: Value,
    ) -> Result<u64, AppError> {
        let actor = actor_of(auth.principal().subject());
        let draft = draft(
            ctx,
            actor,
            None,
            action,
            Outcome::Allowed,
            0,
            details,
            vec![],
        );
        Ok(self.append(draft).await?)
    }

    /// `access::authorize`, recording a denial entry (naming the missing permission) when refused.
    pub async fn authorize<P: Requirement>(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        project: &ProjectId,
        action: Action,
    ) -> Result<Authorized<P>, AppError> {
        match authorize::<P>(principal, project) {
            Err(Denied::Policy(reason)) => Err(self
                .denied::<P>(ctx, principal, Some(project), action, reason)
                .await),
            other => Ok(other?),
        }
    }

    /// Records an allowed access before its response is sent; fails closed.
    pub async fn record<P: Requirement>(
        &self,
        ctx: &RequestContext,
        auth: &Authorized<P>,
        action: Action,
        records: u64,
        details: Value,
        subjects: Vec<Hash>,
    ) -> Result<u64, AppError> {
        let draft = allowed(ctx, auth, action, records, details, subjects);
        Ok(self.append(draft).await?)
    }

    /// Records an allowed ingestion batch and stores its events in the same transaction (see
    /// [`Appender::append_with_events`]); fails closed. The inner result is the events'.
    pub async fn record_with_events<P: Requirement>(
        &self,
        ctx: &RequestContext,
        auth: &Authorized<P>,
        action: Action,
        records: u64,
        details: Value,
        rider: crate::store::EventRider,
    ) -> Result<(u64, crate::store::StoreResult<crate::store::InsertOutcome>), AppError> {
        let draft = allowed(ctx, auth, action, records, details, vec![]);
        Ok(self.appender.append_with_events(draft, rider).await?)
    }

    /// Records an act refused by a rule beyond permissions (such as approving one's own
    /// request), by a principal who holds the permission.
    pub async fn refused_act<P: Requirement>(
        &self,
        ctx: &RequestContext,
        auth: &Authorized<P>,
        action: Action,
        details: Value,
    ) -> Result<u64, AppError> {
        let actor = actor_of(auth.principal().subject());
        let draft = draft(
            ctx,
            actor,
            Some(auth.project()),
            action,
            Outcome::Denied,
            0,
            details,
            vec![],
        );
        Ok(self.append(draft).await?)
    }

    /// Records an act done from the server's command line.
    pub async fn record_cli(
        &self,
        action: Action,
        project: Option<&ProjectId>,
        records: u64,
        details: Value,
    ) -> Result<u64, AppError> {
        self.record_cli_about(action, project, records, details, vec![])
            .await
    }

    /// Records an act done from the server's command line concerning the people in `subjects`.
    pub async fn record_cli_about(
        &self,
        action: Action,
        project: Option<&ProjectId>,
        records: u64,
        details: Value,
        subjects: Vec<Hash>,
    ) -> Result<u64, AppError> {
        let actor = Actor {
            kind: ActorKind::System,
            id: "cli".into(),
            method: AuthMethod::Cli,
            second_factor: false,
        };
        let draft = draft(
            &RequestContext::default(),
            actor,
            project,
            action,
            Outcome::Allowed,
            records,
            details,
            subjects,
        );
        Ok(self.append(draft).await?)
    }

    /// Records a refused authentication (a bad or revoked token): the first from a client
    /// address for a reason at once, its repeats within a minute as one summary entry
    /// ([`AuditLog::flush_refusals`]).
    pub async fn rejected(&self, ctx: &RequestContext, reason: &str) -> Result<(), AppError> {
        let key = (ctx.client_ip.clone(), reason.to_owned());
        if !self.refusals.note(key, self.clock.now().millis()) {
            return Ok(());
        }
        let details = json!({"reason": reason, "repeats": "summarised for a minute by client address and reason"});
        let draft = draft(
            ctx,
            anonymous(),
            None,
            Action::AuthRejected,
            Outcome::Denied,
            0,
            details,
            vec![],
        );
        self.append(draft).await?;
        Ok(())
    }

    /// Writes one summary entry for each client address and reason whose minute of repeated
    /// refusals has ended (every open one with `all`, at shutdown).
    pub async fn flush_refusals(&self, all: bool) -> Result<(), AppError> {
        let now = self.clock.now().millis();
        let due = self.refusals.due(now, all);
        for (i, s) in due.iter().enumerate() {
            let ctx = RequestContext {
                client_ip: s.client_ip.clone(),
                ..RequestContext::default()
            };
            let details = json!({
                "reason": s.reason,
                "summary": {"repeats": s.repeats, "first_ms": s.first_ms, "last_ms": s.last_ms},
            });
            let draft = draft(
                &ctx,
                anonymous(),
                None,
                Action::AuthRejected,
                Outcome::Denied,
                s.repeats,
                details,
                vec![],
            );
            if let Err(e) = self.append(draft).await {
                self.refusals.restore(due[i..].to_vec(), now);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Records a request refused before authorization for a known person: no CSRF proof,
    /// 2-step verification not done, or a step-up missing.
    pub async fn refused(
        &self,
        ctx: &RequestContext,
        actor: Actor,
        reason: &str,
    ) -> Result<u64, AppError> {
        let draft = draft(
            ctx,
            actor,
            None,
            Action::AuthRejected,
            Outcome::Denied,
            0,
            json!({"reason": reason}),
            vec![],
        );
        Ok(self.append(draft).await?)
    }

    /// Records an act on a person's account (sign-in, 2-step verification, sessions, tokens).
    pub async fn account(
        &self,
        ctx: &RequestContext,
        actor: Actor,
        action: Action,
        outcome: Outcome,
        details: Value,
    ) -> Result<u64, AppError> {
        let draft = draft(ctx, actor, None, action, outcome, 0, details, vec![]);
        Ok(self.append(draft).await?)
    }
}

/// Cuts every string in `details` that is longer than an entry's text field, so a client's
/// over-long token header or reason stays a readable, structured summary (the ledger then
/// bounds the whole object as a last resort).
fn bound_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > MAX_FIELD => {
            *s = bound_text(std::mem::take(s), MAX_FIELD);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_strings),
        Value::Object(map) => map.values_mut().for_each(bound_strings),
        _ => {}
    }
}

fn anonymous() -> Actor {
    Actor {
        kind: ActorKind::Anonymous,
        id: String::new(),
        method: AuthMethod::None,
        second_factor: false,
    }
}

/// The entry of an access `auth` allowed.
fn allowed<P: Requirement>(
    ctx: &RequestContext,
    auth: &Authorized<P>,
    action: Action,
    records: u64,
    details: Value,
    subjects: Vec<Hash>,
) -> Draft {
    let actor = actor_of(auth.principal().subject());
    draft(
        ctx,
        actor,
        Some(auth.project()),
        action,
        Outcome::Allowed,
        records,
        details,
        subjects,
    )
}

#[allow(clippy::too_many_arguments)]
fn draft(
    ctx: &RequestContext,
    actor: Actor,
    project: Option<&ProjectId>,
    action: Action,
    outcome: Outcome,
    records: u64,
    mut details: Value,
    subjects: Vec<Hash>,
) -> Draft {
    bound_strings(&mut details);
    Draft {
        project: project.map(ToString::to_string),
        actor,
        action,
        outcome,
        records,
        client_ip: ctx.client_ip.clone(),
        user_agent: ctx.user_agent.clone(),
        request_id: ctx.request_id.clone(),
        subjects,
        details: details.to_string(),
    }
}

/// An entry by a background job of the service (`job` names it), about one project and the
/// people in `subjects`.
pub fn job_draft(
    job: &str,
    project: &ProjectId,
    action: Action,
    outcome: Outcome,
    records: u64,
    details: Value,
    subjects: Vec<Hash>,
) -> Draft {
    let actor = Actor {
        kind: ActorKind::System,
        id: job.to_owned(),
        method: AuthMethod::Internal,
        second_factor: false,
    };
    draft(
        &RequestContext::default(),
        actor,
        Some(project),
        action,
        outcome,
        records,
        details,
        subjects,
    )
}

/// An entry by the service itself.
pub fn system_draft(action: Action, details: Value) -> Draft {
    let actor = Actor {
        kind: ActorKind::System,
        id: String::new(),
        method: AuthMethod::Internal,
        second_factor: false,
    };
    draft(
        &RequestContext::default(),
        actor,
        None,
        action,
        Outcome::Allowed,
        0,
        details,
        vec![],
    )
}

/// What `auditgate doctor` finds of the log, reading only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// Entries in the database's log.
    pub size: u64,
    /// The size the latest stored checkpoint covers, if there is one.
    pub checkpoint: Option<u64>,
}

/// Checks, without writing, what the service checks at start-up: the database's log extends
/// what `signer` last signed, and `signer` signed the latest stored checkpoint, which matches
/// the log at its size.
pub async fn inspect(
    store: &SharedStore,
    settings: &AuditSettings,
    signer: &SignerKey,
) -> anyhow::Result<LogState> {
    let head = store.audit_head().await?;
    let memory = memory::SignedMemory::load(&settings.signing_key_file)?;
    memory.check(store.as_ref(), &head).await?;
    let latest = store.latest_checkpoint().await?;
    if let Some((size, note)) = &latest {
        let key = [signer.verifier()];
        let opened = crate::ledger::checkpoint::open(note, &key).with_context(|| {
            format!(
                "the latest checkpoint (size {size}) is not signed by the key in {}",
                settings.signing_key_file.display()
            )
        })?;
        anyhow::ensure!(
            *size <= head.size(),
            "the latest checkpoint covers {size} entries but the log has {}",
            head.size()
        );
        if *size == head.size() {
            anyhow::ensure!(
                opened.checkpoint.root == head.range.root(),
                "the latest checkpoint's root is not the log's root at size {size}"
            );
        }
    }
    Ok(LogState {
        size: head.size(),
        checkpoint: latest.map(|(size, _)| size),
    })
}
