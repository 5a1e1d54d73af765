//! Fast protocol tests: the real application (`berth::server::Registry`,
//! every layer, the filesystem store in a temporary directory) driven
//! in-process with `oneshot`, no socket and no child process. For edge
//! cases of the protocol and of authorization; signals, locks, crashes and
//! real clients stay in the black-box tests that start the binary.

mod support;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use support::inprocess::{basic, App, ADMIN, ALICE, RULES};
use tower::ServiceExt;

#[tokio::test]
async fn every_answer_is_the_spec_json_error_with_the_version_header() {
    let app = App::open();
    let cases = [
        (Method::GET, "/v3/", StatusCode::NOT_FOUND, "NOT_FOUND"),
        (
            Method::GET,
            "/v2/tags/list",
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            "/v2/Upper/tags/list",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/../b/tags/list",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/blobs/sha256:00",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/blobs/uploads/nope",
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/manifests/.x",
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::PUT,
            "/v2/a/manifests/.x",
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
        ),
        (
            Method::GET,
            "/v2/a/manifests/v1",
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/a/tags/list",
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            Method::PATCH,
            "/v2/_catalog",
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        ),
        (
            Method::GET,
            "/v2/_catalog?n=x",
            StatusCode::BAD_REQUEST,
            "PAGINATION_NUMBER_INVALID",
        ),
    ];
    for (method, uri, status, code) in cases {
        let a = app.send(method.clone(), uri, None, Vec::new()).await;
        assert_eq!(
            (a.status, a.code()),
            (status, code.to_string()),
            "{method} {uri}"
        );
        assert_eq!(a.header("content-type"), Some("application/json"), "{uri}");
        assert_eq!(
            a.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    // A missing manifest says which one, as registry:2 does (docker needs it).
    let a = app.get("/v2/a/manifests/v1", None).await;
    assert_eq!(a.json()["errors"][0]["detail"]["Tag"], "v1");
}

#[tokio::test]
async fn an_out_of_order_chunk_is_416_with_the_session_to_resume() {
    let app = App::open();
    let a = app
        .send(Method::POST, "/v2/a/blobs/uploads/", None, Vec::new())
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let location = a.header("location").expect("location").to_string();
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(&location)
        .header(header::CONTENT_RANGE, "5-9")
        .header(header::CONTENT_LENGTH, 5)
        .body(Body::from(&b"12345"[..]))
        .expect("request");
    let resp = app.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()["location"], location.as_str());
    assert_eq!(resp.headers()["range"], "0-0");
    assert_eq!(resp.headers()["connection"], "close");
}

#[tokio::test]
async fn without_credentials_an_auth_registry_challenges() {
    let app = App::with_config(RULES, true);
    for uri in [
        "/v2/",
        "/v2/_catalog",
        "/v2/team-a/x/tags/list",
        "/v3/nothing",
    ] {
        let a = app.get(uri, None).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into())
        );
        assert_eq!(
            a.header("www-authenticate"),
            Some("Basic realm=\"Registry Realm\"")
        );
        assert_eq!(
            a.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    let a = app.get("/v2/", Some(("alice", "wrong"))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = app.get("/v2/", Some(ALICE)).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = app.get("/v2/secret/app/tags/list", Some(ALICE)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "DENIED".into())
    );
}

#[tokio::test]
async fn the_catalog_lists_only_what_the_caller_may_pull() {
    let app = App::with_config(RULES, true);
    for repo in ["secret/app", "team-a/x"] {
        let d = app.push_blob(repo, b"{}", Some(ADMIN)).await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":2}},"layers":[]}}"#
        );
        let req = Request::builder()
            .method(Method::PUT)
            .uri(format!("/v2/{repo}/manifests/v1"))
            .header(
                header::CONTENT_TYPE,
                "application/vnd.oci.image.manifest.v1+json",
            )
            .header(header::AUTHORIZATION, basic(ADMIN))
            .body(Body::from(manifest))
            .expect("request");
        let resp = app.router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let all = app.get("/v2/_catalog", Some(ADMIN)).await.json();
    assert_eq!(
        all["repositories"],
        serde_json::json!(["secret/app", "team-a/x"])
    );
    let mine = app.get("/v2/_catalog", Some(ALICE)).await.json();
    assert_eq!(mine["repositories"], serde_json::json!(["team-a/x"]));
}

/// Every way of asking for a cross-repository mount from a repository the
/// caller may not pull gets a plain upload session (202), never the blob
/// (201), and the blob stays unreadable to the caller.
#[tokio::test]
async fn a_mount_from_a_forbidden_repository_is_a_plain_upload() {
    let app = App::with_config(RULES, true);
    let secret = app
        .push_blob("secret/app", b"the secret layer", Some(ADMIN))
        .await;
    let long = "/".repeat(22_000);
    let asks = [
        format!("mount={secret}&from=secret/app"),
        format!("from=secret/app&mount={secret}"),
        format!("mount={secret}&from=secret%2Fapp"),
        format!("mount={}&from=secret/app", secret.replace(':', "%3A")),
        format!("mount={secret}&from=secret/app&x={long}"),
        format!("x={long}&mount={secret}&from=secret/app"),
        format!("mount={secret}&from=secret/app&from=team-a/x"),
        format!("mount={secret}&mount={secret}&from=secret/app"),
    ];
    for q in &asks {
        let uri = format!("/v2/team-a/x/blobs/uploads/?{q}");
        let a = app.send(Method::POST, &uri, Some(ALICE), Vec::new()).await;
        let shown: String = q.chars().take(120).collect();
        assert_eq!(a.status, StatusCode::ACCEPTED, "{shown}: {:?}", a.json());
        let blob = app
            .get(&format!("/v2/team-a/x/blobs/{secret}"), Some(ALICE))
            .await;
        assert_eq!(blob.status, StatusCode::NOT_FOUND, "{shown}");
    }
    // The same mount is allowed to someone who may pull the source.
    let uri = format!("/v2/team-a/x/blobs/uploads/?mount={secret}&from=secret/app");
    let a = app.send(Method::POST, &uri, Some(ADMIN), Vec::new()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let blob = app
        .get(&format!("/v2/team-a/x/blobs/{secret}"), Some(ALICE))
        .await;
    assert_eq!(blob.body, b"the secret layer");
}

/// A mount from a repository the caller may pull still works for them.
#[tokio::test]
async fn a_mount_between_repositories_the_caller_may_pull_links_the_blob() {
    let app = App::with_config(RULES, true);
    let d = app.push_blob("team-a/one", b"shared", Some(ALICE)).await;
    let uri = format!("/v2/team-a/two/blobs/uploads/?mount={d}&from=team-a/one");
    let a = app.send(Method::POST, &uri, Some(ALICE), Vec::new()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        a.header("location"),
        Some(format!("/v2/team-a/two/blobs/{d}").as_str())
    );
}

/// The auth layer decides from the route the API's outer layers parse; put
/// in front of the handlers without them, it refuses every request rather
/// than let one through undecided.
#[tokio::test]
async fn the_auth_layer_without_a_parsed_route_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let htpasswd = dir.path().join("htpasswd");
    berth::auth::htpasswd::add_user(&htpasswd, ADMIN.0, ADMIN.1, 4).expect("htpasswd");
    let auth_config = berth::config::AuthConfig {
        htpasswd: Some(berth::config::HtpasswdConfig {
            realm: "r".into(),
            path: htpasswd,
        }),
    };
    let auth =
        berth::auth::Auth::from_config(&auth_config, &Default::default(), &Default::default())
            .expect("auth")
            .expect("auth on");
    let store = berth::storage::FsStore::open(&dir.path().join("data")).expect("store");
    let state = berth::api::AppState {
        store: std::sync::Arc::new(store),
        delete_enabled: false,
        limits: Default::default(),
        readonly: Default::default(),
        responses: Default::default(),
        proxy: Default::default(),
        notifier: None,
    };
    let bare = berth::api::handlers(state).layer(axum::middleware::from_fn_with_state(
        auth,
        berth::auth::require,
    ));
    let req = Request::builder()
        .uri("/v2/_catalog")
        .header(header::AUTHORIZATION, basic(ADMIN))
        .body(Body::empty())
        .expect("request");
    let resp = bare.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
