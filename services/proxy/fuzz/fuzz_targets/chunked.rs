//! Fuzzes the chunked-body decoder the proxy uses to find where a request's
//! or a response's body ends. Properties: no panic; feeding the input in
//! pieces of any size gives the same answer (consumed bytes, decoded data,
//! done or the same error) as feeding it whole; until the end is found all
//! input is consumed; the decoded data re-encoded as one chunk decodes to
//! itself.
#![no_main]

use gateway_http::body::{ChunkedDecoder, ChunkedError};
use libfuzzer_sys::fuzz_target;

type Run = Result<(usize, Vec<u8>, bool), ChunkedError>;

fn run(input: &[u8], step: usize) -> Run {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in input.chunks(step.max(1)) {
        let n = d.feed(piece, |s| out.extend_from_slice(s))?;
        assert!(n <= piece.len());
        consumed += n;
        if n < piece.len() {
            assert!(d.is_done());
            break;
        }
    }
    assert_eq!(d.data_len(), out.len() as u64);
    Ok((consumed, out, d.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, input.len());
    let split = run(input, usize::from(first % 16) + 1);
    assert_eq!(whole, split);
    if let Ok((consumed, decoded, done)) = whole {
        assert!(decoded.len() <= consumed);
        if !done {
            assert_eq!(consumed, input.len());
        } else {
            let again = [
                format!("{:x}\r\n", decoded.len()).as_bytes(),
                &decoded,
                b"\r\n0\r\n\r\n",
            ]
            .concat();
            let (n, back, done) = run(&again, again.len()).unwrap();
            // An empty body is the last chunk itself, then the end.
            assert!(done && back == decoded);
            assert!(n == again.len() || decoded.is_empty());
        }
    }
});
