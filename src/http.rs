//! The one HTTP operation the collector needs, behind a trait: the component
//! implements it over `wasi:http`, unit tests over a scripted fake.

/// An outgoing request. The body is sent with an explicit `content-length`.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A response, with its whole body read.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, lossily, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A transport failure: no response was received. The message says why
/// (refused by the host's allow-list, connection reset, timeout, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    pub message: String,
    /// Retrying cannot help: the host refused the destination, or its TLS
    /// certificate is not trusted. Only a change of configuration can.
    pub lasting: bool,
}

impl TransportError {
    /// A failure that may pass (a reset, a timeout).
    pub fn new(message: impl Into<String>) -> TransportError {
        TransportError {
            message: message.into(),
            lasting: false,
        }
    }

    /// A failure that only a change of configuration fixes.
    pub fn lasting(message: impl Into<String>) -> TransportError {
        TransportError {
            message: message.into(),
            lasting: true,
        }
    }

    /// The collector's error, with `context` in front of the message.
    pub fn into_error(self, context: impl std::fmt::Display) -> crate::error::Error {
        let message = format!("{context}: {}", self.message);
        if self.lasting {
            crate::error::Error::Fatal(message)
        } else {
            crate::error::Error::Transient(message)
        }
    }
}

/// Sends one request and reads the whole response.
pub trait HttpClient {
    fn send(&mut self, request: Request) -> Result<Response, TransportError>;
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
pub mod fake {
    //! A scripted client for unit tests: it answers each request with the
    //! next canned response and records what it was sent.
    use super::*;
    use std::collections::VecDeque;

    #[derive(Default)]
    pub struct Scripted {
        pub replies: VecDeque<Result<Response, TransportError>>,
        pub sent: Vec<Request>,
    }

    impl Scripted {
        pub fn reply(mut self, status: u16, body: &str) -> Self {
            self.replies.push_back(Ok(Response {
                status,
                headers: vec![],
                body: body.as_bytes().to_vec(),
            }));
            self
        }
        pub fn reply_with_header(mut self, status: u16, header: (&str, &str), body: &str) -> Self {
            self.replies.push_back(Ok(Response {
                status,
                headers: vec![(header.0.to_string(), header.1.to_string())],
                body: body.as_bytes().to_vec(),
            }));
            self
        }
    }

    impl HttpClient for Scripted {
        fn send(&mut self, request: Request) -> Result<Response, TransportError> {
            self.sent.push(request);
            self.replies
                .pop_front()
                .unwrap_or_else(|| Err(TransportError::new("no scripted reply left")))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(super::form_encode("a b&c=d/é~"), "a+b%26c%3Dd%2F%C3%A9~");
    }
}
