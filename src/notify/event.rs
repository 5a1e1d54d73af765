//! registry:2's event format (`notifications/event.go`): the envelope
//! `{"events":[...]}` and each event's field names, with Go's `omitempty`.

use serde::{Deserialize, Serialize};

/// The envelope's media type, sent as `Content-Type`.
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// What a blob event's target says its media type is (as registry:2).
pub const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Push,
    Pull,
    Mount,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub timestamp: String,
    pub action: String,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: Actor,
    pub source: Source,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Target {
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub length: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(
        rename = "fromRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub from_repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Descriptor>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Descriptor {
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// The request that caused the event (empty for the garbage collector's).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub method: String,
    pub useragent: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The registry instance that emitted the event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Source {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(
        rename = "instanceID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub instance_id: String,
}

impl Event {
    /// About the memory this event takes (never 0).
    pub fn approx_size(&self) -> usize {
        512 + self.target.url.len()
            + self.request.useragent.len()
            + 192 * self.target.references.len()
    }

    pub fn new(
        action: Action,
        target: Target,
        request: RequestRecord,
        actor: Actor,
        source: Source,
    ) -> Event {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            action: action.as_str().to_string(),
            target,
            request,
            actor,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_registry2s_field_names_and_omits_empty_ones() {
        let e = Event::new(
            Action::Push,
            Target {
                media_type: "m".into(),
                size: 3,
                digest: "sha256:x".into(),
                length: 3,
                repository: "r".into(),
                tag: "t".into(),
                ..Target::default()
            },
            RequestRecord::default(),
            Actor::default(),
            Source {
                addr: "h:5000".into(),
                instance_id: "i".into(),
            },
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["target"]["mediaType"], "m");
        assert!(v["target"].get("url").is_none());
        assert!(v["target"].get("fromRepository").is_none());
        assert_eq!(v["source"]["instanceID"], "i");
        assert_eq!(v["request"]["method"], "");
        assert!(v["actor"].get("name").is_none());
        assert!(e.timestamp.contains('.'), "{}", e.timestamp);
    }
}
