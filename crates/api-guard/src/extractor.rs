//! The [`AuthenticatedClaims`] extractor: a handler that takes it is protected; one that does
//! not is anonymous. The common case (a known key) completes synchronously; only an unknown
//! `kid` awaits the key store's one refetch.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};
use serde::de::DeserializeOwned;

use crate::claims::AuthenticatedClaims;
use crate::error::Error;
use crate::guard::{Guard, Step};

impl<T: DeserializeOwned + 'static> FromRequest for AuthenticatedClaims<T> {
    type Error = Error;
    type Future = Either<Ready<Result<Self, Error>>, LocalBoxFuture<'static, Result<Self, Error>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Claims a middleware already verified for this request.
        if let Some(claims) = req.extensions().get::<AuthenticatedClaims>() {
            return Either::Left(ready(claims.clone().with_custom()));
        }
        let Some(guard) = req.app_data::<Guard>() else {
            log::error!(
                "{} {} takes AuthenticatedClaims but no Guard is registered: add `.configure(api_guard::configure(guard))` to the App",
                req.method(),
                crate::outside::quoted(req.path())
            );
            return Either::Left(ready(Err(Error::NotConfigured)));
        };
        match guard.authenticate(req) {
            Step::Done(result) => Either::Left(ready(result.and_then(|c| c.with_custom()))),
            step => {
                let guard = guard.clone();
                Either::Right(Box::pin(async move {
                    guard.finish(step).await.and_then(|c| c.with_custom())
                }))
            }
        }
    }
}
