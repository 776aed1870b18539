//! An in-process OpenID Provider for fast negative tests: it signs whatever ID token a test
//! asks for (wrong issuer, wrong audience, expired, `alg: none`, unknown key...). The real
//! provider (`oidc-provider`) is in `oidc_e2e.rs`; this one never stands as the only proof.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use auditgate::clock::{Clock, ManualClock, SystemClock};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreEdDsaPrivateSigningKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const RSA_PEM: &str = include_str!("../fixtures/oidc-test-rsa.pem");
const RSA_PEM_2: &str = include_str!("../fixtures/oidc-test-rsa-2.pem");
const ED25519_PEM: &str = include_str!("../fixtures/oidc-test-ed25519.pem");

/// Which key signs the next ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// RS256 with the published key.
    Rsa,
    /// EdDSA with the published key.
    EdDsa,
    /// RS256 with a key published only after `publish_second_key`.
    RsaSecond,
    /// RS256 with a key that is never published, claiming the published key's id.
    Forged,
    /// `alg: none`, no signature.
    None,
}

/// What the next sign-in looks like; tests change it between sign-ins.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub subject: String,
    pub email: String,
    pub groups: Vec<String>,
    /// Put groups in the ID token (else only userinfo has them).
    pub groups_in_id_token: bool,
    pub signer: Signer,
    /// Claims to overwrite in the ID token (iss, aud, exp, nonce...).
    pub overrides: Map<String, Value>,
    pub amr: Vec<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            subject: "alice-sub".into(),
            email: "alice@example.com".into(),
            groups: vec!["analysts".into()],
            groups_in_id_token: true,
            signer: Signer::Rsa,
            overrides: Map::new(),
            amr: vec!["pwd".into()],
        }
    }
}

struct Grant {
    nonce: String,
    challenge: Option<String>,
    redirect_uri: String,
    behaviour: Behaviour,
}

struct Idp {
    issuer: String,
    client_id: String,
    client_secret: String,
    behaviour: Mutex<Behaviour>,
    codes: Mutex<HashMap<String, Grant>>,
    second_key_published: Mutex<bool>,
    /// The app's clock, so tokens age as the app's time moves.
    clock: Mutex<Option<ManualClock>>,
    /// Each subject's groups as the provider knows them now (userinfo answers from it).
    groups: Mutex<HashMap<String, Vec<String>>>,
    /// Refresh tokens issued, by value, to their subject.
    refresh: Mutex<HashMap<String, String>>,
    rsa: CoreRsaPrivateSigningKey,
    rsa2: CoreRsaPrivateSigningKey,
    forged: CoreRsaPrivateSigningKey,
    ed: CoreEdDsaPrivateSigningKey,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeIdp {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Idp>,
}

impl FakeIdp {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let kid = |k: &str| Some(JsonWebKeyId::new(k.into()));
        let inner = Arc::new(Idp {
            issuer: issuer.clone(),
            client_id: "auditgate-test".into(),
            client_secret: "fake-secret".into(),
            behaviour: Mutex::new(Behaviour::default()),
            codes: Mutex::new(HashMap::new()),
            second_key_published: Mutex::new(false),
            clock: Mutex::new(None),
            groups: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            rsa: CoreRsaPrivateSigningKey::from_pem(RSA_PEM, kid("rsa-1")).unwrap(),
            rsa2: CoreRsaPrivateSigningKey::from_pem(RSA_PEM_2, kid("rsa-2")).unwrap(),
            forged: CoreRsaPrivateSigningKey::from_pem(RSA_PEM_2, kid("rsa-1")).unwrap(),
            ed: CoreEdDsaPrivateSigningKey::from_ed25519_pem(ED25519_PEM, kid("ed-1")).unwrap(),
        });
        let data = web::Data::from(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/userinfo", web::get().to(userinfo))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            issuer,
            client_id: inner.client_id.clone(),
            client_secret: inner.client_secret.clone(),
            inner,
        }
    }

    /// Changes what the next sign-in looks like.
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.inner.behaviour.lock().unwrap());
    }

    /// Stamps tokens with the app's (manual) time from now on.
    pub fn use_clock(&self, clock: ManualClock) {
        *self.inner.clock.lock().unwrap() = Some(clock);
    }

    /// Changes a subject's groups at the provider (as when an administrator there removes
    /// someone from a group).
    pub fn set_groups(&self, subject: &str, groups: &[&str]) {
        self.inner.groups.lock().unwrap().insert(
            subject.to_owned(),
            groups.iter().map(|g| g.to_string()).collect(),
        );
    }

    /// Forgets every refresh token (as when the provider revokes them).
    pub fn revoke_refresh_tokens(&self) {
        self.inner.refresh.lock().unwrap().clear();
    }

    /// Publishes the second RSA key (a key rotation at the provider).
    pub fn publish_second_key(&self) {
        *self.inner.second_key_published.lock().unwrap() = true;
    }

    /// A signed logout token for `subject`, as the provider's back channel sends it.
    pub fn logout_token(&self, subject: &str, extra: Value) -> String {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": self.inner.now_secs(),
            "exp": self.inner.now_secs() + 120,
            "jti": format!("jti-{}", rand_hex()),
            "sub": subject,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        sign(&self.inner, Signer::Rsa, &claims, "logout+jwt")
    }
}

impl Idp {
    fn now_secs(&self) -> i64 {
        match &*self.clock.lock().unwrap() {
            Some(c) => c.now().millis() / 1000,
            None => SystemClock.now().millis() / 1000,
        }
    }
}

fn sign(idp: &Idp, signer: Signer, claims: &Value, typ: &str) -> String {
    let (alg, kid, key): (&str, &str, Option<&dyn Signs>) = match signer {
        Signer::Rsa => ("RS256", "rsa-1", Some(&idp.rsa)),
        Signer::RsaSecond => ("RS256", "rsa-2", Some(&idp.rsa2)),
        Signer::Forged => ("RS256", "rsa-1", Some(&idp.forged)),
        Signer::EdDsa => ("EdDSA", "ed-1", Some(&idp.ed)),
        Signer::None => ("none", "", None),
    };
    let mut header = json!({"alg": alg, "typ": typ});
    if !kid.is_empty() {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .map(|k| k.sign_rs(alg, input.as_bytes()))
        .unwrap_or_default();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

trait Signs {
    fn sign_rs(&self, alg: &str, msg: &[u8]) -> Vec<u8>;
}

impl Signs for CoreRsaPrivateSigningKey {
    fn sign_rs(&self, _: &str, msg: &[u8]) -> Vec<u8> {
        self.sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, msg)
            .unwrap()
    }
}

impl Signs for CoreEdDsaPrivateSigningKey {
    fn sign_rs(&self, _: &str, msg: &[u8]) -> Vec<u8> {
        self.sign(&CoreJwsSigningAlgorithm::EdDsa, msg).unwrap()
    }
}

async fn discovery(idp: web::Data<Idp>) -> HttpResponse {
    let i = &idp.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/end_session"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(idp: web::Data<Idp>) -> HttpResponse {
    let mut keys = vec![
        serde_json::to_value(idp.rsa.as_verification_key()).unwrap(),
        serde_json::to_value(idp.ed.as_verification_key()).unwrap(),
    ];
    if *idp.second_key_published.lock().unwrap() {
        keys.push(serde_json::to_value(idp.rsa2.as_verification_key()).unwrap());
    }
    HttpResponse::Ok().json(json!({"keys": keys}))
}

async fn authorize(idp: web::Data<Idp>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    assert_eq!(q.get("client_id"), Some(&idp.client_id));
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    let code = format!("code-{}", rand_hex());
    let redirect_uri = q["redirect_uri"].clone();
    idp.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: q.get("nonce").cloned().unwrap_or_default(),
            challenge: q
                .get("code_challenge")
                .filter(|_| q.get("code_challenge_method").map(String::as_str) == Some("S256"))
                .cloned(),
            redirect_uri: redirect_uri.clone(),
            behaviour: {
                let b = idp.behaviour.lock().unwrap().clone();
                idp.groups
                    .lock()
                    .unwrap()
                    .insert(b.subject.clone(), b.groups.clone());
                b
            },
        },
    );
    let state = q.get("state").cloned().unwrap_or_default();
    HttpResponse::Found()
        .insert_header((
            "location",
            format!("{redirect_uri}?code={code}&state={}", urlencode(&state)),
        ))
        .finish()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}

fn rand_hex() -> String {
    let mut b = [0u8; 12];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn token(
    req: HttpRequest,
    idp: web::Data<Idp>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{}:{}", idp.client_id, idp.client_secret);
    if basic.as_deref() != Some(expected.as_str()) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        let subject = form
            .get("refresh_token")
            .and_then(|r| idp.refresh.lock().unwrap().get(r).cloned());
        return match subject {
            Some(sub) => HttpResponse::Ok().json(json!({
                "access_token": format!("at-{sub}|{}", idp.now_secs()),
                "token_type": "Bearer",
                "expires_in": 300,
            })),
            None => HttpResponse::BadRequest().json(json!({"error": "invalid_grant"})),
        };
    }
    let Some(grant) = form
        .get("code")
        .and_then(|c| idp.codes.lock().unwrap().remove(c))
    else {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
    }
    // PKCE: the verifier must hash to the challenge sent with the authorization request.
    let verifier_ok = match (&grant.challenge, form.get("code_verifier")) {
        (Some(challenge), Some(v)) => {
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *challenge
        }
        _ => false,
    };
    if !verifier_ok {
        return HttpResponse::BadRequest().json(
            json!({"error": "invalid_grant", "error_description": "PKCE verification failed"}),
        );
    }
    let b = &grant.behaviour;
    let now = idp.now_secs();
    let mut claims = json!({
        "iss": idp.issuer,
        "aud": idp.client_id,
        "sub": b.subject,
        "iat": now,
        "exp": now + 300,
        "auth_time": now - 5,
        "nonce": grant.nonce,
        "amr": b.amr,
        "acr": "urn:test:loa:1",
        "sid": format!("sid-{}", b.subject),
        "email": b.email,
        "email_verified": true,
    });
    if b.groups_in_id_token {
        claims["groups"] = json!(b.groups);
    }
    for (k, v) in &b.overrides {
        claims[k] = v.clone();
    }
    // Access tokens name their subject and issue time; they last five minutes.
    let access = format!("at-{}|{now}", b.subject);
    let refresh = format!("rt-{}", rand_hex());
    idp.refresh
        .lock()
        .unwrap()
        .insert(refresh.clone(), b.subject.clone());
    HttpResponse::Ok().json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 300,
        "refresh_token": refresh,
        "id_token": sign(&idp, b.signer, &claims, "JWT"),
    }))
}

async fn userinfo(req: HttpRequest, idp: web::Data<Idp>) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some((sub, issued)) = token.strip_prefix("at-").and_then(|t| t.split_once('|')) else {
        return HttpResponse::Unauthorized().finish();
    };
    if issued
        .parse::<i64>()
        .map_or(true, |t| idp.now_secs() >= t + 300)
    {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_token"}));
    }
    let groups = idp
        .groups
        .lock()
        .unwrap()
        .get(sub)
        .cloned()
        .unwrap_or_default();
    HttpResponse::Ok()
        .json(json!({"sub": sub, "email": format!("{sub}@example.com"), "groups": groups}))
}
