//! The one API error type, rendered as the spec's JSON error body
//! (`{"errors":[{"code","message","detail"}]}`) with its HTTP status.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::storage::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: serde_json::Value,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = detail;
        self
    }

    /// Sets `detail` unless the error already has one.
    pub fn or_detail(self, detail: serde_json::Value) -> ApiError {
        if self.detail.is_null() {
            self.detail(detail)
        } else {
            self
        }
    }

    pub fn header(mut self, name: HeaderName, value: String) -> ApiError {
        if let Ok(v) = HeaderValue::try_from(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn name_invalid(why: impl Into<String>) -> ApiError {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
        .detail(json!(why.into()))
    }
    pub fn tag_invalid(why: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "TAG_INVALID", "invalid tag").detail(json!(why.into()))
    }
    pub fn digest_invalid(why: impl Into<String>) -> ApiError {
        Self::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        )
        .detail(json!(why.into()))
    }
    pub fn manifest_invalid(why: impl Into<String>) -> ApiError {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "manifest invalid",
        )
        .detail(json!(why.into()))
    }
    pub fn unsupported(why: impl Into<String>) -> ApiError {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the operation is unsupported",
        )
        .detail(json!(why.into()))
    }
    pub fn not_found() -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
    }
    pub fn internal() -> ApiError {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal server error; see the registry log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        use StatusCode as S;
        match e {
            StoreError::BlobUnknown => {
                ApiError::new(S::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry")
            }
            StoreError::ManifestUnknown => {
                ApiError::new(S::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown")
            }
            StoreError::NameUnknown => ApiError::new(
                S::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
            ),
            StoreError::UploadUnknown => ApiError::new(
                S::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
            ),
            StoreError::UploadOffset { size } => ApiError::new(
                S::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                "chunk does not start at the end of the upload",
            )
            .detail(json!({ "size": size }))
            .header(
                axum::http::header::RANGE,
                format!("0-{}", size.saturating_sub(1)),
            ),
            StoreError::DigestMismatch { expected, computed } => {
                ApiError::digest_invalid(format!("expected {expected}, content is {computed}"))
            }
            StoreError::ManifestBlobUnknown(d) => ApiError::new(
                S::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                "manifest references a manifest or blob unknown to registry",
            )
            .detail(json!({ "digest": d.to_string() })),
            StoreError::Body(e) => ApiError::new(
                S::BAD_REQUEST,
                "BLOB_UPLOAD_INVALID",
                "the request body could not be read",
            )
            .detail(json!(e.to_string())),
            StoreError::Io(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut entry = json!({ "code": self.code, "message": self.message });
        if !self.detail.is_null() {
            entry["detail"] = self.detail;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}
