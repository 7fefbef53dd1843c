//! Fuzzes what the platform (or whoever answers in its name) sends the
//! agent: the HTTP/1.1 framing of its responses, the simulator's reading of
//! requests, and the JSON answers the agent decodes. Properties: no panic;
//! a message read lies within the limits.
#![no_main]

use gateway_management_api::api::{CheckinResponse, ErrorBody, RegisterResponse};
use gateway_management_api::http::{read_request, read_response, MAX_BODY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for request in [false, true] {
        let mut input = data;
        let read = futures::executor::block_on(async {
            if request {
                read_request(&mut input).await
            } else {
                read_response(&mut input).await
            }
        });
        if let Ok(m) = read {
            assert!(m.body.len() <= MAX_BODY);
            let _ = serde_json::from_slice::<RegisterResponse>(&m.body);
            let _ = serde_json::from_slice::<CheckinResponse>(&m.body);
            let _ = serde_json::from_slice::<ErrorBody>(&m.body);
        }
    }
});
