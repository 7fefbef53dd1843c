//! The cache policy, sans-IO: what a request may be answered from, what a
//! response may be stored as, how long it stays fresh, what a Range asks
//! for (RFC 9111, RFC 9110 section 14). Fed parsed header fields and the
//! time; no I/O, no clock.

use std::time::{Duration, SystemTime};

/// Header fields as the proxy's head parsers give them.
pub type Fields = [(String, Vec<u8>)];

/// A freshness lifetime guessed from `Last-Modified` is at most this
/// (RFC 9111 section 4.2.2 suggests 10 % of the age since modification).
pub const MAX_HEURISTIC: Duration = Duration::from_secs(86_400);

fn values<'a>(fields: &'a Fields, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

pub fn header<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

fn header_str<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    header(fields, name).and_then(|v| std::str::from_utf8(v).ok())
}

/// The `Cache-Control` directives, lowercase names with their values.
fn cache_control(fields: &Fields) -> Vec<(String, Option<String>)> {
    values(fields, "cache-control")
        .flat_map(|v| v.split(|&b| b == b','))
        .filter_map(|d| {
            let d = std::str::from_utf8(d).ok()?.trim();
            if d.is_empty() {
                return None;
            }
            Some(match d.split_once('=') {
                Some((n, v)) => (
                    n.trim().to_ascii_lowercase(),
                    Some(v.trim().trim_matches('"').to_owned()),
                ),
                None => (d.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

fn has_directive(fields: &Fields, name: &str) -> bool {
    cache_control(fields).iter().any(|(n, _)| n == name)
}

fn directive_secs(fields: &Fields, name: &str) -> Option<u64> {
    cache_control(fields)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v?.parse().ok())
}

/// The key of a stored object: method and normalised URL. Scheme and host
/// are lowercased, the default port dropped, the fragment never reaches us.
/// The path and the query get RFC 3986 section 6.2.2 normalisation
/// ([`normalise_target`]): one object for the spellings of one URL
/// (`/%7euser`, `/%7Euser`, `/~user`) rather than a copy per spelling.
/// HEAD shares GET's object (it is answered from its metadata).
pub fn cache_key(https: bool, host: &str, port: u16, path: &str) -> String {
    let default = if https { 443 } else { 80 };
    let scheme = if https { "https" } else { "http" };
    let host = host.to_ascii_lowercase();
    let path = normalise_target(path);
    if port == default {
        format!("GET {scheme}://{host}{path}")
    } else {
        format!("GET {scheme}://{host}:{port}{path}")
    }
}

/// RFC 3986 section 6.2.2 on a request target (path and query): percent
/// encodings' hex digits uppercased and those of unreserved characters
/// (ALPHA / DIGIT / `-` `.` `_` `~`) decoded (6.2.2.1, 6.2.2.2) in both;
/// a path is rooted (an empty one is `/`, and `x` is `/x`: the key puts the
/// target right after the host, where `.other.example/x` would name
/// another host); dot segments removed from the path only
/// (6.2.2.3: in a query `.` and `..` are data). The cache asks the origin
/// with this same target (serve.rs), so a key and what is stored under it
/// always come from one request.
pub fn normalise_target(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut path = normalise_percent(path);
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let mut out = remove_dot_segments(&path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&normalise_percent(q));
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent encodings normalised: `%7e` -> `~`, `%2f` -> `%2F`. A `%` not
/// followed by two hex digits is left as it is (not a valid encoding, so
/// there is nothing to normalise).
fn normalise_percent(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if let (b'%', Some(hi), Some(lo)) = (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            let v = (hi * 16 + lo) as u8;
            // A hex digit decoded after a lone `%` (and maybe one hex digit)
            // would make an encoding that the next pass decodes: `%%333`
            // would be `%33`, then `3`. It stays encoded.
            let n = out.len();
            let makes_encoding = v.is_ascii_hexdigit()
                && (out.last() == Some(&b'%')
                    || (n >= 2 && out[n - 2] == b'%' && out[n - 1].is_ascii_hexdigit()));
            if is_unreserved(v) && !makes_encoding {
                out.push(v);
            } else {
                out.push(b'%');
                out.extend_from_slice(format!("{v:02X}").as_bytes());
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Only ASCII sequences were replaced by ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// RFC 3986 section 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut out = String::with_capacity(path.len());
    let pop = |out: &mut String| out.truncate(out.rfind('/').unwrap_or(0));
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut out);
        } else if input == "/.." {
            input = "/";
            pop(&mut out);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |n| n + start);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

/// A key as logs show it: without the query (signed download URLs carry
/// their credentials there) and without the Vary values.
pub fn loggable(key: &str) -> &str {
    let end = key.find(['?', '\n']).unwrap_or(key.len());
    &key[..end]
}

/// What the cache does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// GET that may be answered from a shared object.
    Get,
    /// HEAD: answered from a stored object's metadata when there is one.
    Head,
    /// Relayed to the origin as the proxy does, never stored; the reason
    /// is for the access log.
    PassThrough(&'static str),
}

pub fn classify_request(method: &str, fields: &Fields) -> RequestClass {
    let shared = match method {
        "GET" => RequestClass::Get,
        "HEAD" => RequestClass::Head,
        _ => return RequestClass::PassThrough("method"),
    };
    // RFC 9111 section 3.5: a response to a request with Authorization is
    // not shared; cookies make responses personal in practice.
    if header(fields, "authorization").is_some() {
        return RequestClass::PassThrough("authorization");
    }
    if header(fields, "cookie").is_some() {
        return RequestClass::PassThrough("cookie");
    }
    if has_directive(fields, "no-store") {
        return RequestClass::PassThrough("no-store");
    }
    // A request body on GET has no defined meaning; do not guess.
    if header(fields, "content-length").is_some_and(|v| v != b"0")
        || header(fields, "transfer-encoding").is_some()
    {
        return RequestClass::PassThrough("body");
    }
    shared
}

/// Whether the client asks that a stored answer be confirmed by the
/// origin first (RFC 9111 section 5.2.1: `no-cache`, `max-age=0`; the old
/// `Pragma: no-cache`). The cache then revalidates, with its validators,
/// so the answer is a 304 when nothing changed.
pub fn wants_revalidation(fields: &Fields) -> bool {
    has_directive(fields, "no-cache")
        || directive_secs(fields, "max-age") == Some(0)
        || header(fields, "pragma").is_some_and(|v| v.eq_ignore_ascii_case(b"no-cache"))
}

/// Whether a stored response may be served when the origin could not be
/// asked to revalidate it (RFC 9111 section 4.2.4 and 5.2.2): never when it
/// carries `no-cache` (no use without a successful validation), and not
/// once it is stale when it carries `must-revalidate`, `proxy-revalidate`
/// (it addresses shared caches: this one) or `s-maxage` (which implies
/// `proxy-revalidate` for a shared cache, section 5.2.2.10). The caller
/// answers 504 instead.
pub fn may_serve_unvalidated(stored: &Fields, stale: bool) -> bool {
    if has_directive(stored, "no-cache") {
        return false;
    }
    !(stale
        && ["must-revalidate", "proxy-revalidate", "s-maxage"]
            .iter()
            .any(|d| has_directive(stored, d)))
}

/// Request fields that describe this client's view of the object, not the
/// object: left out of the request that fills the shared object.
pub const PER_CLIENT: [&str; 6] = [
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
];

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Status(u16),
    NoStore,
    Private,
    SetCookie,
    VaryStar,
    /// No `Content-Length`: the cache stores only objects whose end it knows
    /// in advance (a truncated transfer is then always detected).
    NoLength,
    TooLarge,
}

impl std::fmt::Display for NotStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStored::Status(s) => write!(f, "status {s}"),
            NotStored::NoStore => f.write_str("no-store"),
            NotStored::Private => f.write_str("private"),
            NotStored::SetCookie => f.write_str("set-cookie"),
            NotStored::VaryStar => f.write_str("vary *"),
            NotStored::NoLength => f.write_str("no content-length"),
            NotStored::TooLarge => f.write_str("too large"),
        }
    }
}

/// Whether a response to a shared GET may be stored: 200 with a known
/// length up to `max_len`, no `no-store`/`private`, no `Set-Cookie`, no
/// `Vary: *`. Other statuses (404 included) are passed on, not stored.
pub fn storable(
    status: u16,
    fields: &Fields,
    length: Option<u64>,
    max_len: u64,
) -> Result<u64, NotStored> {
    if status != 200 {
        return Err(NotStored::Status(status));
    }
    if has_directive(fields, "no-store") {
        return Err(NotStored::NoStore);
    }
    if has_directive(fields, "private") {
        return Err(NotStored::Private);
    }
    if header(fields, "set-cookie").is_some() {
        return Err(NotStored::SetCookie);
    }
    if vary_names(fields).is_none() {
        return Err(NotStored::VaryStar);
    }
    match length {
        None => Err(NotStored::NoLength),
        Some(n) if n > max_len => Err(NotStored::TooLarge),
        Some(n) => Ok(n),
    }
}

/// Whether a response that is not stored may still be shared with the
/// requests that waited for it: what any of them would have got from the
/// origin at that moment. Not when it is meant for one client (`private`,
/// `Set-Cookie`), must not be kept in any form (`no-store`), varies on
/// everything (`Vary: *`), or has no body to share (1xx, 204, 304; a 206
/// answers some range, not the shared request).
pub fn shareable(status: u16, fields: &Fields) -> bool {
    let no_body = status < 200 || matches!(status, 204 | 206 | 304);
    let one_client = has_directive(fields, "no-store")
        || has_directive(fields, "private")
        || header(fields, "set-cookie").is_some();
    !no_body && !one_client && vary_names(fields).is_some()
}

/// The request fields the response varies on, lowercase; `None` for
/// `Vary: *` (never matches a later request).
pub fn vary_names(fields: &Fields) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for v in values(fields, "vary") {
        for n in v.split(|&b| b == b',') {
            let n = String::from_utf8_lossy(n.trim_ascii()).to_ascii_lowercase();
            if n == "*" {
                return None;
            }
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names.sort();
    Some(names)
}

/// The part of the key a `Vary` adds: the request's values of those fields.
pub fn vary_key(names: &[String], request: &Fields) -> String {
    let mut out = String::new();
    for n in names {
        out.push('\n');
        out.push_str(n);
        out.push('=');
        let v: Vec<String> = values(request, n)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        out.push_str(&v.join(","));
    }
    out
}

pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc2822)
        .ok()?;
    Some(SystemTime::from(t))
}

pub fn format_http_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// How long a response received at `now` stays fresh (RFC 9111 section
/// 4.2.1): `no-cache` 0, `s-maxage`, `max-age`, `Expires` - `Date`, else
/// 10 % of the time since `Last-Modified` (at most a day), else 0: stored,
/// but revalidated (or fetched again) before each later use.
pub fn freshness(fields: &Fields, now: SystemTime) -> Duration {
    lifetime(fields, now).min(MAX_DELTA)
}

/// Delta-seconds above 2^31 are taken as 2^31 (RFC 9111 section 1.2.2): a
/// lifetime added to the clock never overflows it.
pub const MAX_DELTA: Duration = Duration::from_secs(1 << 31);

fn lifetime(fields: &Fields, now: SystemTime) -> Duration {
    if has_directive(fields, "no-cache") {
        return Duration::ZERO;
    }
    if let Some(s) =
        directive_secs(fields, "s-maxage").or_else(|| directive_secs(fields, "max-age"))
    {
        return Duration::from_secs(s);
    }
    let date = header_str(fields, "date")
        .and_then(parse_http_date)
        .unwrap_or(now);
    if let Some(expires) = header_str(fields, "expires") {
        return parse_http_date(expires)
            .and_then(|e| e.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
    }
    if let Some(lm) = header_str(fields, "last-modified").and_then(parse_http_date) {
        if let Ok(age) = date.duration_since(lm) {
            return (age / 10).min(MAX_HEURISTIC);
        }
    }
    Duration::ZERO
}

/// A single byte range resolved against a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable Range (absent, several ranges, another unit): the whole.
    Full,
    /// `start..=end`, both within the object.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Reads `Range: bytes=a-b | a- | -n` against an object of `len` bytes.
/// Several ranges are answered with the whole object (RFC 9110 section
/// 14.2 lets a server ignore Range).
pub fn range(fields: &Fields, len: u64) -> RangeAnswer {
    let Some(v) = header_str(fields, "range") else {
        return RangeAnswer::Full;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), num(a), num(b)) {
        (true, _, Some(0)) => RangeAnswer::Unsatisfiable,
        (true, _, Some(n)) if len == 0 => {
            let _ = n;
            RangeAnswer::Unsatisfiable
        }
        (true, _, Some(n)) => RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        },
        (false, Some(start), _) if start >= len => RangeAnswer::Unsatisfiable,
        (false, Some(start), None) if b.is_empty() => RangeAnswer::Partial {
            start,
            end: len - 1,
        },
        (false, Some(start), Some(end)) if end >= start => RangeAnswer::Partial {
            start,
            end: end.min(len - 1),
        },
        _ => RangeAnswer::Full,
    }
}

/// Whether a client's conditional request is answered 304 by a stored
/// object with these validators (RFC 9110 section 13.2.2: If-None-Match
/// first, If-Modified-Since only without it).
pub fn not_modified(request: &Fields, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    if let Some(inm) = header_str(request, "if-none-match") {
        let Some(etag) = etag else { return false };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return inm
            .split(',')
            .any(|t| t.trim() == "*" || weak(t) == weak(etag));
    }
    match (
        header_str(request, "if-modified-since").and_then(parse_http_date),
        last_modified.and_then(parse_http_date),
    ) {
        (Some(since), Some(lm)) => lm <= since,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(
            cache_key(true, "A.Example.COM", 443, "/x?y"),
            "GET https://a.example.com/x?y"
        );
        assert_eq!(cache_key(false, "h", 8080, ""), "GET http://h:8080/");
    }

    #[test]
    fn paths_and_queries_are_normalised() {
        let k = |t: &str| cache_key(true, "h", 443, t);
        // Unreserved characters decoded, whatever the hex digits' case.
        assert_eq!(k("/a/%7euser/x"), k("/a/~user/x"));
        assert_eq!(k("/a/%7Euser/x"), "GET https://h/a/~user/x");
        assert_eq!(k("/%41%7a%30%2D%2e%5F"), "GET https://h/Az0-._");
        // Reserved and other characters stay encoded, hex uppercased.
        assert_eq!(k("/a%2fb%3f%20c"), "GET https://h/a%2Fb%3F%20c");
        assert_ne!(k("/a%2Fb"), k("/a/b"));
        // A lone or broken % is left alone.
        assert_eq!(k("/100%"), "GET https://h/100%");
        assert_eq!(k("/%zz%4"), "GET https://h/%zz%4");
        // A digit decoded after a lone % would make a new encoding (found
        // by the target fuzz target): it stays encoded, so normalising is
        // idempotent.
        assert_eq!(k("/%%333"), "GET https://h/%%333");
        assert_eq!(k("/%4%31"), "GET https://h/%4%31");
        assert_eq!(k("/%%41"), "GET https://h/%%41");
        assert_eq!(k("/%%47"), "GET https://h/%G");
        // Empty path; an empty path with a query.
        assert_eq!(k(""), "GET https://h/");
        assert_eq!(k("?q=1"), "GET https://h/?q=1");
        // A path without its leading '/' gets one (found by the target fuzz
        // target: "@" and "." kept no '/', "." and "" then keyed apart).
        assert_eq!(k("@"), "GET https://h/@");
        assert_eq!(k(".other.example/x"), "GET https://h/.other.example/x");
        assert_eq!(k("."), k(""));
        assert_eq!(k("../x"), "GET https://h/x");
        assert_eq!(normalise_target("a/../b?q"), "/b?q");
        // Dot segments, also encoded ones, out of the path.
        assert_eq!(k("/a/./b/../c"), "GET https://h/a/c");
        assert_eq!(k("/a/%2E%2e/c"), "GET https://h/c");
        assert_eq!(k("/../../x"), "GET https://h/x");
        assert_eq!(k("/a/b/.."), "GET https://h/a/");
        assert_eq!(k("/a/."), "GET https://h/a/");
        assert_eq!(k("/a/.hidden/..x"), "GET https://h/a/.hidden/..x");
        // The query: percent encodings only, its dots are data.
        assert_eq!(k("/p?x=%7e%2f&y=/../z"), "GET https://h/p?x=~%2F&y=/../z");
        // Not UTF-8 after decoding? Never: only ASCII is decoded.
        assert_eq!(k("/caf\u{e9}%c3%a9"), "GET https://h/caf\u{e9}%C3%A9");
    }

    #[test]
    fn logged_keys_carry_no_query() {
        assert_eq!(
            loggable("GET https://h/a?sig=secret\naccept=x"),
            "GET https://h/a"
        );
        assert_eq!(loggable("GET https://h/a\naccept=x"), "GET https://h/a");
        assert_eq!(loggable("GET https://h/a"), "GET https://h/a");
    }

    #[test]
    fn requests_that_are_not_shared() {
        assert_eq!(classify_request("GET", &f(&[])), RequestClass::Get);
        assert_eq!(classify_request("HEAD", &f(&[])), RequestClass::Head);
        for (m, fields) in [
            ("POST", f(&[])),
            ("GET", f(&[("Authorization", "Basic x")])),
            ("GET", f(&[("Cookie", "a=b")])),
            ("GET", f(&[("Cache-Control", "no-store")])),
        ] {
            assert!(matches!(
                classify_request(m, &fields),
                RequestClass::PassThrough(_)
            ));
        }
    }

    #[test]
    fn what_may_be_served_when_the_origin_is_down() {
        for cc in [
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
            "Must-Revalidate",
        ] {
            let fields = f(&[("Cache-Control", cc)]);
            assert!(!may_serve_unvalidated(&fields, true), "{cc}");
            // Fresh (a client asked for the revalidation): still usable.
            assert!(may_serve_unvalidated(&fields, false), "{cc}");
        }
        let no_cache = f(&[("Cache-Control", "no-cache")]);
        assert!(!may_serve_unvalidated(&no_cache, true));
        assert!(!may_serve_unvalidated(&no_cache, false));
        for fields in [f(&[("Cache-Control", "max-age=60")]), f(&[])] {
            assert!(may_serve_unvalidated(&fields, true));
        }
    }

    #[test]
    fn clients_may_ask_for_revalidation() {
        assert!(wants_revalidation(&f(&[("Cache-Control", "no-cache")])));
        assert!(wants_revalidation(&f(&[("Cache-Control", "max-age=0")])));
        assert!(wants_revalidation(&f(&[("Pragma", "no-cache")])));
        assert!(!wants_revalidation(&f(&[("Cache-Control", "max-age=60")])));
        assert!(!wants_revalidation(&f(&[])));
    }

    #[test]
    fn what_may_be_shared_without_being_stored() {
        for status in [200, 301, 404, 410, 500, 503] {
            assert!(shareable(status, &f(&[])), "{status}");
        }
        for status in [100, 204, 206, 304] {
            assert!(!shareable(status, &f(&[])), "{status}");
        }
        for one_client in [
            ("Cache-Control", "private"),
            ("Cache-Control", "no-store"),
            ("Set-Cookie", "a=b"),
            ("Vary", "*"),
        ] {
            assert!(!shareable(404, &f(&[one_client])), "{one_client:?}");
            assert!(!shareable(200, &f(&[one_client])), "{one_client:?}");
        }
    }

    #[test]
    fn what_is_stored() {
        assert_eq!(storable(200, &f(&[]), Some(5), 10), Ok(5));
        assert_eq!(
            storable(404, &f(&[]), Some(5), 10),
            Err(NotStored::Status(404))
        );
        assert_eq!(
            storable(
                200,
                &f(&[("Cache-Control", "public, no-store")]),
                Some(5),
                10
            ),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            storable(200, &f(&[("Cache-Control", "private")]), Some(5), 10),
            Err(NotStored::Private)
        );
        assert_eq!(
            storable(200, &f(&[("Vary", "Accept, *")]), Some(5), 10),
            Err(NotStored::VaryStar)
        );
        assert_eq!(storable(200, &f(&[]), None, 10), Err(NotStored::NoLength));
        assert_eq!(
            storable(200, &f(&[]), Some(11), 10),
            Err(NotStored::TooLarge)
        );
    }

    #[test]
    fn freshness_rules() {
        let now = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(format_http_date(now), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            freshness(&f(&[("Cache-Control", "max-age=60")]), now),
            Duration::from_secs(60)
        );
        assert_eq!(
            freshness(&f(&[("Cache-Control", "max-age=60, no-cache")]), now),
            Duration::ZERO
        );
        assert_eq!(
            freshness(
                &f(&[
                    ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("Expires", "Sun, 06 Nov 1994 08:50:37 GMT")
                ]),
                now
            ),
            Duration::from_secs(60)
        );
        assert_eq!(
            freshness(
                &f(&[("Last-Modified", "Sun, 06 Nov 1994 08:39:37 GMT")]),
                now
            ),
            Duration::from_secs(60)
        );
        assert_eq!(freshness(&f(&[]), now), Duration::ZERO);
        let huge = f(&[("Cache-Control", "max-age=18446744073709551615")]);
        assert_eq!(freshness(&huge, now), MAX_DELTA);
        let _ = SystemTime::now() + freshness(&huge, now);
    }

    #[test]
    fn ranges() {
        let r = |v: &str, len| range(&f(&[("Range", v)]), len);
        assert_eq!(
            r("bytes=0-9", 100),
            RangeAnswer::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            r("bytes=90-", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            r("bytes=-10", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            r("bytes=-1000", 100),
            RangeAnswer::Partial { start: 0, end: 99 }
        );
        assert_eq!(
            r("bytes=50-1000", 100),
            RangeAnswer::Partial { start: 50, end: 99 }
        );
        assert_eq!(r("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6", 100), RangeAnswer::Full);
        assert_eq!(r("items=0-1", 100), RangeAnswer::Full);
        assert_eq!(r("bytes=9-1", 100), RangeAnswer::Full);
        assert_eq!(r("bytes=x-1", 100), RangeAnswer::Full);
        assert_eq!(range(&f(&[]), 100), RangeAnswer::Full);
    }

    #[test]
    fn conditionals_and_vary() {
        let req = f(&[("If-None-Match", "\"a\", \"b\"")]);
        assert!(not_modified(&req, Some("\"b\""), None));
        assert!(!not_modified(&req, Some("\"c\""), None));
        let req = f(&[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(not_modified(
            &req,
            None,
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        ));
        assert!(!not_modified(
            &req,
            None,
            Some("Sun, 06 Nov 1994 08:49:38 GMT")
        ));
        let names = vary_names(&f(&[("Vary", "Accept-Encoding, accept")])).unwrap();
        assert_eq!(names, vec!["accept", "accept-encoding"]);
        assert_eq!(
            vary_key(&names, &f(&[("Accept-Encoding", "gzip")])),
            "\naccept=\naccept-encoding=gzip"
        );
    }
}
