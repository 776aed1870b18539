//! Request bodies, bounded in time and in how many large ones are held at once: a body must
//! arrive within `server.body_read_secs` (else 408), and at most `server.max_large_bodies`
//! bodies of 1 MiB or more (or of unknown length) are read and handled at the same time
//! (others wait a little, then get 503 with Retry-After). So memory follows the limits, not the
//! number of clients uploading, and a slow client cannot hold a connection for as long as it
//! likes.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::error::AppError;

/// Bodies from this size on count as large.
pub const LARGE: usize = 1 << 20;
/// How long a large body waits for its turn before the answer is 503.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// The limits, shared by every worker.
pub struct BodyGate {
    large: Arc<Semaphore>,
    read_within: Duration,
    max_bytes: usize,
}

impl BodyGate {
    /// A gate admitting `max_large` large bodies at once, each read within `read_within`.
    pub fn new(max_large: usize, read_within: Duration, max_bytes: usize) -> Self {
        Self {
            large: Arc::new(Semaphore::new(max_large.max(1))),
            read_within,
            max_bytes,
        }
    }
}

/// Reads the body under the gate's limits, then hands it to the route in memory.
pub async fn bound(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(gate) = req.app_data::<web::Data<BodyGate>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if length.unwrap_or(0) == 0 && !chunked {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if length.is_some_and(|n| n > gate.max_bytes) {
        let err =
            AppError::PayloadTooLarge(format!("the body is larger than {} bytes", gate.max_bytes));
        return Ok(req.error_response(err));
    }
    // Held until the answer is built: the route's own copies of the body count too.
    let _turn = if length.is_none_or(|n| n >= LARGE) {
        match tokio::time::timeout(TURN_WAIT, gate.large.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                let err = AppError::Unavailable(
                    "too many large uploads at once; send this one again shortly".into(),
                );
                return Ok(req.error_response(err));
            }
        }
    } else {
        None
    };
    let deadline = tokio::time::Instant::now() + gate.read_within;
    let mut payload = req.take_payload();
    let mut body = BytesMut::with_capacity(length.unwrap_or(0).min(gate.max_bytes));
    loop {
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Err(_) => {
                let err = AppError::RequestTimeout(format!(
                    "the body did not arrive within {} s",
                    gate.read_within.as_secs()
                ));
                return Ok(req.error_response(err));
            }
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > gate.max_bytes {
                    let err = AppError::PayloadTooLarge(format!(
                        "the body is larger than {} bytes",
                        gate.max_bytes
                    ));
                    return Ok(req.error_response(err));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Some(Err(e))) => {
                return Ok(req.error_response(AppError::BadRequest(format!(
                    "the body could not be read: {e}"
                ))));
            }
        }
    }
    req.set_payload(Payload::from(Bytes::from(body)));
    Ok(next.call(req).await?.map_into_boxed_body())
}
