//! Request bodies, bounded in time and in how many large ones are held at once: a body must
//! arrive within `server.body_read_secs` (else 408), and at most `server.max_large_bodies`
//! bodies of 1 MiB or more (or of unknown length) are read and handled at the same time
//! (others wait a little, then get 503 with Retry-After). So memory follows the limits, not the
//! number of clients uploading, and a slow client cannot hold a connection for as long as it
//! likes. Compressed bodies (gzip, deflate) are decompressed here, as they stream, and refused
//! with 413 as soon as the decompressed bytes pass `server.max_body_bytes`: a small body that
//! expands a thousandfold costs no more memory than the limit.

use std::io::Write;
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
    let encoding = match Encoding::of(&req) {
        Ok(e) => e,
        Err(err) => return Ok(req.error_response(err)),
    };
    if length.is_some_and(|n| n > gate.max_bytes) {
        let err =
            AppError::PayloadTooLarge(format!("the body is larger than {} bytes", gate.max_bytes));
        return Ok(req.error_response(err));
    }
    // Held until the answer is built: the route's own copies of the body count too.
    let _turn = if length.is_none_or(|n| n >= LARGE) || encoding != Encoding::Identity {
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
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "the body is larger than {} bytes{}",
            gate.max_bytes,
            if encoding == Encoding::Identity {
                ""
            } else {
                " once decompressed"
            }
        ))
    };
    let capacity = length.unwrap_or(0).min(gate.max_bytes);
    let mut body = Body::new(encoding, capacity, gate.max_bytes);
    let mut payload = req.take_payload();
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
            Ok(Some(Ok(chunk))) => match body.push(&chunk) {
                Ok(()) => {}
                Err(Refused::TooLarge) => return Ok(req.error_response(too_large())),
                Err(Refused::Corrupt(e)) => {
                    return Ok(req.error_response(AppError::BadRequest(format!(
                        "the {} body could not be decompressed: {e}",
                        encoding.name()
                    ))));
                }
            },
            Ok(Some(Err(e))) => {
                return Ok(req.error_response(AppError::BadRequest(format!(
                    "the body could not be read: {e}"
                ))));
            }
        }
    }
    let body = match body.finish() {
        Ok(b) => b,
        Err(Refused::TooLarge) => return Ok(req.error_response(too_large())),
        Err(Refused::Corrupt(e)) => {
            return Ok(req.error_response(AppError::BadRequest(format!(
                "the {} body could not be decompressed: {e}",
                encoding.name()
            ))));
        }
    };
    if encoding != Encoding::Identity {
        // Handed on decompressed: nothing downstream decompresses it again.
        let headers = req.headers_mut();
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(
            header::CONTENT_LENGTH,
            header::HeaderValue::from(body.len()),
        );
    }
    req.set_payload(Payload::from(Bytes::from(body)));
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    fn of(req: &ServiceRequest) -> Result<Self, AppError> {
        let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
            return Ok(Self::Identity);
        };
        let value = value
            .to_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match value.as_str() {
            "" | "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            "deflate" => Ok(Self::Deflate),
            other => Err(AppError::BadRequest(format!(
                "unsupported Content-Encoding {other:?}: send gzip, deflate or none"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Identity => "plain",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
        }
    }
}

/// Why a body was refused while it streamed in.
enum Refused {
    TooLarge,
    Corrupt(std::io::Error),
}

/// Decompressed bytes, capped: a write past the cap fails, so decoding stops at once.
struct Capped {
    bytes: BytesMut,
    max: usize,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            self.over = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "over the body limit",
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A body being received, decoded as it arrives.
enum Body {
    Plain(Capped),
    Gzip(flate2::write::MultiGzDecoder<Capped>),
    Deflate(flate2::write::ZlibDecoder<Capped>),
}

impl Body {
    fn new(encoding: Encoding, capacity: usize, max: usize) -> Self {
        let out = Capped {
            bytes: BytesMut::with_capacity(if encoding == Encoding::Identity {
                capacity
            } else {
                0
            }),
            max,
            over: false,
        };
        match encoding {
            Encoding::Identity => Self::Plain(out),
            Encoding::Gzip => Self::Gzip(flate2::write::MultiGzDecoder::new(out)),
            Encoding::Deflate => Self::Deflate(flate2::write::ZlibDecoder::new(out)),
        }
    }

    fn out(&self) -> &Capped {
        match self {
            Self::Plain(c) => c,
            Self::Gzip(d) => d.get_ref(),
            Self::Deflate(d) => d.get_ref(),
        }
    }

    fn refused(&self, e: std::io::Error) -> Refused {
        if self.out().over {
            Refused::TooLarge
        } else {
            Refused::Corrupt(e)
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), Refused> {
        let r = match self {
            Self::Plain(c) => c.write_all(chunk),
            Self::Gzip(d) => d.write_all(chunk),
            Self::Deflate(d) => d.write_all(chunk),
        };
        r.map_err(|e| self.refused(e))
    }

    fn finish(self) -> Result<BytesMut, Refused> {
        let over = |c: &Capped| c.over;
        let r = match self {
            Self::Plain(c) => Ok(c),
            Self::Gzip(d) => d.finish(),
            Self::Deflate(d) => d.finish(),
        };
        match r {
            Ok(c) if !over(&c) => Ok(c.bytes),
            Ok(_) => Err(Refused::TooLarge),
            // The decoder is gone with its flag: the error's kind tells the cap apart from a
            // truncated or corrupt stream.
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => Err(Refused::TooLarge),
            Err(e) => Err(Refused::Corrupt(e)),
        }
    }
}
