//! The error codes of the distribution spec (plus the few registry:2 and
//! Berth add), each with the HTTP status and message it is answered with
//! unless the failure says otherwise. Like distribution's `errcode`
//! registry: one list, so every failure maps to a code in one place.

use std::fmt;

/// An error code as it appears in `{"errors":[{"code": ...}]}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// registry:2's code for a tag that is not `[\w][\w.-]{0,127}`.
    TagInvalid,
    /// registry:2's code for an invalid `n` in a paginated list.
    PaginationNumberInvalid,
    /// registry:2's code for a blob `Range` that selects nothing.
    RangeInvalid,
    /// Berth's code for a path that is no endpoint of the API.
    NotFound,
    /// Anything else: a failure of the registry itself.
    Unknown,
}

impl ErrorCode {
    /// The code as the spec spells it.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "BLOB_UNKNOWN",
            BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid => "DIGEST_INVALID",
            ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            NameInvalid => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            SizeInvalid => "SIZE_INVALID",
            Unauthorized => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported => "UNSUPPORTED",
            TooManyRequests => "TOOMANYREQUESTS",
            TagInvalid => "TAG_INVALID",
            PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            RangeInvalid => "RANGE_INVALID",
            NotFound => "NOT_FOUND",
            Unknown => "UNKNOWN",
        }
    }

    /// The HTTP status a failure with this code gets by default.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BlobUnknown | BlobUploadUnknown | ManifestUnknown | NameUnknown | NotFound => 404,
            BlobUploadInvalid
            | DigestInvalid
            | ManifestBlobUnknown
            | ManifestInvalid
            | NameInvalid
            | SizeInvalid
            | TagInvalid
            | PaginationNumberInvalid => 400,
            Unauthorized => 401,
            Denied => 403,
            Unsupported => 405,
            RangeInvalid => 416,
            TooManyRequests => 429,
            Unknown => 500,
        }
    }

    /// The message a failure with this code gets by default.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "blob unknown to registry",
            BlobUploadInvalid => "blob upload invalid",
            BlobUploadUnknown => "blob upload unknown to registry",
            DigestInvalid => "provided digest did not match uploaded content",
            ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            ManifestInvalid => "manifest invalid",
            ManifestUnknown => "manifest unknown",
            NameInvalid => "invalid repository name",
            NameUnknown => "repository name not known to registry",
            SizeInvalid => "provided length did not match content length",
            Unauthorized => "authentication required",
            Denied => "requested access to the resource is denied",
            Unsupported => "the operation is unsupported",
            TooManyRequests => "too many requests",
            TagInvalid => "invalid tag",
            PaginationNumberInvalid => "n must be a non-negative integer",
            RangeInvalid => "requested range not satisfiable",
            NotFound => "no such endpoint",
            Unknown => "internal server error; see the registry log",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_the_spec_does() {
        assert_eq!(ErrorCode::TooManyRequests.as_str(), "TOOMANYREQUESTS");
        assert_eq!(
            ErrorCode::ManifestBlobUnknown.to_string(),
            "MANIFEST_BLOB_UNKNOWN"
        );
        assert_eq!(ErrorCode::Unsupported.status(), 405);
        assert_eq!(ErrorCode::Unknown.status(), 500);
    }
}
