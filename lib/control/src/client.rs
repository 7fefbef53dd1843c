//! A blocking client of the control API, for `gatewayctl` and the console:
//! both make one request at a time and wait for the answer.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::protocol::{ApiError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the control socket {path}: {source} (is this the appliance, and are you root?)")]
    Connect { path: PathBuf, source: io::Error },
    #[error("control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("control socket {path} answered something that is not a response: {detail}")]
    Protocol { path: PathBuf, detail: String },
    /// The appliance refused the request; the message says why.
    #[error("{0}")]
    Refused(ApiError),
}

pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects; every request then waits at most `timeout` for its answer
    /// (a ping of many packets takes a while: size it for the request).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let io_err = |source| ClientError::Io {
            path: path.to_owned(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        Ok(Client {
            path: path.to_owned(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends `request`; the result on success, [`ClientError::Refused`] with
    /// the appliance's reason otherwise.
    pub fn call(&mut self, request: &Request) -> Result<serde_json::Value, ClientError> {
        let io_err = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(request).expect("a Request always serialises");
        line.push(b'\n');
        self.writer.write_all(&line).map_err(io_err)?;
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Protocol {
                path: self.path.clone(),
                detail: "connection closed".into(),
            });
        }
        let response: Response =
            serde_json::from_str(&answer).map_err(|e| ClientError::Protocol {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        match (response.ok, response.error) {
            (true, _) => Ok(response.result.unwrap_or(serde_json::Value::Null)),
            (false, Some(e)) => Err(ClientError::Refused(e)),
            (false, None) => Err(ClientError::Refused(ApiError::new(
                "refused without a reason",
            ))),
        }
    }

    /// [`Client::call`], decoding the result as `T`.
    pub fn call_as<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        let value = self.call(request)?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }
}
