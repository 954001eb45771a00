//! DC-09 encryption (`docs/protocol/dc09.md` §10): AES-128/192/256 in CBC mode with an
//! all-zero IV and the protocol's own pad instead of PKCS#7.
//!
//! The encrypted region is everything after the `[` that opens the data block up to the
//! end of the timestamp, sent as hex. Its plaintext is `pad | content`, where the pad is
//! bytes that are never `|`, `[` or `]` and make the whole a multiple of 16 bytes: 1–16 of
//! them in DC-09-2013, 16–31 in DC-09-2026 ([`PadRule`]). A sender with an empty data block
//! may leave out the `|` (the pad then runs up to the data block's `]`), so the pad ends at
//! the first `|` or `]`, whichever comes first.
//! Randomness for the pad is lent by the caller: this module never draws it.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};

use super::hex;

const BLOCK: usize = 16;
const ZERO_IV: [u8; BLOCK] = [0; BLOCK];
/// The largest pad a conforming sender writes; dc09_spt writes 17 on one edge, so reading
/// accepts any length.
pub const MAX_PAD: usize = 16;

/// An AES key. The variant is chosen by its length, as DC-09 prescribes. The round keys
/// are expanded once, when the key is configured: expanding them per frame cost more than
/// decrypting the frame (an AES-256 schedule, twice per frame with the encrypted ACK).
#[derive(Clone)]
pub struct Key {
    material: [u8; 32],
    len: u8,
    cipher: Cipher,
}

#[derive(Clone)]
enum Cipher {
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.material() == other.material()
    }
}

impl Eq for Key {}

/// Why a key could not be built from configuration text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is {len} bytes; AES needs 16, 24 or 32")]
    Length { len: usize },
    #[error("hex key has a non-hex character or an odd number of digits")]
    NotHex,
    #[error("ASCII key contains a non-ASCII character")]
    NotAscii,
}

/// How configuration text encodes a key. A 32-character key made of hex digits is both a
/// valid AES-128 hex key and a valid AES-256 ASCII key, so the encoding is never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    Hex,
    Ascii,
}

impl Key {
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, KeyError> {
        let cipher = if let Ok(k) = <[u8; 16]>::try_from(bytes) {
            Cipher::Aes128(Aes128::new(&k.into()))
        } else if let Ok(k) = <[u8; 24]>::try_from(bytes) {
            Cipher::Aes192(Aes192::new(&k.into()))
        } else if let Ok(k) = <[u8; 32]>::try_from(bytes) {
            Cipher::Aes256(Aes256::new(&k.into()))
        } else {
            return Err(KeyError::Length { len: bytes.len() });
        };
        let mut material = [0u8; 32];
        if let Some(slot) = material.get_mut(..bytes.len()) {
            slot.copy_from_slice(bytes);
        }
        Ok(Key {
            material,
            len: bytes.len() as u8,
            cipher,
        })
    }

    /// The key's bytes (16, 24 or 32).
    pub fn material(&self) -> &[u8] {
        self.material
            .get(..usize::from(self.len))
            .unwrap_or_default()
    }

    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let mut bytes = Vec::with_capacity(32);
        hex::decode_into(text.trim().as_bytes(), &mut bytes).ok_or(KeyError::NotHex)?;
        Key::from_bytes(&bytes)
    }

    pub fn from_ascii(text: &str) -> Result<Key, KeyError> {
        if !text.is_ascii() {
            return Err(KeyError::NotAscii);
        }
        Key::from_bytes(text.as_bytes())
    }

    pub fn parse(text: &str, encoding: KeyEncoding) -> Result<Key, KeyError> {
        match encoding {
            KeyEncoding::Hex => Key::from_hex(text),
            KeyEncoding::Ascii => Key::from_ascii(text),
        }
    }

    /// Key size in bits, for logs and status pages (never the key itself).
    pub fn bits(&self) -> u16 {
        u16::from(self.len) * 8
    }

    fn decrypt_blocks(&self, buf: &mut [u8]) -> Result<(), DecryptError> {
        let iv = &ZERO_IV.into();
        let res = match &self.cipher {
            Cipher::Aes128(c) => cbc::Decryptor::inner_iv_init(c.clone(), iv)
                .decrypt_padded::<NoPadding>(buf)
                .map(|_| ()),
            Cipher::Aes192(c) => cbc::Decryptor::inner_iv_init(c.clone(), iv)
                .decrypt_padded::<NoPadding>(buf)
                .map(|_| ()),
            Cipher::Aes256(c) => cbc::Decryptor::inner_iv_init(c.clone(), iv)
                .decrypt_padded::<NoPadding>(buf)
                .map(|_| ()),
        };
        res.map_err(|_| DecryptError::BlockLength { len: buf.len() })
    }

    fn encrypt_blocks(&self, buf: &mut [u8]) {
        let len = buf.len();
        // The caller always hands whole blocks, so NoPadding cannot fail; the result is
        // ignored rather than unwrapped to keep this path panic-free by construction.
        let iv = &ZERO_IV.into();
        let _ = match &self.cipher {
            Cipher::Aes128(c) => cbc::Encryptor::inner_iv_init(c.clone(), iv)
                .encrypt_padded::<NoPadding>(buf, len)
                .map(|_| ()),
            Cipher::Aes192(c) => cbc::Encryptor::inner_iv_init(c.clone(), iv)
                .encrypt_padded::<NoPadding>(buf, len)
                .map(|_| ()),
            Cipher::Aes256(c) => cbc::Encryptor::inner_iv_init(c.clone(), iv)
                .encrypt_padded::<NoPadding>(buf, len)
                .map(|_| ()),
        };
    }
}

/// Keys never appear in logs or debug output, only their size.
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(AES-{})", self.bits())
    }
}

/// Why an encrypted region could not be opened. All of these look the same to the panel
/// (a NAK): a wrong key produces garbage that fails one of these checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("ciphertext is not hex")]
    NotHex,
    #[error("ciphertext is {len} bytes, not a non-zero multiple of 16")]
    BlockLength { len: usize },
    #[error("no pad terminator `|` and no `]` in the plaintext (wrong key?)")]
    NoTerminator,
}

/// The opened plaintext, split at the pad terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// What follows the pad: `data]` `[x…]`… `_timestamp`.
    pub content: &'a [u8],
    pub pad_len: usize,
    /// False for senders (Hikvision `*NULL`) that end the pad at the data's `]` without a `|`.
    pub pad_terminator: bool,
}

/// Decrypts the hex ciphertext `cipher_hex` into `plain` (cleared first) and splits off the
/// pad.
pub fn open<'p>(
    key: &Key,
    cipher_hex: &[u8],
    plain: &'p mut Vec<u8>,
) -> Result<Opened<'p>, DecryptError> {
    plain.clear();
    hex::decode_into(cipher_hex, plain).ok_or(DecryptError::NotHex)?;
    if plain.is_empty() || !plain.len().is_multiple_of(BLOCK) {
        return Err(DecryptError::BlockLength { len: plain.len() });
    }
    key.decrypt_blocks(plain)?;
    let plain: &'p [u8] = plain;
    // Pad bytes are never `|` nor `]`: the pad ends at whichever comes first. A `|` later
    // in the content (inside an extended block after an empty data block) is not the end
    // of the pad.
    let end = plain
        .iter()
        .position(|&b| b == b'|' || b == b']')
        .ok_or(DecryptError::NoTerminator)?;
    if plain.get(end) == Some(&b'|') {
        return Ok(Opened {
            content: plain.get(end + 1..).unwrap_or_default(),
            pad_len: end,
            pad_terminator: true,
        });
    }
    Ok(Opened {
        content: plain.get(end..).unwrap_or_default(),
        pad_len: end,
        pad_terminator: false,
    })
}

/// How long a pad is written: the two editions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadRule {
    /// DC-09-2013: 1–16 bytes, the fewest that fill the last block.
    #[default]
    Dc2013,
    /// DC-09-2026: 16–31 bytes, a whole block more than the 2013 rule when that one gives
    /// fewer than 16.
    Dc2026,
}

/// The pad length a conforming sender uses for `content_len` bytes after the terminator:
/// the smallest making pad + `|` + content a multiple of 16, and 16 rather than 0.
pub fn pad_len(content_len: usize) -> usize {
    BLOCK - (content_len + 1) % BLOCK
}

/// The pad length under `rule` for `content_len` bytes after the terminator.
pub fn pad_len_for(rule: PadRule, content_len: usize) -> usize {
    let short = pad_len(content_len);
    match rule {
        PadRule::Dc2013 => short,
        PadRule::Dc2026 if short < BLOCK => short + BLOCK,
        PadRule::Dc2026 => short,
    }
}

/// Encrypts `pad | content` and appends it to `out` as upper-case hex. `random` supplies
/// the pad bytes; bytes the pad may not contain are remapped.
pub fn seal(key: &Key, content: &[u8], random: &[u8; MAX_PAD], out: &mut Vec<u8>) {
    seal_with(PadRule::Dc2013, key, content, random, out);
}

/// [`seal`] with the pad length of `rule`. A 2026 pad longer than `random` takes its
/// second block from the same bytes, rotated: only the first block has to be
/// unpredictable, since CBC chains every later block to it.
pub fn seal_with(
    rule: PadRule,
    key: &Key,
    content: &[u8],
    random: &[u8; MAX_PAD],
    out: &mut Vec<u8>,
) {
    let pad = pad_len_for(rule, content.len());
    let mut buf = Vec::with_capacity(pad + 1 + content.len());
    // Flipping the top bit moves a forbidden byte to a permitted one.
    let allowed = |&b: &u8| match b {
        b'|' | b'[' | b']' => b ^ 0x80,
        other => other,
    };
    buf.extend(random.iter().take(pad).map(allowed));
    if pad > MAX_PAD {
        buf.extend(random.iter().rev().take(pad - MAX_PAD).map(allowed));
    }
    buf.push(b'|');
    buf.extend_from_slice(content);
    key.encrypt_blocks(&mut buf);
    hex::encode_upper_into(&buf, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const W4: &[u8] = b"3D2C28BC2387FA69EAC04FD24643985F1C4769E0CBCF6A63001FC729DF6B20FFAAE3C1B0528C26A70F4230361354FA2F";

    #[test]
    fn opens_worked_example_w4() {
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        let mut plain = Vec::new();
        let opened = open(&key, W4, &mut plain).unwrap();
        assert_eq!(opened.content, b"#1234|Nri1/BA01]_12:00:10,01-15-2024");
        assert_eq!(opened.pad_len, 11);
        assert!(opened.pad_terminator);
    }

    #[test]
    fn lower_case_ciphertext_opens() {
        let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let lower = W4.to_ascii_lowercase();
        let mut plain = Vec::new();
        assert!(open(&key, &lower, &mut plain).is_ok());
    }

    #[test]
    fn wrong_key_fails() {
        let key = Key::from_hex("00000000000000000000000000000000").unwrap();
        let mut plain = Vec::new();
        // A wrong key may by chance produce a `|`; the frame layer then fails on the
        // content. Here it must at least not claim the right content.
        if let Ok(o) = open(&key, W4, &mut plain) {
            assert_ne!(o.content, b"#1234|Nri1/BA01]_12:00:10,01-15-2024");
        }
    }

    #[test]
    fn seal_then_open_every_key_size() {
        for len in [16, 24, 32] {
            let key = Key::from_bytes(&vec![7u8; len]).unwrap();
            for content_len in 0..40 {
                let content: Vec<u8> = (0..content_len).map(|i| b'a' + (i % 26) as u8).collect();
                let mut hex_out = Vec::new();
                seal(&key, &content, &[b'|'; 16], &mut hex_out);
                let mut plain = Vec::new();
                let o = open(&key, &hex_out, &mut plain).unwrap();
                assert_eq!(o.content, &content[..]);
                assert!((1..=16).contains(&o.pad_len));
            }
        }
    }

    #[test]
    fn pad_ends_at_the_first_bar_or_bracket() {
        let key = Key::from_bytes(&[9; 16]).unwrap();
        // An empty data block without `|`, then extended data holding a `|`.
        let mut plain = b"ppppppppppp][LHall|Door]_12:00:20,01-15-2024".to_vec();
        while !plain.len().is_multiple_of(16) {
            plain.insert(0, b'p');
        }
        let mut sealed = plain.clone();
        key.encrypt_blocks(&mut sealed);
        let mut hex_text = Vec::new();
        hex::encode_upper_into(&sealed, &mut hex_text);
        let mut out = Vec::new();
        let o = open(&key, &hex_text, &mut out).unwrap();
        assert_eq!(o.content, b"][LHall|Door]_12:00:20,01-15-2024");
        assert!(!o.pad_terminator);
        assert_eq!(o.pad_len, plain.len() - o.content.len());
    }

    #[test]
    fn pads_of_both_editions() {
        let key = Key::from_bytes(&[3; 24]).unwrap();
        for content_len in 0..64 {
            assert!((1..=16).contains(&pad_len_for(PadRule::Dc2013, content_len)));
            assert!((16..=31).contains(&pad_len_for(PadRule::Dc2026, content_len)));
            let content = vec![b'x'; content_len];
            for rule in [PadRule::Dc2013, PadRule::Dc2026] {
                let mut hex_out = Vec::new();
                seal_with(rule, &key, &content, &[b']'; 16], &mut hex_out);
                let mut plain = Vec::new();
                let o = open(&key, &hex_out, &mut plain).unwrap();
                assert_eq!(o.content, &content[..]);
                assert_eq!(o.pad_len, pad_len_for(rule, content_len));
            }
        }
    }

    #[test]
    fn keys() {
        assert_eq!(
            Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap(),
            Key::from_hex("41414141414141414141414141414141").unwrap()
        );
        assert_eq!(
            Key::from_hex("0011").unwrap_err(),
            KeyError::Length { len: 2 }
        );
        assert_eq!(Key::from_hex("001").unwrap_err(), KeyError::NotHex);
        assert_eq!(
            format!("{:?}", Key::from_bytes(&[1; 32]).unwrap()),
            "Key(AES-256)"
        );
        assert_eq!(pad_len(47), 16);
        assert_eq!(pad_len(36), 11);
    }
}
