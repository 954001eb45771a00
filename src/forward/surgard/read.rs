//! Reading Sur-Gard automation packets, as the automation software does: cutting a byte
//! stream at DC4 and telling the fields of each packet. For `tocsin automation-sim`, the
//! tests and the fuzz target (what the writer makes must read back). Pure and panic-free.

use super::packet::{DC4, MAX_SIA_DATA};

/// Longest packet accepted by [`Cutter`]; longer runs are dropped up to the next DC4.
pub const MAX_PACKET: usize = 256;

/// One packet's fields. Texts borrow from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Heartbeat {
        receiver: &'a str,
        line: &'a str,
    },
    /// `5RRL␠18…` (`long` false) or `QRRL␠58…` (`long` true).
    ContactId {
        receiver: &'a str,
        line: &'a str,
        long: bool,
        account: &'a str,
        qualifier: char,
        code: &'a str,
        group: &'a str,
        zone: &'a str,
    },
    Sia {
        receiver: &'a str,
        line: &'a str,
        /// Between the brackets, as bytes (it may hold Windows-1252 text).
        data: &'a [u8],
    },
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet does not end with DC4")]
    NoTerminator,
    #[error("control byte inside the packet")]
    Control,
    #[error("unknown protocol character")]
    Protocol,
    #[error("receiver or line field is not 2 + 1 or 2 + 3 digits")]
    ReceiverLine,
    #[error("malformed heartbeat")]
    Heartbeat,
    #[error("malformed Contact ID packet")]
    ContactId,
    #[error("malformed SIA packet")]
    Sia,
    #[error("SIA data over {MAX_SIA_DATA} bytes")]
    SiaTooLong,
}

/// Reads one packet, DC4 included. Strict: this is the judge of "well-formed".
pub fn parse_packet(p: &[u8]) -> Result<Packet<'_>, PacketError> {
    let body = p.strip_suffix(&[DC4]).ok_or(PacketError::NoTerminator)?;
    if body.iter().any(|&b| b < 0x20 || b == 0x7F) {
        return Err(PacketError::Control);
    }
    let (&id, rest) = body.split_first().ok_or(PacketError::Protocol)?;
    match id {
        b'1' => heartbeat(rest),
        b'5' => contact_id(rest, b"18", 4),
        b'Q' => contact_id(rest, b"58", 10),
        b'S' => sia(rest),
        _ => Err(PacketError::Protocol),
    }
}

fn digits(b: &[u8]) -> Option<&str> {
    b.iter()
        .all(u8::is_ascii_digit)
        .then(|| std::str::from_utf8(b).ok())
        .flatten()
}

/// `RR` and a line of 1 or 3 digits, which must be all of `head`.
fn receiver_line(head: &[u8]) -> Result<(&str, &str), PacketError> {
    if head.len() != 3 && head.len() != 5 {
        return Err(PacketError::ReceiverLine);
    }
    let (rr, line) = head.split_at(2);
    match (digits(rr), digits(line)) {
        (Some(r), Some(l)) => Ok((r, l)),
        _ => Err(PacketError::ReceiverLine),
    }
}

fn heartbeat(rest: &[u8]) -> Result<Packet<'_>, PacketError> {
    let tail = b"           @    ";
    let head = rest.strip_suffix(tail).ok_or(PacketError::Heartbeat)?;
    let (receiver, line) = receiver_line(head)?;
    if line.len() == 3 && line != "000" {
        return Err(PacketError::Heartbeat);
    }
    Ok(Packet::Heartbeat { receiver, line })
}

fn contact_id<'a>(rest: &'a [u8], kind: &[u8], width: usize) -> Result<Packet<'a>, PacketError> {
    let space = rest
        .iter()
        .position(|&b| b == b' ')
        .ok_or(PacketError::ContactId)?;
    let (head, tail) = rest.split_at(space);
    let (receiver, line) = receiver_line(head)?;
    let tail = tail
        .strip_prefix(b" ")
        .and_then(|t| t.strip_prefix(kind))
        .ok_or(PacketError::ContactId)?;
    if tail.len() != width + 9 {
        return Err(PacketError::ContactId);
    }
    let (account, tail) = tail.split_at(width);
    let (q, tail) = tail.split_at(1);
    let (code, tail) = tail.split_at(3);
    let (group, zone) = tail.split_at(2);
    let cid_digit = |b: &u8| b.is_ascii_digit() || (b'B'..=b'F').contains(b);
    let qualifier = match q {
        [c @ (b'E' | b'R' | b'P')] => char::from(*c),
        _ => return Err(PacketError::ContactId),
    };
    let text = |b| std::str::from_utf8(b).map_err(|_| PacketError::ContactId);
    if digits(account).is_none()
        || digits(code).is_none()
        || !group.iter().all(cid_digit)
        || !zone.iter().all(cid_digit)
    {
        return Err(PacketError::ContactId);
    }
    Ok(Packet::ContactId {
        receiver,
        line,
        long: width == 10,
        account: text(account)?,
        qualifier,
        code: text(code)?,
        group: text(group)?,
        zone: text(zone)?,
    })
}

fn sia(rest: &[u8]) -> Result<Packet<'_>, PacketError> {
    let open = rest
        .iter()
        .position(|&b| b == b'[')
        .ok_or(PacketError::Sia)?;
    let (head, tail) = rest.split_at(open);
    let (receiver, line) = receiver_line(head)?;
    let data = tail
        .strip_prefix(b"[")
        .and_then(|t| t.strip_suffix(b"]"))
        .ok_or(PacketError::Sia)?;
    if data.contains(&b'[') || data.contains(&b']') {
        return Err(PacketError::Sia);
    }
    if data.len() > MAX_SIA_DATA {
        return Err(PacketError::SiaTooLong);
    }
    Ok(Packet::Sia {
        receiver,
        line,
        data,
    })
}

/// Cuts a byte stream into packets at DC4 (several may arrive in one read). Remembers
/// where it stopped scanning; a run longer than [`MAX_PACKET`] is dropped up to the next
/// DC4 and counted.
#[derive(Debug, Default)]
pub struct Cutter {
    buf: Vec<u8>,
    scanned: usize,
    discarding: bool,
    /// Oversized runs dropped so far.
    pub dropped: u64,
}

impl Cutter {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet (DC4 included), if one is buffered.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        loop {
            let found = self.buf.get(self.scanned..)?.iter().position(|&b| b == DC4);
            let Some(at) = found.map(|i| i + self.scanned) else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_PACKET {
                    self.buf.clear();
                    self.scanned = 0;
                    if !self.discarding {
                        self.discarding = true;
                        self.dropped += 1;
                    }
                }
                return None;
            };
            let packet: Vec<u8> = self.buf.drain(..=at).collect();
            self.scanned = 0;
            if std::mem::take(&mut self.discarding) || packet.len() > MAX_PACKET {
                if packet.len() > MAX_PACKET {
                    self.dropped += 1;
                }
                continue;
            }
            return Some(packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form() {
        assert_eq!(
            parse_packet(b"1011           @    \x14"),
            Ok(Packet::Heartbeat {
                receiver: "01",
                line: "1"
            })
        );
        assert_eq!(
            parse_packet(b"101000           @    \x14"),
            Ok(Packet::Heartbeat {
                receiver: "01",
                line: "000"
            })
        );
        assert_eq!(
            parse_packet(b"501100 181234E12101001\x14"),
            Ok(Packet::ContactId {
                receiver: "01",
                line: "100",
                long: false,
                account: "1234",
                qualifier: 'E',
                code: "121",
                group: "01",
                zone: "001"
            })
        );
        assert!(matches!(
            parse_packet(b"Q011 580000100042R30100000\x14"),
            Ok(Packet::ContactId {
                long: true,
                account: "0000100042",
                ..
            })
        ));
        assert_eq!(
            parse_packet(b"S011[#1234|NBA01]\x14"),
            Ok(Packet::Sia {
                receiver: "01",
                line: "1",
                data: b"#1234|NBA01"
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_packet() {
        for bad in [
            &b"5011 181234E12101001"[..],
            b"5011 181234E1210100\x14",
            b"5011 181234X12101001\x14",
            b"501 181234E12101001\x14",
            b"5011 181234E121\x0101001\x14",
            b"S011[#1234|NBA01\x14",
            b"S011[#1234|[NBA01]\x14",
            b"1011          @    \x14",
            b"X\x14",
            b"\x14",
        ] {
            assert!(
                parse_packet(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("S011[{}]\x14", "x".repeat(67));
        assert_eq!(parse_packet(long.as_bytes()), Err(PacketError::SiaTooLong));
    }

    #[test]
    fn cutter_splits_runs_and_drops_oversize() {
        let mut c = Cutter::default();
        c.push(b"1011           @    \x145011 18");
        assert_eq!(c.next_packet().unwrap(), b"1011           @    \x14");
        assert_eq!(c.next_packet(), None);
        c.push(b"1234E12101001\x14");
        assert_eq!(c.next_packet().unwrap(), b"5011 181234E12101001\x14");
        c.push(&[b'x'; 300]);
        assert_eq!(c.next_packet(), None);
        c.push(b"yy\x14S011[#1|NBA]\x14");
        assert_eq!(c.next_packet().unwrap(), b"S011[#1|NBA]\x14");
        assert_eq!(c.dropped, 1);
    }
}
