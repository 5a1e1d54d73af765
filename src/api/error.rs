//! The one API error type, rendered as the spec's JSON error body
//! (`{"errors":[{"code","message","detail"}]}`) with its HTTP status. Its
//! code is an [`ErrorCode`], which gives the status and message unless the
//! failure sets its own; every storage failure maps to one here.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oci::ErrorCode;
use crate::storage::StoreError;

#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub status: StatusCode,
    pub message: String,
    pub detail: serde_json::Value,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> ApiError {
        ApiError::new(code)
    }
}

impl ApiError {
    /// An error with `code`'s status and message.
    pub fn new(code: ErrorCode) -> ApiError {
        ApiError {
            code,
            status: StatusCode::from_u16(code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: code.message().to_string(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    /// Answers with `status` instead of the code's.
    pub fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// Says `message` instead of the code's.
    pub fn message(mut self, message: impl Into<String>) -> ApiError {
        self.message = message.into();
        self
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

    pub fn header(mut self, name: HeaderName, value: impl TryInto<HeaderValue>) -> ApiError {
        if let Ok(v) = value.try_into() {
            self.headers.push((name, v));
        }
        self
    }

    pub fn name_invalid(why: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::NameInvalid).detail(json!(why.into()))
    }
    pub fn tag_invalid(why: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::TagInvalid).detail(json!(why.into()))
    }
    pub fn digest_invalid(why: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::DigestInvalid).detail(json!(why.into()))
    }
    pub fn manifest_invalid(why: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::ManifestInvalid).detail(json!(why.into()))
    }
    pub fn unsupported(why: impl Into<String>) -> ApiError {
        Self::new(ErrorCode::Unsupported).detail(json!(why.into()))
    }
    pub fn not_found() -> ApiError {
        Self::new(ErrorCode::NotFound)
    }
    pub fn internal() -> ApiError {
        Self::new(ErrorCode::Unknown)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        use ErrorCode as C;
        match e {
            StoreError::BlobUnknown => C::BlobUnknown.into(),
            StoreError::ManifestUnknown => C::ManifestUnknown.into(),
            StoreError::NameUnknown => C::NameUnknown.into(),
            StoreError::UploadUnknown => C::BlobUploadUnknown.into(),
            StoreError::UploadOffset { size } => ApiError::new(C::BlobUploadInvalid)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .message("chunk does not start at the end of the upload")
                .detail(json!({ "size": size }))
                .header(header::RANGE, format!("0-{}", size.saturating_sub(1))),
            StoreError::DigestMismatch { expected, computed } => {
                ApiError::digest_invalid(format!("expected {expected}, content is {computed}"))
            }
            StoreError::ManifestBlobUnknown(d) => {
                ApiError::new(C::ManifestBlobUnknown).detail(json!({ "digest": d.to_string() }))
            }
            StoreError::ManifestTooComplex(m) => ApiError::manifest_invalid(m),
            StoreError::Body(e) => ApiError::new(C::BlobUploadInvalid)
                .message("the request body could not be read")
                .detail(json!(e.to_string())),
            StoreError::TooManyUploads { repository, limit } => {
                let message = match &repository {
                    Some(r) => format!(
                        "too many upload sessions open in repository {r} (limit {limit}): \
                         finish or cancel one, or retry later"
                    ),
                    None => format!(
                        "too many upload sessions open in the registry (limit {limit}): \
                         retry later"
                    ),
                };
                ApiError::new(C::TooManyRequests)
                    .message(message)
                    .detail(json!({ "limit": limit, "repository": repository }))
                    .header(header::RETRY_AFTER, "60")
            }
            StoreError::StorageFull(e) => {
                tracing::error!(error = %e, "storage full: the data dir's disk or quota has no space left");
                ApiError::new(C::Unknown)
                    .status(StatusCode::INSUFFICIENT_STORAGE)
                    .message("the registry's storage is full: retry once space is freed")
            }
            StoreError::Io(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut entry = json!({ "code": self.code.as_str(), "message": self.message });
        if !self.detail.is_null() {
            entry["detail"] = self.detail;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}
