//! Per-client limits on the routes anyone can call: what an anonymous caller can make the
//! service do (hash, sign-in checks, log refusals) is bounded by address. Beyond the limit
//! the answer is 429 with Retry-After, before any work or audit entry.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitSettings;
use crate::error::AppError;

/// Which limit a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    /// Proofs, checkpoint, readiness, the public ingestion routes.
    Public,
    /// Password, callback, 2-step codes, logout tokens: each attempt costs a check and an entry.
    SignIn,
}

/// The limiters, keyed by client address.
pub struct Limiters {
    public: DefaultKeyedRateLimiter<IpAddr>,
    signin: DefaultKeyedRateLimiter<IpAddr>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

impl Limiters {
    /// Limiters with the configured quotas.
    pub fn new(s: &RateLimitSettings) -> Arc<Self> {
        let public =
            Quota::per_second(nonzero(s.public_per_second)).allow_burst(nonzero(s.public_burst));
        let signin =
            Quota::per_minute(nonzero(s.signin_per_minute)).allow_burst(nonzero(s.signin_burst));
        Arc::new(Self {
            public: RateLimiter::keyed(public),
            signin: RateLimiter::keyed(signin),
        })
    }

    /// Forgets addresses whose budget has refilled, so memory follows the active clients.
    pub fn forget_idle(&self) {
        self.public.retain_recent();
        self.signin.retain_recent();
    }

    /// Spends one request of `client`'s budget, or says how long to wait.
    fn check(&self, class: RateClass, client: IpAddr) -> Result<(), Duration> {
        let limiter = match class {
            RateClass::Public => &self.public,
            RateClass::SignIn => &self.signin,
        };
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Refuses a request over its client's budget for the route's class.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let class = req.app_data::<RateClass>().copied();
    let limiters = req.app_data::<web::Data<Arc<Limiters>>>().cloned();
    let client = crate::audit::client_ip(req.request());
    if let (Some(class), Some(limiters), Some(client)) = (class, limiters, client)
        && let Err(wait) = limiters.check(class, client)
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let err = AppError::TooManyRequests(
            format!("too many requests from {client}: try again in {secs} s"),
            secs.max(1),
        );
        return Ok(req.error_response(err));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
