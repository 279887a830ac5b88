//! Protection declared once for a whole scope of routes, for handlers that do not take
//! [`AuthenticatedClaims`] themselves: [`require_token`] (any valid token) and
//! [`RequireScopes`] (a valid token with given scopes). Handlers inside that do take
//! `AuthenticatedClaims` get the claims verified here, without a second validation.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, middleware::from_fn, web};
//! use api_guard::RequireScopes;
//!
//! # fn app(guard: api_guard::Guard) {
//! let app = App::new()
//!     .configure(api_guard::configure(guard))
//!     .service(
//!         web::scope("/admin")
//!             .wrap(from_fn(api_guard::require_token))
//!             .route("/stats", web::get().to(|| async { HttpResponse::Ok().finish() })),
//!     )
//!     .service(
//!         web::scope("/orders")
//!             .wrap(RequireScopes::new(["orders:write"]))
//!             .route("", web::post().to(|| async { HttpResponse::Created().finish() })),
//!     );
//! # }
//! ```

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::middleware::Next;
use futures_util::future::LocalBoxFuture;

use crate::claims::AuthenticatedClaims;
use crate::error::Error;

/// Middleware that requires a valid token on every route of the scope it wraps; use it with
/// `actix_web::middleware::from_fn(api_guard::require_token)`.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match authenticate(&req, &[]).await {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}

/// Middleware that requires a DPoP-bound token with a valid proof (RFC 9449) on every route
/// of the scope it wraps, whatever the guard's [`DpopMode`](crate::DpopMode) (which must not
/// be `off`); use it with `actix_web::middleware::from_fn(api_guard::require_dpop)`. A
/// Bearer token gets 401 with a `DPoP` challenge.
pub async fn require_dpop(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let bound = authenticate(&req, &[]).await.and_then(|()| {
        let claims = req.extensions().get::<AuthenticatedClaims>().cloned();
        // Claims verified through DPoP always have `cnf.jkt`: a bound token sent as Bearer
        // is refused by the guard, and an unbound one sent as DPoP too.
        match claims
            .as_ref()
            .and_then(AuthenticatedClaims::dpop_thumbprint)
        {
            Some(_) => Ok(()),
            None => Err(Error::from(crate::Reason::DpopRequired)),
        }
    });
    match bound {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}

/// Middleware that requires a valid token granting every one of its scopes on every route
/// of the scope it wraps: 401 without a valid token, 403 `insufficient_scope` naming the
/// scopes without them.
#[derive(Debug, Clone)]
pub struct RequireScopes(Arc<[String]>);

impl RequireScopes {
    /// Requires all of `scopes` (matched exactly, as [`AuthenticatedClaims::has_scope`] does).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        RequireScopes(scopes.into_iter().map(Into::into).collect())
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireScopes
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopesService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopesService {
            service: Rc::new(service),
            scopes: Arc::clone(&self.0),
        }))
    }
}

/// The service [`RequireScopes`] wraps around a scope's routes.
pub struct RequireScopesService<S> {
    service: Rc<S>,
    scopes: Arc<[String]>,
}

impl<S, B> Service<ServiceRequest> for RequireScopesService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let scopes = Arc::clone(&self.scopes);
        Box::pin(async move {
            match authenticate(&req, &scopes).await {
                Ok(()) => service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body),
                Err(error) => Ok(req.error_response(error).map_into_right_body()),
            }
        })
    }
}

/// Verifies the request's token (or takes the claims an outer middleware verified), checks
/// `scopes`, and leaves the claims in the request for the handler.
async fn authenticate(req: &ServiceRequest, scopes: &[String]) -> Result<(), Error> {
    let verified = req.extensions().get::<AuthenticatedClaims>().cloned();
    let claims = match verified {
        Some(claims) => claims,
        None => {
            let (request, payload) = (req.request(), &mut actix_web::dev::Payload::None);
            <AuthenticatedClaims as actix_web::FromRequest>::from_request(request, payload).await?
        }
    };
    if !scopes.iter().all(|scope| claims.has_scope(scope)) {
        return Err(Error::InsufficientScope {
            required: scopes.to_vec(),
        });
    }
    req.extensions_mut().insert(claims);
    Ok(())
}
