//! The JSON protocol: client requests and server messages (docs/spec.md,
//! "Gateway"; README has examples).

use std::fmt::Write;

use mdbus_types::{BookSnapshot, RecordRef, Tick, json};
use serde_json::Value;

/// Error codes of `{"type":"error","code":..}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    BadJson,
    UnknownType,
    UnknownChannel,
    UnknownInstrument,
    FrameTooLarge,
    TooManySubscriptions,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnknownChannel => "unknown_channel",
            ErrorCode::UnknownInstrument => "unknown_instrument",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
        }
    }
}

/// An error to send back; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl ProtocolError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::json!({"type": "error", "code": self.code.as_str(), "message": self.message}).to_string()
    }
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Subscribe `channels` (`None`: all) of `instruments` (may hold `"*"`).
    Subscribe {
        channels: Option<Vec<String>>,
        instruments: Vec<String>,
    },
    /// Unsubscribe, same shape.
    Unsubscribe {
        channels: Option<Vec<String>>,
        instruments: Vec<String>,
    },
    /// `{"type":"ping"}`, answered by a pong carrying the same `id`.
    Ping { id: Option<Value> },
}

fn strings(request: &Value, key: &str, kind: &str) -> Result<Option<Vec<String>>, ProtocolError> {
    match request.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    ProtocolError::new(
                        ErrorCode::BadJson,
                        format!("{kind}: \"{key}\" must be an array of strings, found {item}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ProtocolError::new(
            ErrorCode::BadJson,
            format!("{kind}: \"{key}\" must be an array of strings, found {other}"),
        )),
    }
}

/// Parses one text frame.
pub(crate) fn parse_request(text: &str) -> Result<Request, ProtocolError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::new(ErrorCode::BadJson, format!("not JSON: {e}")))?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(ProtocolError::new(
            ErrorCode::BadJson,
            "a request is a JSON object with a string \"type\" (subscribe, unsubscribe, ping)",
        ));
    };
    match kind {
        "subscribe" | "unsubscribe" => {
            let channels = strings(&value, "channels", kind)?;
            let instruments = strings(&value, "instruments", kind)?.ok_or_else(|| {
                ProtocolError::new(
                    ErrorCode::BadJson,
                    format!("{kind} needs \"instruments\": an array of symbols, or [\"*\"] for every instrument"),
                )
            })?;
            Ok(if kind == "subscribe" {
                Request::Subscribe { channels, instruments }
            } else {
                Request::Unsubscribe { channels, instruments }
            })
        }
        "ping" => Ok(Request::Ping {
            id: value.get("id").cloned(),
        }),
        other => Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown request type {other:?}: expected subscribe, unsubscribe or ping"),
        )),
    }
}

/// `{"type":"snapshot","instrument":..,"book":{..}|null,"tick":{..}|null}`.
pub(crate) fn snapshot_message(instrument: &str, book: Option<&BookSnapshot>, tick: Option<&Tick>) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("{\"type\":\"snapshot\",\"instrument\":");
    out.push_str(&Value::from(instrument).to_string());
    out.push_str(",\"book\":");
    match book {
        Some(book) => json::write_record(&mut out, RecordRef::BookSnapshot(book)),
        None => out.push_str("null"),
    }
    out.push_str(",\"tick\":");
    match tick {
        Some(tick) => json::write_record(&mut out, RecordRef::Tick(tick)),
        None => out.push_str("null"),
    }
    out.push('}');
    out
}

/// The start of a batch message, up to the `[` of its events.
pub(crate) fn batch_head(out: &mut String, ts_send: i64, conflated: bool) {
    let _ = write!(
        out,
        "{{\"type\":\"batch\",\"ts_send\":{ts_send},\"conflated\":{conflated},\"events\":["
    );
}

/// A gap event inside a batch.
pub(crate) fn write_gap(out: &mut String, gap: mdbus_types::SeqRange) {
    let (from, to) = (gap.from, gap.to);
    let _ = write!(out, "{{\"kind\":\"gap\",\"from\":{from},\"to\":{to}}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_errors_say_what_is_wrong() {
        assert_eq!(
            parse_request(r#"{"type":"subscribe","channels":["tick","orderbook"],"instruments":["IF2501"]}"#),
            Ok(Request::Subscribe {
                channels: Some(vec!["tick".into(), "orderbook".into()]),
                instruments: vec!["IF2501".into()],
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"ping","id":7}"#),
            Ok(Request::Ping { id: Some(7.into()) })
        );
        for (text, code) in [
            ("{", ErrorCode::BadJson),
            ("[1]", ErrorCode::BadJson),
            (r#"{"type":"subscribe"}"#, ErrorCode::BadJson),
            (r#"{"type":"subscribe","instruments":"X"}"#, ErrorCode::BadJson),
            (r#"{"type":"subscribe","instruments":[1]}"#, ErrorCode::BadJson),
            (r#"{"type":"hello"}"#, ErrorCode::UnknownType),
        ] {
            assert_eq!(parse_request(text).unwrap_err().code, code, "{text}");
        }
        let err = parse_request(r#"{"type":"hello"}"#).unwrap_err().to_json();
        assert!(
            err.contains(r#""code":"unknown_type""#) && err.contains("hello"),
            "{err}"
        );
    }
}
