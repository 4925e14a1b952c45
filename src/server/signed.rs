//! The signed-form extractor: buffers the body (64 KiB limit), checks `X-Twilio-Signature`
//! against `public_url` + path + query and the POST parameters, and yields the raw pairs.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

use super::ApiError;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::twilio::signature;

/// The form parameters of a request whose Twilio signature checked out.
#[derive(Debug)]
pub struct SignedForm {
    pub pairs: Vec<(String, String)>,
}

impl SignedForm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters as a JSON object (repeated keys: the last wins), for the audit trail.
    pub fn to_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(map).to_string()
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
        Ok(SignedForm { pairs })
    }
}
