//! The signed-form extractor: buffers the body (64 KiB limit), checks `X-Twilio-Signature`
//! against `public_url` + path + query and the POST parameters, and yields the raw pairs. It is
//! the only extractor of the callback handlers, so the signature is checked before anything else
//! in the request is parsed (SPEC §10): the query is parsed afterwards, by [`SignedForm::query`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::twilio::signature;

/// The form parameters of a request whose Twilio signature checked out, with its (signed, not yet
/// parsed) query string and `I-Twilio-Idempotency-Token`.
#[derive(Debug)]
pub struct SignedForm {
    pub pairs: Vec<(String, String)>,
    query: String,
    token: Option<String>,
}

impl SignedForm {
    /// The query string's parameters; 400 when they do not parse.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|_| ApiError::BadRequest("missing or invalid attempt\n"))
    }

    /// Twilio's `I-Twilio-Idempotency-Token`: the same on every delivery of one request.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters as a JSON object (repeated keys: the last wins), for the audit trail.
    pub fn to_json(&self) -> String {
        // borrowed keys and values, no copy of the form; sorted keys as before
        let map: std::collections::BTreeMap<&str, &str> = self
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // a map of strings always serialises; the fallback is never taken
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
    }
}

impl FromRequest<Shared> for SignedForm {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let sig = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let query = req.uri().query().unwrap_or_default().to_owned();
        let token = req
            .headers()
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let url = format!("{}{}", state.public_url, path_and_query);
        let valid =
            sig.is_some_and(|s| signature::validate(state.auth_token.expose(), &url, &pairs, &s));
        if !valid {
            Metrics::inc(&state.metrics.signatures_rejected);
            tracing::warn!(path = %path_and_query, "callback refused: missing or invalid X-Twilio-Signature");
            return Err(ApiError::Forbidden.into_response());
        }
        Ok(SignedForm {
            pairs,
            query,
            token,
        })
    }
}
