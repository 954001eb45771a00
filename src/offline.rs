//! Offline judgement of one frame as JSON: what `tocsin decode` prints and what the
//! fixture corpus is checked against. Runs the daemon's own decision code.

use serde_json::{json, Value};
use time::UtcDateTime;

use crate::protocol::crypto::Key;
use crate::protocol::dc09::{parse_frame, Frame};
use crate::protocol::text::escape;
use crate::receiver::accounts::{Account, AccountTable, Encryption, UnknownPolicy};
use crate::receiver::decide::{
    decide, DuhReason, NakReason, NothingSeen, Outcome, SilenceReason, TimePolicy,
};
use crate::receiver::event::{panel_rfc3339, Transport};
use crate::receiver::normalize::Arrival;

/// The JSON verdict for one frame.
pub fn decode_one(raw: &[u8], key: Option<&Key>, now: UtcDateTime, time: &TimePolicy) -> Value {
    // Offline there is no account table: the frame's account gets the key given, so an
    // encrypted frame opens whatever account it names.
    let mut accounts = AccountTable::with_policy(UnknownPolicy::Accept);
    let frame = parse_frame(raw);
    if let (Ok(f), Some(k)) = (&frame, key) {
        if let Some(acct) = f.header.account.number() {
            accounts.insert(
                acct,
                Account {
                    key: Some(k.clone()),
                    encryption: Encryption::Optional,
                    time_check: None,
                    ..Default::default()
                },
            );
        }
    }
    let arrival = Arrival {
        now,
        transport: Transport::Offline,
        peer: None,
        peer_label: None,
        receiver: "decode",
    };
    let mut random = [0u8; 16];
    rand::fill(&mut random);
    let d = decide(raw, &arrival, &accounts, time, &NothingSeen, &random);
    let response = d.reply.bytes().map(escape);
    // `ok` says whether the frame could be read. A frame that only lacks its key (the
    // caller gave none) or that is itself a reply (ACK, NAK, DUH, RSP) is read fine; the
    // response field still says what a receiver would answer.
    let decoded = matches!(
        d.outcome,
        Outcome::AckNew
            | Outcome::AckNull
            | Outcome::AckDuplicate
            | Outcome::Nak(NakReason::NoKey)
            | Outcome::Silent(SilenceReason::Reply)
    );
    if !decoded {
        let kind = match d.outcome {
            Outcome::Duh(DuhReason::UnknownToken) => "token",
            Outcome::Silent(SilenceReason::Framing) => "syntax",
            o => o.reason_label(),
        };
        let mut v = json!({
            "ok": false,
            "error": {"kind": kind, "detail": d.detail.unwrap_or_default()},
            "response": response,
        });
        if let Ok(f) = &frame {
            v["frame"] = frame_json(f, key);
        }
        if !d.events.is_empty() {
            v["events"] = serde_json::to_value(&d.events).unwrap_or(Value::Null);
        }
        return v;
    }
    let frame_v = match &frame {
        Ok(f) => frame_json(f, key),
        Err(_) => Value::Null,
    };
    json!({
        "ok": true,
        "frame": frame_v,
        "events": d.events,
        "response": response,
    })
}

fn frame_json(f: &Frame<'_>, key: Option<&Key>) -> Value {
    let h = &f.header;
    let mut scratch = Vec::new();
    let content = f.open(key, &mut scratch).ok();
    let mut deviations: Vec<&str> = f.deviations.iter().map(|d| d.as_str()).collect();
    if let Some(c) = &content {
        deviations.extend(c.deviations.iter().map(|d| d.as_str()));
        deviations.sort_unstable();
        deviations.dedup();
    }
    json!({
        "token": h.token,
        "encrypted": h.encrypted,
        "seq": h.seq,
        "receiver_no": h.receiver,
        "line_no": h.has_line.then_some(h.line),
        // The routing account: the header's, else the one in the data block.
        "account": h.account.number().or_else(|| {
            content.as_ref().and_then(|c| crate::receiver::decide::data_account_of(c.data))
        }),
        "data": content.as_ref().map(|c| c.data_text().into_owned()),
        "ext": content.as_ref().map(|c| c.ext.iter().map(|b| b.text()).collect::<Vec<_>>()).unwrap_or_default(),
        "timestamp": content.as_ref().and_then(|c| c.timestamp).map(panel_rfc3339),
        "crc_ok": true,
        "length_ok": true,
        "crc_form": f.crc_form,
        "pad_len": content.as_ref().and_then(|c| c.pad_len),
        "deviations": deviations,
    })
}
