//! `GET /health/live` and `GET /health/ready`, for load balancers and orchestrators. Their
//! bodies are types, and `/openapi.json` describes them from the same types.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get};
use api_guard::{DpopMode, Guard};
use serde::Serialize;

use crate::telemetry::Drain;

/// What `/health/ready` says. `/openapi.json`'s `Ready` and `NotReady` schemas list these by
/// their [`http_status`](Self::http_status), so a new status is documented by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// The signing keys of at least one issuer are loaded: 200.
    Ready,
    /// No issuer's signing keys yet: 503.
    NotReady,
    /// A shutdown signal started the drain: 503, send new requests elsewhere.
    Draining,
}

impl ReadyStatus {
    /// Every status.
    pub const ALL: [ReadyStatus; 3] = [
        ReadyStatus::Ready,
        ReadyStatus::NotReady,
        ReadyStatus::Draining,
    ];

    /// The `status` member, as serialised.
    pub const fn name(self) -> &'static str {
        match self {
            ReadyStatus::Ready => "ready",
            ReadyStatus::NotReady => "not_ready",
            ReadyStatus::Draining => "draining",
        }
    }

    /// The HTTP status answered with it.
    pub const fn http_status(self) -> StatusCode {
        match self {
            ReadyStatus::Ready => StatusCode::OK,
            ReadyStatus::NotReady | ReadyStatus::Draining => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The body of `/health/ready`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// Where the service stands.
    pub status: ReadyStatus,
    /// Keys loaded, when ready: of every issuer, added up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
    /// Age of the key set, when ready: with several issuers, of the oldest one loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_age_secs: Option<u64>,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Whether the DPoP replay store can answer (`available` or `unavailable`), when DPoP
    /// is on. Unavailable makes the service not ready only with `AUTH_DPOP=required`: then no
    /// protected request can pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_replay_store: Option<&'static str>,
    /// Each issuer's key store, in the order of `AUTH_ISSUER`.
    pub issuers: Vec<IssuerReadiness>,
}

/// One issuer's part of `/health/ready`.
#[derive(Debug, Serialize)]
pub struct IssuerReadiness {
    /// The issuer, as its tokens carry it in `iss`.
    pub issuer: String,
    /// Its keys loaded now; 0 while none are (its tokens answer 503).
    pub keys: usize,
    /// Age of its key set, once one is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_age_secs: Option<u64>,
}

/// The body of `/health/live`.
#[derive(Debug, Serialize)]
pub struct Liveness {
    /// Always `live`.
    pub status: &'static str,
}

/// 200 while the process serves requests.
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "live" })
}

/// 200 once the signing keys of at least one issuer are loaded; 503 before, so no traffic is
/// routed to a replica that could only answer 503 on protected routes, and 503 again once a
/// shutdown signal started the drain.
#[get("/health/ready")]
pub async fn ready(req: HttpRequest) -> HttpResponse {
    let readiness = readiness(&req);
    HttpResponse::build(readiness.status.http_status()).json(readiness)
}

fn readiness(req: &HttpRequest) -> Readiness {
    let guard = req.app_data::<Guard>();
    let dpop = guard
        .map(|guard| (guard.settings().dpop_mode(), guard.replay_store_available()))
        .filter(|(mode, _)| *mode != DpopMode::Off);
    let dpop_replay_store = dpop.map(|(_, up)| if up { "available" } else { "unavailable" });
    let issuers: Vec<IssuerReadiness> = guard
        .map(Guard::key_stores)
        .unwrap_or_default()
        .into_iter()
        .map(|store| IssuerReadiness {
            issuer: store.issuer,
            keys: store.keys,
            keys_age_secs: store.age.filter(|_| store.keys > 0).map(|a| a.as_secs()),
        })
        .collect();
    let not_ready = |status, reason, issuers| Readiness {
        status,
        keys: None,
        keys_age_secs: None,
        reason: Some(reason),
        dpop_replay_store,
        issuers,
    };
    if req.app_data::<Drain>().is_some_and(Drain::is_draining) {
        return not_ready(
            ReadyStatus::Draining,
            "shutting down: finishing requests in flight, send new ones elsewhere",
            issuers,
        );
    }
    if dpop == Some((DpopMode::Required, false)) {
        return not_ready(
            ReadyStatus::NotReady,
            "AUTH_DPOP is required and the DPoP replay store (DPOP_REPLAY_STORE) cannot be reached",
            issuers,
        );
    }
    let keys: usize = issuers.iter().map(|issuer| issuer.keys).sum();
    if keys == 0 {
        let reason = if issuers.len() > 1 {
            "no issuer's signing keys are loaded yet"
        } else {
            "the issuer's signing keys are not loaded yet"
        };
        return not_ready(ReadyStatus::NotReady, reason, issuers);
    }
    Readiness {
        status: ReadyStatus::Ready,
        keys: Some(keys),
        keys_age_secs: issuers.iter().filter_map(|i| i.keys_age_secs).max(),
        reason: None,
        dpop_replay_store,
        issuers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_serialises_as_its_name() {
        for status in ReadyStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(status.name().into())
            );
        }
    }
}
