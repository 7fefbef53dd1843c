//! Message framing for plain HTTP (RFC 9112 section 6): where a request's or
//! a response's body ends, so a persistent connection can carry the next
//! message and nothing of one message is taken for another.
//!
//! Sans-IO: the length rules read parsed header fields, and
//! [`ChunkedDecoder`] is fed bytes as they arrive and says how many belong to
//! the chunked body; it never reads, writes or sleeps. The proxy relays a
//! chunked body as it came (extensions and trailers included) and uses the
//! decoder only to find its end, so the decoder is strict: anything an origin
//! could read differently from us (bare LF, junk after the size, a folded
//! trailer) is refused rather than guessed at.

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all (a request without framing headers; HEAD, 1xx, 204 and
    /// 304 responses).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: ends with the last chunk and trailers.
    Chunked,
    /// A response without framing: the body ends when the origin closes, so
    /// the client connection cannot carry another response after it.
    UntilClose,
}

/// Why a message's framing is refused. Requests get the status of
/// [`FramingError::status`]; a response the proxy cannot frame is a 502.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("both Content-Length and Transfer-Encoding are present")]
    LengthAndTransferEncoding,
    #[error("invalid Content-Length {0:?}")]
    BadContentLength(String),
    #[error("transfer coding {0:?} is not supported (only chunked)")]
    UnsupportedTransferCoding(String),
    #[error("invalid Transfer-Encoding {0:?}")]
    BadTransferEncoding(String),
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
}

impl FramingError {
    /// The status a client gets for a request framed this way: 501 for a
    /// coding the proxy does not implement, 400 for the rest (RFC 9112
    /// section 6.3: ambiguous framing is how requests are smuggled).
    pub fn status(&self) -> u16 {
        match self {
            FramingError::UnsupportedTransferCoding(_) => 501,
            _ => 400,
        }
    }
}

/// Header fields as the head parsers give them.
type Fields = [(String, Vec<u8>)];

fn values<'a>(fields: &'a Fields, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The comma-separated elements of every field named `name`, trimmed, empty
/// elements dropped (RFC 9110 section 5.6.1).
fn list_elements<'a>(fields: &'a Fields, name: &'a str) -> Vec<&'a [u8]> {
    values(fields, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
        .collect()
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).chars().take(100).collect()
}

/// `Content-Length`: one or more fields, each a list of identical decimal
/// values (RFC 9110 section 8.6 lets a recipient accept `42, 42`).
fn content_length(fields: &Fields) -> Result<Option<u64>, FramingError> {
    let mut found: Option<u64> = None;
    let mut any = false;
    for raw in values(fields, "content-length") {
        any = true;
        for element in raw.split(|&b| b == b',') {
            let e = element.trim_ascii();
            // Digits only: no sign, no spaces inside, no hex; 19 digits
            // always fit in a u64, more may not.
            let n = (!e.is_empty() && e.len() <= 19 && e.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(e).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| FramingError::BadContentLength(text(raw)))?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::BadContentLength(text(raw)));
            }
            found = Some(n);
        }
    }
    if any && found.is_none() {
        return Err(FramingError::BadContentLength(String::new()));
    }
    Ok(found)
}

/// What `Transfer-Encoding` says: `Ok(true)` when chunked is the final (and
/// only) coding, `Ok(false)` when another coding is last, errors for an
/// empty list or chunked applied twice or not last.
fn transfer_encoding(fields: &Fields) -> Result<Option<bool>, FramingError> {
    if values(fields, "transfer-encoding").next().is_none() {
        return Ok(None);
    }
    let codings = list_elements(fields, "transfer-encoding");
    let all = || {
        codings
            .iter()
            .map(|c| text(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let is_chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    let Some(last) = codings.last() else {
        return Err(FramingError::BadTransferEncoding(String::new()));
    };
    let chunked_count = codings.iter().filter(|c| is_chunked(c)).count();
    match (is_chunked(last), chunked_count) {
        (true, 1) if codings.len() == 1 => Ok(Some(true)),
        // `gzip, chunked`: framed, but a coding the proxy would have to
        // undo (transfer codings are hop by hop).
        (true, 1) => Err(FramingError::UnsupportedTransferCoding(all())),
        (true, _) => Err(FramingError::BadTransferEncoding(all())),
        (false, 0) => Ok(Some(false)),
        (false, _) => Err(FramingError::BadTransferEncoding(all())),
    }
}

/// The body of a request (RFC 9112 section 6.3): chunked, a length, or
/// none. Refused: both headers, a bad length, a coding other than chunked,
/// `Transfer-Encoding` from an HTTP/1.0 client.
pub fn request_body(version: u8, fields: &Fields) -> Result<BodyKind, FramingError> {
    let te = transfer_encoding(fields);
    let has_te = values(fields, "transfer-encoding").next().is_some();
    let has_cl = values(fields, "content-length").next().is_some();
    if has_te && has_cl {
        return Err(FramingError::LengthAndTransferEncoding);
    }
    if has_te && version == 0 {
        return Err(FramingError::TransferEncodingInHttp10);
    }
    match te? {
        Some(true) => Ok(BodyKind::Chunked),
        Some(false) => Err(FramingError::UnsupportedTransferCoding(
            list_elements(fields, "transfer-encoding")
                .iter()
                .map(|c| text(c))
                .collect::<Vec<_>>()
                .join(", "),
        )),
        None => Ok(match content_length(fields)? {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::None,
        }),
    }
}

/// The body of a response to a request (`head_request`: the method was
/// HEAD), by RFC 9112 section 6.3. With both headers, `Transfer-Encoding`
/// wins (the caller drops `Content-Length` before relaying); a coding other
/// than chunked last means the body runs until the origin closes.
pub fn response_body(
    head_request: bool,
    status: u16,
    fields: &Fields,
) -> Result<BodyKind, FramingError> {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyKind::None);
    }
    match transfer_encoding(fields) {
        Ok(Some(true)) => return Ok(BodyKind::Chunked),
        Ok(Some(false)) | Err(FramingError::UnsupportedTransferCoding(_)) => {
            return Ok(BodyKind::UntilClose)
        }
        Err(e) => return Err(e),
        Ok(None) => {}
    }
    Ok(match content_length(fields)? {
        Some(n) => BodyKind::Length(n),
        None => BodyKind::UntilClose,
    })
}

/// The tokens of `Connection` (and the old `Proxy-Connection`), lowercase.
pub fn connection_tokens(fields: &Fields) -> Vec<String> {
    let mut tokens = list_elements(fields, "connection");
    tokens.extend(list_elements(fields, "proxy-connection"));
    tokens
        .iter()
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        .collect()
}

/// Whether the client asked for a persistent connection (RFC 9112 section
/// 9.3): HTTP/1.1 unless it said `close`; HTTP/1.0 only with `keep-alive`.
pub fn client_persistent(version: u8, fields: &Fields) -> bool {
    let tokens = connection_tokens(fields);
    if tokens.iter().any(|t| t == "close") {
        return false;
    }
    version >= 1 || tokens.iter().any(|t| t == "keep-alive")
}

/// Where the decoder is in the chunked body (RFC 9112 section 7.1):
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size; `digits` so far.
    Size { size: u64, digits: u32 },
    /// After the size: optional whitespace, then `;` extensions, to CR.
    Extension { size: u64, semicolon: bool },
    /// Saw the CR ending the size line.
    SizeLf { size: u64 },
    /// Inside chunk data; this many bytes left.
    Data { left: u64 },
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line; `colon`: the name has ended.
    Trailer { colon: bool },
    /// CR of a trailer line seen.
    TrailerLf,
    /// CR of the final empty line seen.
    EndLf,
    /// The whole body has been seen.
    Done,
    /// A framing error was found; every later feed fails the same way.
    Failed(ChunkedError),
}

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("chunk size is not a hexadecimal number")]
    BadSize,
    #[error("chunk size does not fit in 64 bits")]
    SizeOverflow,
    #[error("malformed chunk extension")]
    BadExtension,
    #[error("chunk size line longer than {MAX_SIZE_LINE} bytes")]
    SizeLineTooLong,
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("malformed trailer field")]
    BadTrailer,
    #[error("trailer section larger than {MAX_TRAILERS} bytes")]
    TrailersTooLarge,
}

/// A size line (size and extensions) longer than this is refused: nothing
/// legitimate needs it and it would let a peer stream bytes that never end
/// a chunk.
pub const MAX_SIZE_LINE: usize = 4096;
/// Trailer fields, all lines together.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Finds the end of a chunked body fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line, or of the trailer section.
    line: usize,
    /// Chunk data seen so far (the decoded length).
    data: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn field_byte(b: u8) -> bool {
    // VCHAR, SP, HTAB and obs-text: what a field value may hold.
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
            data: 0,
        }
    }

    /// True once the last chunk and the trailer section have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Chunk data seen so far (the body without its framing).
    pub fn data_len(&self) -> u64 {
        self.data
    }

    /// Takes `input`, the bytes that follow what was fed before. Returns how
    /// many of them belong to the chunked body: all of them until the end is
    /// found, then the count up to the end (what follows is the next
    /// message). `data` is called with every run of chunk data, for a
    /// caller that wants the decoded body. An error is final.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            let next = match self.state {
                State::Done => return Ok(i),
                State::Failed(e) => return Err(e),
                State::Data { left } => {
                    // The one state that takes many bytes at once.
                    let take = left.min((input.len() - i) as u64) as usize;
                    data(&input[i..i + take]);
                    self.data += take as u64;
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::Size { size, digits } => match hex(b) {
                    Some(d) => match size.checked_mul(16).and_then(|s| s.checked_add(d)) {
                        Some(size) => self.step_line(State::Size {
                            size,
                            digits: digits + 1,
                        }),
                        None => Err(ChunkedError::SizeOverflow),
                    },
                    None if digits == 0 => Err(ChunkedError::BadSize),
                    None => self.extension(size, false, b),
                },
                State::Extension { size, semicolon } => self.extension(size, semicolon, b),
                State::SizeLf { size } => match b {
                    b'\n' if size == 0 => {
                        self.line = 0;
                        Ok(State::TrailerStart)
                    }
                    b'\n' => Ok(State::Data { left: size }),
                    _ => Err(ChunkedError::BadExtension),
                },
                State::DataCr => match b {
                    b'\r' => Ok(State::DataLf),
                    _ => Err(ChunkedError::MissingCrlf),
                },
                State::DataLf => match b {
                    b'\n' => {
                        self.line = 0;
                        Ok(State::Size { size: 0, digits: 0 })
                    }
                    _ => Err(ChunkedError::MissingCrlf),
                },
                State::TrailerStart => match b {
                    b'\r' => Ok(State::EndLf),
                    // A line starting with whitespace would be obs-fold; a
                    // line starting with ':' has no name.
                    b' ' | b'\t' | b':' => Err(ChunkedError::BadTrailer),
                    _ if is_token(b) => self.step_trailer(State::Trailer { colon: false }),
                    _ => Err(ChunkedError::BadTrailer),
                },
                State::Trailer { colon } => match b {
                    b'\r' if colon => self.step_trailer(State::TrailerLf),
                    b':' if !colon => self.step_trailer(State::Trailer { colon: true }),
                    _ if colon && field_byte(b) => {
                        self.step_trailer(State::Trailer { colon: true })
                    }
                    _ if !colon && is_token(b) => {
                        self.step_trailer(State::Trailer { colon: false })
                    }
                    _ => Err(ChunkedError::BadTrailer),
                },
                State::TrailerLf => match b {
                    b'\n' => Ok(State::TrailerStart),
                    _ => Err(ChunkedError::BadTrailer),
                },
                State::EndLf => match b {
                    b'\n' => Ok(State::Done),
                    _ => Err(ChunkedError::BadTrailer),
                },
            };
            match next {
                Ok(s) => self.state = s,
                Err(e) => {
                    self.state = State::Failed(e);
                    return Err(e);
                }
            }
            i += 1;
        }
        match self.state {
            State::Failed(e) => Err(e),
            _ => Ok(i),
        }
    }

    /// One more byte of the size line, within its limit.
    fn step_line(&mut self, next: State) -> Result<State, ChunkedError> {
        self.line += 1;
        if self.line > MAX_SIZE_LINE {
            return Err(ChunkedError::SizeLineTooLong);
        }
        Ok(next)
    }

    /// One more byte of the trailer section, within its limit.
    fn step_trailer(&mut self, next: State) -> Result<State, ChunkedError> {
        self.line += 1;
        if self.line > MAX_TRAILERS {
            return Err(ChunkedError::TrailersTooLarge);
        }
        Ok(next)
    }

    /// A byte after the size digits: whitespace before `;`, then any field
    /// byte up to the CR (`chunk-ext`, RFC 9112 section 7.1.1).
    fn extension(&mut self, size: u64, semicolon: bool, b: u8) -> Result<State, ChunkedError> {
        match b {
            b'\r' => self.step_line(State::SizeLf { size }),
            b';' => self.step_line(State::Extension {
                size,
                semicolon: true,
            }),
            b' ' | b'\t' => self.step_line(State::Extension { size, semicolon }),
            _ if semicolon && field_byte(b) => self.step_line(State::Extension { size, semicolon }),
            // A non-hex character right after the digits (`1x`), or a byte
            // no field may hold.
            _ if !semicolon => Err(ChunkedError::BadSize),
            _ => Err(ChunkedError::BadExtension),
        }
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// `tchar` (RFC 9110 section 5.6.2): what a field name is made of.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Feeds `input` whole; (consumed, decoded data, done).
    fn decode(input: &[u8]) -> Result<(usize, Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.feed(input, |s| out.extend_from_slice(s))?;
        Ok((n, out, d.is_done()))
    }

    /// Feeds `input` one byte at a time: must agree with feeding it whole.
    fn decode_bytewise(input: &[u8]) -> Result<(usize, Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for (i, b) in input.iter().enumerate() {
            let n = d.feed(std::slice::from_ref(b), |s| out.extend_from_slice(s))?;
            consumed += n;
            if n == 0 {
                assert!(d.is_done(), "byte {i} refused before the end");
                break;
            }
        }
        Ok((consumed, out, d.is_done()))
    }

    #[test]
    fn a_body_with_extensions_and_trailers_ends_where_it_ends() {
        let body = b"5;name=value;q=\"x y\"\r\nhello\r\n6 ; ext\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other:\r\n\r\n";
        let next = b"GET http://a/ HTTP/1.1\r\n\r\n";
        let input = [&body[..], &next[..]].concat();
        let whole = decode(&input).unwrap();
        assert_eq!(whole, (body.len(), b"hello world".to_vec(), true));
        assert_eq!(decode_bytewise(&input).unwrap(), whole);
    }

    #[test]
    fn every_split_point_gives_the_same_answer() {
        let input =
            b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\nA;x\r\n0123456789\r\n00\r\nT: 1\r\n\r\nNEXT";
        let whole = decode(input).unwrap();
        assert_eq!(whole.0, input.len() - 4);
        assert!(whole.2);
        for cut in 0..=input.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = d.feed(&input[..cut], |s| out.extend_from_slice(s)).unwrap();
            let b = d.feed(&input[cut..], |s| out.extend_from_slice(s)).unwrap();
            assert_eq!((a + b, out, d.is_done()), whole, "cut at {cut}");
        }
    }

    #[test]
    fn incomplete_bodies_consume_everything_and_are_not_done() {
        for partial in [
            &b""[..],
            b"5",
            b"5\r",
            b"5\r\nhel",
            b"5\r\nhello\r",
            b"0\r\n",
            b"0\r\nX: y\r\n",
        ] {
            let (n, _, done) = decode(partial).unwrap();
            assert_eq!((n, done), (partial.len(), false), "{partial:?}");
        }
    }

    #[test]
    fn malformed_sizes_are_refused() {
        for (input, err) in [
            (&b"\r\n"[..], ChunkedError::BadSize),
            (b"x\r\n", ChunkedError::BadSize),
            (b"-1\r\n", ChunkedError::BadSize),
            (b" 5\r\n", ChunkedError::BadSize),
            (b"+5\r\n", ChunkedError::BadSize),
            (b"0x5\r\n", ChunkedError::BadSize),
            (b"5g\r\n", ChunkedError::BadSize),
            // Bare LF where CRLF is required: an origin might read it
            // differently, so it is not guessed at.
            (b"5\nhello\r\n", ChunkedError::BadSize),
            (b"5\r\rhello", ChunkedError::BadExtension),
            (b"5\r\nhelloX\r\n", ChunkedError::MissingCrlf),
            (b"5\r\nhello\rX", ChunkedError::MissingCrlf),
            (b"5\r\nhello\n", ChunkedError::MissingCrlf),
            (b"5;a\x00b\r\n", ChunkedError::BadExtension),
            (b"5;a\nb\r\n", ChunkedError::BadExtension),
            (b"5 6\r\n", ChunkedError::BadSize),
        ] {
            assert_eq!(decode(input), Err(err), "{input:?}");
            assert_eq!(decode_bytewise(input), Err(err), "{input:?} bytewise");
        }
    }

    #[test]
    fn huge_sizes_overflow_cleanly() {
        // 16 hex digits fit in 64 bits, 17 significant ones do not.
        let (n, _, done) = decode(b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!((n, done), (20, false));
        assert_eq!(
            decode(b"10000000000000000\r\n"),
            Err(ChunkedError::SizeOverflow)
        );
        assert_eq!(
            decode_bytewise(b"fffffffffffffffff"),
            Err(ChunkedError::SizeOverflow)
        );
        // Leading zeros are only digits, up to the line limit.
        let zeros = format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(100));
        assert!(decode(zeros.as_bytes()).unwrap().2);
        let endless = "0".repeat(MAX_SIZE_LINE + 1);
        assert_eq!(
            decode(endless.as_bytes()),
            Err(ChunkedError::SizeLineTooLong)
        );
        let long_ext = format!("5;{}\r\n", "e".repeat(MAX_SIZE_LINE));
        assert_eq!(
            decode(long_ext.as_bytes()),
            Err(ChunkedError::SizeLineTooLong)
        );
    }

    #[test]
    fn malformed_trailers_are_refused() {
        for input in [
            &b"0\r\n folded: x\r\n\r\n"[..],
            b"0\r\nno-colon\r\n\r\n",
            b"0\r\n: no name\r\n\r\n",
            b"0\r\nBad Name: x\r\n\r\n",
            b"0\r\nX: a\nb\r\n\r\n",
            b"0\r\nX: y\r\r\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(decode(input), Err(ChunkedError::BadTrailer), "{input:?}");
        }
        let big = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_TRAILERS));
        assert_eq!(decode(big.as_bytes()), Err(ChunkedError::TrailersTooLarge));
    }

    #[test]
    fn an_error_is_final_and_done_takes_nothing_more() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"z", |_| {}), Err(ChunkedError::BadSize));
        assert_eq!(d.feed(b"0\r\n\r\n", |_| {}), Err(ChunkedError::BadSize));
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"0\r\n\r\n", |_| {}), Ok(5));
        assert_eq!(d.feed(b"more", |_| {}), Ok(0));
        assert_eq!(d.data_len(), 0);
    }

    #[test]
    fn request_framing_and_smuggling_defences() {
        let req = |v: u8, list: &[(&str, &str)]| request_body(v, &fields(list));
        assert_eq!(req(1, &[]), Ok(BodyKind::None));
        assert_eq!(
            req(1, &[("Content-Length", "42")]),
            Ok(BodyKind::Length(42))
        );
        assert_eq!(
            req(1, &[("content-length", "7"), ("Content-Length", "7, 7")]),
            Ok(BodyKind::Length(7))
        );
        assert_eq!(
            req(1, &[("Transfer-Encoding", "Chunked")]),
            Ok(BodyKind::Chunked)
        );
        for bad in [
            "",
            "abc",
            "-1",
            "+1",
            "1 2",
            "0x10",
            "1, 2",
            "99999999999999999999",
        ] {
            let e = req(1, &[("Content-Length", bad)]).unwrap_err();
            assert!(matches!(e, FramingError::BadContentLength(_)), "{bad:?}");
            assert_eq!(e.status(), 400);
        }
        assert_eq!(
            req(1, &[("Content-Length", "1"), ("Content-Length", "2")]),
            Err(FramingError::BadContentLength("2".into()))
        );
        let both = req(
            1,
            &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
        )
        .unwrap_err();
        assert_eq!(
            (both.clone(), both.status()),
            (FramingError::LengthAndTransferEncoding, 400)
        );
        for (te, status) in [
            ("gzip", 501),
            ("gzip, chunked", 501),
            ("chunked, gzip", 400),
            ("chunked, chunked", 400),
            ("", 400),
            (" , ", 400),
        ] {
            let e = req(1, &[("Transfer-Encoding", te)]).unwrap_err();
            assert_eq!(e.status(), status, "{te:?}: {e}");
        }
        // The same, split over two fields.
        assert_eq!(
            req(
                1,
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked")
                ]
            )
            .unwrap_err()
            .status(),
            400
        );
        assert_eq!(
            req(0, &[("Transfer-Encoding", "chunked")]),
            Err(FramingError::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn response_length_rules() {
        let resp = |head: bool, status: u16, list: &[(&str, &str)]| {
            response_body(head, status, &fields(list))
        };
        let cl = [("Content-Length", "10")];
        assert_eq!(resp(false, 200, &cl), Ok(BodyKind::Length(10)));
        assert_eq!(resp(true, 200, &cl), Ok(BodyKind::None));
        for status in [100, 103, 204, 304] {
            assert_eq!(resp(false, status, &cl), Ok(BodyKind::None), "{status}");
        }
        assert_eq!(resp(false, 200, &[]), Ok(BodyKind::UntilClose));
        let chunked_and_length = [("Content-Length", "10"), ("Transfer-Encoding", "chunked")];
        assert_eq!(resp(false, 200, &chunked_and_length), Ok(BodyKind::Chunked));
        assert_eq!(
            resp(false, 200, &[("Transfer-Encoding", "gzip")]),
            Ok(BodyKind::UntilClose)
        );
        assert!(resp(false, 200, &[("Content-Length", "x")]).is_err());
        assert!(resp(false, 200, &[("Transfer-Encoding", "chunked, chunked")]).is_err());
    }

    #[test]
    fn persistence_follows_version_and_connection() {
        let p = |v: u8, list: &[(&str, &str)]| client_persistent(v, &fields(list));
        assert!(p(1, &[]));
        assert!(!p(1, &[("Connection", "close")]));
        assert!(!p(1, &[("Connection", "TE, Close")]));
        assert!(!p(1, &[("Proxy-Connection", "close")]));
        assert!(!p(0, &[]));
        assert!(p(0, &[("Connection", "Keep-Alive")]));
        assert!(p(0, &[("Proxy-Connection", "keep-alive")]));
    }
}
