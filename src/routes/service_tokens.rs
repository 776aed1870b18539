//! A service account's API tokens over the API: list, create (the secret answered once),
//! revoke; each through `admin::tokens`, as the console and the CLI.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::grants::admin;
use crate::access::Principal;
use crate::admin::{Administrator, tokens};
use crate::audit::RequestContext;
use crate::domain::Timestamp;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::TokenRecord;

/// A token, never its secret.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Its id, to revoke it by.
    id: String,
    /// The service account it acts as.
    service_account: String,
    /// When it was made.
    created_at: String,
    /// When it was last used, to the minute.
    last_used_at: Option<String>,
    /// When it was revoked, if it was.
    revoked_at: Option<String>,
}

impl TokenView {
    /// The view of a stored token.
    pub fn of(t: &TokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            service_account: t.service_account.id.clone(),
            created_at: t.created_at.to_rfc3339(),
            last_used_at: t.last_used_at.map(Timestamp::to_rfc3339),
            revoked_at: t.revoked_at.map(Timestamp::to_rfc3339),
        }
    }
}

/// A service account's tokens.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// The tokens, revoked ones included.
    tokens: Vec<TokenView>,
}

/// A token just made: the only time its secret is shown.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NewServiceToken {
    /// Its id.
    id: String,
    /// The service account it acts as.
    service_account: String,
    /// Its user name, for HTTP Basic on `/import`.
    name: String,
    /// The secret: keep it now, it is never shown again.
    secret: String,
}

/// A service account's tokens, revoked ones included.
#[utoipa::path(get, path = "/api/v1/admin/service-accounts/{id}/tokens", tag = "admin",
    params(("id" = String, Path, description = "The service account (id or name)")),
    responses((status = 200, body = TokenList, description = "Its tokens"), (status = 401), (status = 403), (status = 404)))]
pub async fn list(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let (_, found) = tokens::list(&admin(&state), by, &path).await?;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: found.iter().map(TokenView::of).collect(),
    }))
}

/// Makes a token for a service account; the answer carries its secret, once.
#[utoipa::path(post, path = "/api/v1/admin/service-accounts/{id}/tokens", tag = "admin",
    params(("id" = String, Path, description = "The service account (id or name)")),
    responses((status = 201, body = NewServiceToken, description = "Made"), (status = 401), (status = 403), (status = 404)))]
pub async fn create(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let (account, id, secret) = tokens::create(&admin(&state), by, &path).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(NewServiceToken {
            id,
            service_account: account.id,
            name: account.name,
            secret: secret.expose().to_owned(),
        }))
}

/// Revokes one of a service account's tokens.
#[utoipa::path(delete, path = "/api/v1/admin/service-accounts/{id}/tokens/{token}", tag = "admin",
    params(("id" = String, Path, description = "The service account (id or name)"), ("token" = String, Path, description = "The token's id")),
    responses((status = 200, body = TokenView, description = "Revoked"), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn revoke(
    ctx: RequestContext,
    principal: Principal,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = Administrator::Person {
        ctx: &ctx,
        principal: &principal,
    };
    let (account, token) = path.into_inner();
    let after = tokens::revoke(&admin(&state), by, &account, &token).await?;
    Ok(HttpResponse::Ok().json(TokenView::of(&after)))
}
