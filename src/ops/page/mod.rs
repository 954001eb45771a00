//! The start-of-shift page (`/`) and the page of one site (`/site/ACCOUNT`), as HTML.
//!
//! Pure functions, data in and HTML out: [`overview`] takes the document the daemon builds
//! for it (`/status` plus the last hour minute by minute and the latest alarms, see
//! [`crate::ops::http::Probe::page`]); [`site`] takes the diagnosis of `/diag/ACCOUNT`.
//! Both read the JSON defensively: a missing field shows as a dash, a field they do not
//! know still shows ([`fields`]), and every list is cut so the page stays light (under
//! 100 KiB with a thousand sites in failure).
//!
//! Everything is in the binary: style, the refresh script and the charts (inline SVG drawn
//! here), so the page works on a network with no way out, with scripts off (a `<noscript>`
//! meta refresh), on a phone and on paper. The script only refreshes more smoothly and says
//! when the receiver stopped answering.

mod chart;
mod fields;
pub mod html;
mod overview;
mod site;

use std::fmt::Write;

use html::Esc;

pub use overview::overview;
pub use site::site;

const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("refresh.js");

/// How a page is wrapped.
#[derive(Debug, Clone)]
pub struct Chrome<'a> {
    /// The Content-Security-Policy nonce of this response's style and script.
    pub nonce: &'a str,
    /// Seconds between refreshes with the script; without it, a meta refresh every
    /// `3 × refresh_s` (a full reload is heavier).
    pub refresh_s: u32,
}

/// The whole document around `main` (the refreshed part); `refresh`: whether it refreshes
/// itself.
fn document(chrome: &Chrome<'_>, title: &str, main: &str, refresh: bool) -> String {
    let mut o = String::with_capacity(main.len() + CSS.len() + SCRIPT.len() + 1024);
    let nonce = Esc(chrome.nonce);
    o.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">",
    );
    if refresh {
        let _ = write!(
            o,
            "<noscript><meta http-equiv=\"refresh\" content=\"{}\"></noscript>",
            chrome.refresh_s.saturating_mul(3)
        );
    }
    let _ = write!(
        o,
        "<title>{}</title><style nonce=\"{nonce}\">{CSS}</style></head>\
         <body data-refresh=\"{}\"><div id=\"stale\" role=\"status\"></div>{main}",
        Esc(title),
        chrome.refresh_s,
    );
    if refresh {
        let _ = write!(o, "<script nonce=\"{nonce}\">{SCRIPT}</script>");
    }
    o.push_str("</body></html>");
    o
}

/// The page a browser gets without the token.
pub fn token_needed(chrome: &Chrome<'_>) -> String {
    let main = "<main><h1>tocsin: a token is needed</h1>\
        <p>This receiver's HTTP endpoints ask for its token (<code>[http] token_file</code>).</p>\
        <p>Open this address once with <code>?token=</code> and the token appended \
        (<code>https://…/?token=…</code>): the browser then keeps it in a cookie for 12 hours \
        and the address bar loses it. Tools send <code>Authorization: Bearer …</code>.</p></main>";
    document(chrome, "tocsin: token needed", main, false)
}

#[cfg(test)]
mod tests;
