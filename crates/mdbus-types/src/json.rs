//! docs/spec.md's JSON form of a record: one object per record, the same in
//! `replay`, `subscribe`, `history`, `snapshot` and the gateway.
//!
//! Prices are JSON numbers printed as exact decimals from the fixed-point
//! value (never through `f64`); `Price::NULL` is `null`. Parsing reads
//! prices from the number's own text, so `4123.000000001` and `1e-09` come
//! back exact.

use std::fmt::Write;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::instrument::InstrumentId;
use crate::price::Price;
use crate::record::{BOOK_DEPTH, BookDelta, BookSnapshot, Heartbeat, Kind, Level, RecordHeader, Side, Tick};
use crate::sample::{MdSample, RecordRef};

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_levels(out: &mut String, levels: &[Level]) {
    out.push('[');
    for (i, level) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[{},{}]", level.price, level.qty);
    }
    out.push(']');
}

/// Appends the JSON object of `record` to `out` (no newline).
pub fn write_record(out: &mut String, record: RecordRef<'_>) {
    let h = record.header();
    let _ = write!(out, "{{\"seq\":{},\"kind\":\"{}\"", h.seq, record.kind().json_name());
    if let Some(instrument) = record.instrument() {
        out.push_str(",\"instrument\":");
        write_str(out, instrument.as_str());
    }
    let _ = write!(
        out,
        ",\"ts_event\":{},\"ts_publish\":{},\"flags\":{}",
        h.ts_event, h.ts_publish, h.flags
    );
    match record {
        RecordRef::Tick(t) => {
            let _ = write!(
                out,
                ",\"last_px\":{},\"last_qty\":{},\"bid_px\":{},\"bid_qty\":{},\"ask_px\":{},\"ask_qty\":{},\"volume\":{}",
                t.last_px, t.last_qty, t.bid_px, t.bid_qty, t.ask_px, t.ask_qty, t.volume
            );
        }
        RecordRef::BookSnapshot(s) => {
            out.push_str(",\"bids\":");
            write_levels(out, s.bid_levels());
            out.push_str(",\"asks\":");
            write_levels(out, s.ask_levels());
        }
        RecordRef::BookDelta(d) => {
            let side = match Side::from_u8(d.side) {
                Some(Side::Bid) => "\"bid\"".to_string(),
                Some(Side::Ask) => "\"ask\"".to_string(),
                None => d.side.to_string(),
            };
            let _ = write!(out, ",\"side\":{side},\"price\":{},\"qty\":{}", d.price, d.qty);
        }
        RecordRef::Heartbeat(_) => {}
    }
    out.push('}');
}

/// The JSON object of `record` as a new string.
pub fn record_to_json(record: RecordRef<'_>) -> String {
    let mut out = String::with_capacity(256);
    write_record(&mut out, record);
    out
}

#[derive(Deserialize)]
struct JsonHeader<'a> {
    seq: u64,
    #[serde(borrow)]
    kind: &'a str,
    ts_event: i64,
    ts_publish: i64,
    #[serde(default)]
    flags: u16,
}

#[derive(Deserialize)]
struct JsonTick<'a> {
    instrument: String,
    #[serde(borrow)]
    last_px: &'a RawValue,
    last_qty: i64,
    #[serde(borrow)]
    bid_px: &'a RawValue,
    bid_qty: i64,
    #[serde(borrow)]
    ask_px: &'a RawValue,
    ask_qty: i64,
    volume: i64,
}

#[derive(Deserialize)]
struct JsonSnapshot<'a> {
    instrument: String,
    #[serde(borrow)]
    bids: Vec<(&'a RawValue, i64)>,
    #[serde(borrow)]
    asks: Vec<(&'a RawValue, i64)>,
}

#[derive(Deserialize)]
struct JsonDelta<'a> {
    instrument: String,
    side: String,
    #[serde(borrow)]
    price: &'a RawValue,
    qty: i64,
}

fn price(raw: &RawValue) -> Result<Price> {
    let text = raw.get();
    if text == "null" {
        return Ok(Price::NULL);
    }
    text.parse::<Price>().map_err(|e| Error::Json(e.to_string()))
}

fn levels(raw: &[(&RawValue, i64)], side: &str) -> Result<([Level; BOOK_DEPTH], u16)> {
    if raw.len() > BOOK_DEPTH {
        return Err(Error::Json(format!("{side}: {} levels, at most 10", raw.len())));
    }
    let mut out = [Level::EMPTY; BOOK_DEPTH];
    for (slot, (p, q)) in out.iter_mut().zip(raw) {
        *slot = Level {
            price: price(p)?,
            qty: *q,
        };
    }
    Ok((out, raw.len() as u16))
}

fn json_err(e: serde_json::Error) -> Error {
    Error::Json(e.to_string())
}

/// Parses one record from its JSON form (key order free) into a sample.
pub fn sample_from_json(text: &str) -> Result<MdSample> {
    let h: JsonHeader<'_> = serde_json::from_str(text).map_err(json_err)?;
    let kind = Kind::from_json_name(h.kind).ok_or_else(|| Error::Json(format!("unknown kind {:?}", h.kind)))?;
    let header = RecordHeader {
        seq: h.seq,
        ts_event: h.ts_event,
        ts_publish: h.ts_publish,
        kind: kind as u16,
        flags: h.flags,
        _pad: [0; 4],
    };
    Ok(match kind {
        Kind::Tick => {
            let t: JsonTick<'_> = serde_json::from_str(text).map_err(json_err)?;
            MdSample::from(Tick {
                header,
                instrument: InstrumentId::new(&t.instrument)?,
                last_px: price(t.last_px)?,
                last_qty: t.last_qty,
                bid_px: price(t.bid_px)?,
                bid_qty: t.bid_qty,
                ask_px: price(t.ask_px)?,
                ask_qty: t.ask_qty,
                volume: t.volume,
            })
        }
        Kind::BookSnapshot => {
            let s: JsonSnapshot<'_> = serde_json::from_str(text).map_err(json_err)?;
            let (bids, bid_count) = levels(&s.bids, "bids")?;
            let (asks, ask_count) = levels(&s.asks, "asks")?;
            MdSample::from(BookSnapshot {
                header,
                instrument: InstrumentId::new(&s.instrument)?,
                bid_count,
                ask_count,
                _pad: [0; 4],
                bids,
                asks,
            })
        }
        Kind::BookDelta => {
            let d: JsonDelta<'_> = serde_json::from_str(text).map_err(json_err)?;
            let side = match d.side.as_str() {
                "bid" => Side::Bid,
                "ask" => Side::Ask,
                other => return Err(Error::Json(format!("side {other:?} is neither \"bid\" nor \"ask\""))),
            };
            let mut delta = BookDelta::new(InstrumentId::new(&d.instrument)?, side, price(d.price)?, d.qty, 0);
            delta.header = header;
            MdSample::from(delta)
        }
        Kind::Heartbeat => MdSample::from(Heartbeat { header }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FLAG_END_OF_BATCH, Record};

    #[test]
    fn tick_json_matches_design_example() {
        let text = r#"{"seq":17,"kind":"tick","instrument":"IF2501","ts_event":1764000000000000000,"ts_publish":1764000000000001000,"flags":0,"last_px":4123.4,"last_qty":2,"bid_px":4123.2,"bid_qty":5,"ask_px":4123.4,"ask_qty":3,"volume":1234}"#;
        let sample = sample_from_json(text).unwrap();
        assert_eq!(record_to_json(sample.record().unwrap()), text);
    }

    #[test]
    fn null_prices_exponents_and_escapes() {
        let mut tick = Tick::zeroed_with_kind();
        tick.instrument = InstrumentId::new(r#"A"B\C"#).unwrap();
        tick.bid_px = Price::NULL;
        tick.ask_px = Price(1);
        tick.header.flags = FLAG_END_OF_BATCH;
        let json = record_to_json(RecordRef::Tick(&tick));
        assert!(json.contains(r#""instrument":"A\"B\\C""#), "{json}");
        assert!(json.contains(r#""bid_px":null"#), "{json}");
        assert!(json.contains(r#""ask_px":0.000000001"#), "{json}");
        let back = sample_from_json(&json).unwrap();
        assert_eq!(back, MdSample::from(tick));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["ask_px"].as_f64(), Some(1e-9));
    }

    #[test]
    fn bad_json_names_what_is_wrong() {
        let err = sample_from_json(r#"{"seq":1,"kind":"trade","ts_event":0,"ts_publish":0}"#).unwrap_err();
        assert!(err.to_string().contains("trade"), "{err}");
        let err = sample_from_json(
            r#"{"seq":1,"kind":"book_delta","ts_event":0,"ts_publish":0,"instrument":"X","side":"up","price":1,"qty":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("up"), "{err}");
    }

    impl Tick {
        fn zeroed_with_kind() -> Tick {
            let mut t: Tick = bytemuck::Zeroable::zeroed();
            t.header.kind = Tick::KIND as u16;
            t.instrument = InstrumentId::new("X").unwrap();
            t
        }
    }
}
