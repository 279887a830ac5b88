//! The bodies, streamed: the client's request body goes to the upstream piece by piece, with
//! the size limit counted on the way; the upstream's answer comes back the same way, with
//! an idle timeout between pieces. Neither is ever held whole.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Why the request body could not be passed on.
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestBodyError {
    /// More than the limit arrived.
    #[error("the request body grew past {0} bytes")]
    TooLarge(u64),
    /// The client's body broke off.
    #[error("{0}")]
    Client(#[from] PayloadError),
}

pin_project_lite::pin_project! {
    /// The client's body, counted against the limit as it passes.
    pub(super) struct RequestBody<S> {
        #[pin]
        payload: S,
        size: BodySize,
        received: u64,
        limit: u64,
    }
}

impl<S> RequestBody<S> {
    /// `size`: what the client declared (`Content-Length`: sized; chunked: a stream; neither:
    /// no body at all).
    pub(super) fn new(payload: S, size: BodySize, limit: u64) -> Self {
        RequestBody {
            payload,
            size,
            received: 0,
            limit,
        }
    }
}

impl<S> MessageBody for RequestBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>>,
{
    type Error = RequestBodyError;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        if *this.size == BodySize::None {
            return Poll::Ready(None);
        }
        match this.payload.poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                *this.received += bytes.len() as u64;
                if *this.received > *this.limit {
                    return Poll::Ready(Some(Err(RequestBodyError::TooLarge(*this.limit))));
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The upstream's body stopped for longer than `UPSTREAM_TIMEOUT_SECS`, or broke off.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResponseBodyError {
    /// Nothing arrived for the idle timeout.
    #[error("the upstream's response body stalled for {0:?}; the answer to the client is cut off")]
    Stalled(Duration),
    /// The upstream's body broke off.
    #[error("the upstream's response body broke off ({0}); the answer to the client is cut off")]
    Broken(PayloadError),
}

pin_project_lite::pin_project! {
    /// The upstream's body, passed on as it arrives; cut off (the client sees the connection
    /// close early, as from the upstream itself) when it stalls longer than `idle`.
    pub(super) struct ResponseBody<S> {
        #[pin]
        stream: S,
        size: BodySize,
        idle: Duration,
        // Made the first time the stream waits, and re-armed each time it waits again: a
        // body that arrives whole at once costs no timer.
        timer: Option<Pin<Box<actix_web::rt::time::Sleep>>>,
        armed: bool,
    }
}

impl<S> ResponseBody<S> {
    pub(super) fn new(stream: S, size: BodySize, idle: Duration) -> Self {
        ResponseBody {
            stream,
            size,
            idle,
            timer: None,
            armed: false,
        }
    }
}

impl<S> MessageBody for ResponseBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>>,
{
    type Error = ResponseBodyError;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        match this.stream.poll_next(cx) {
            Poll::Ready(item) => {
                *this.armed = false;
                Poll::Ready(item.map(|chunk| {
                    chunk.map_err(|e| {
                        let error = ResponseBodyError::Broken(e);
                        log::warn!("{error}");
                        error
                    })
                }))
            }
            Poll::Pending => {
                let deadline = actix_web::rt::time::Instant::now() + *this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(actix_web::rt::time::sleep_until(deadline)));
                if !*this.armed {
                    timer.as_mut().reset(deadline);
                    *this.armed = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let error = ResponseBodyError::Stalled(*this.idle);
                        log::warn!("{error}");
                        Poll::Ready(Some(Err(error)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
