//! Reading `Authorization: Basic` credentials.

use axum::http::{header, HeaderMap};
use base64::Engine as _;

/// `Authorization: Basic ...` as (user, password). Err when there is an
/// Authorization header that is not usable Basic credentials.
#[allow(clippy::result_unit_err)]
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| ())?;
    let text = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = text.split_once(':').ok_or(())?;
    // containers/image (skopeo, podman) sends `Basic Og==` (":") when it
    // has no credentials: that is an anonymous request.
    if user.is_empty() && password.is_empty() {
        return Ok(None);
    }
    if user.is_empty() {
        return Err(());
    }
    Ok(Some((user.to_string(), password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), Ok(None));
        h.insert(header::AUTHORIZATION, "Basic YWxpY2U6cDpx".parse().unwrap());
        assert_eq!(
            basic_credentials(&h),
            Ok(Some(("alice".into(), "p:q".into())))
        );
        h.insert(header::AUTHORIZATION, "Basic Og==".parse().unwrap());
        assert_eq!(basic_credentials(&h), Ok(None));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
    }
}
