//! One endpoint's worker: sends the oldest queued event, in registry:2's
//! envelope, until the endpoint answers 2xx; then the next. Failures in a
//! row up to `threshold` are retried at once (registry:2's retrying sink);
//! from then on it waits `backoff`, doubled on each further failure up to
//! [`Endpoint::max_backoff`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::event::EVENTS_MEDIA_TYPE;
use super::queue::Queue;
use crate::config::Endpoint;

/// The HTTP client of one endpoint: its timeout and headers. Redirects are
/// followed only within the endpoint's origin (scheme, host and port): the
/// events and the configured headers (credentials, often) never go to
/// another host. As in registry:2, a final 2xx or 3xx means delivered.
pub struct Client {
    http: reqwest::Client,
    headers: HeaderMap,
}

pub fn client(e: &Endpoint) -> anyhow::Result<Client> {
    let mut headers = HeaderMap::new();
    for (name, values) in &e.headers {
        let name = HeaderName::try_from(name.as_str())?;
        for v in values {
            headers.append(name.clone(), HeaderValue::try_from(v.as_str())?);
        }
    }
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(EVENTS_MEDIA_TYPE),
    );
    let origin = reqwest::Url::parse(&e.url)?.origin();
    let same_origin = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() < 10 && attempt.url().origin() == origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    let http = reqwest::Client::builder()
        .redirect(same_origin)
        .timeout(e.timeout)
        .connect_timeout(e.timeout)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(Client { http, headers })
}

/// The wait after `failures` failed attempts in a row.
pub fn delay(e: &Endpoint, failures: u32) -> Duration {
    if failures < e.threshold {
        // registry:2 retries at once below the threshold; a breath all the
        // same, so a refused connection does not spin.
        return Duration::from_millis(10);
    }
    let doublings = (failures - e.threshold).min(20);
    e.backoff
        .saturating_mul(1u32 << doublings)
        .min(e.max_backoff())
}

async fn send(client: &Client, url: &str, event: Vec<u8>) -> Result<(), String> {
    let mut body = Vec::with_capacity(event.len() + 13);
    body.extend_from_slice(b"{\"events\":[");
    body.extend_from_slice(&event);
    body.extend_from_slice(b"]}");
    let mut req = client.http.post(url).body(body);
    // One by one: each value of a header is its own line, as configured.
    for (name, value) in &client.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.map_err(|e| format!("{e}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        // registry:2 counts a 3xx as accepted too; one to another origin
        // (or the 11th in a row) is not followed, and said so.
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::warn!(
            url,
            %status,
            location,
            "notification endpoint redirected elsewhere: not followed (another origin); \
             counted as delivered, as registry:2 counts a 3xx"
        );
        return Ok(());
    }
    Err(format!("the endpoint answered {status}"))
}

/// Runs until aborted.
pub async fn run(queue: Arc<Queue>, endpoint: Endpoint, client: Client) {
    let name = endpoint.name.clone();
    let mut failures: u32 = 0;
    loop {
        let q = queue.clone();
        let front = match tokio::task::spawn_blocking(move || q.front()).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::error!(endpoint = name, "cannot read the notification queue: {e}");
                tokio::time::sleep(endpoint.max_backoff()).await;
                continue;
            }
            Err(_) => return,
        };
        let Some((seq, event)) = front else {
            queue.wake.notified().await;
            continue;
        };
        match send(&client, &endpoint.url, event).await {
            Ok(()) => {
                let q = queue.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || q.remove(seq)).await {
                    tracing::error!(endpoint = name, "cannot remove a delivered event: {e}");
                }
                metrics::counter!("berth_notifications_delivered_total", "endpoint" => name.clone())
                    .increment(1);
                if failures >= endpoint.threshold {
                    tracing::info!(endpoint = name, "notification endpoint is back: delivering");
                }
                failures = 0;
            }
            Err(why) => {
                failures = failures.saturating_add(1);
                metrics::counter!("berth_notifications_retried_total", "endpoint" => name.clone())
                    .increment(1);
                let wait = delay(&endpoint, failures);
                if failures == 1 || failures == endpoint.threshold {
                    tracing::warn!(
                        endpoint = name,
                        failures,
                        queued = queue.len(),
                        "cannot deliver a notification: {why}; retrying in {}",
                        humantime::format_duration(wait)
                    );
                } else {
                    tracing::debug!(
                        endpoint = name,
                        failures,
                        "cannot deliver a notification: {why}"
                    );
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_starts_at_the_threshold_and_stops_growing() {
        let e = Endpoint {
            threshold: 3,
            backoff: Duration::from_secs(2),
            ..Endpoint::default()
        };
        assert!(delay(&e, 1) < Duration::from_secs(1));
        assert_eq!(delay(&e, 3), Duration::from_secs(2));
        assert_eq!(delay(&e, 4), Duration::from_secs(4));
        assert_eq!(delay(&e, 1000), Duration::from_secs(60));
    }
}
