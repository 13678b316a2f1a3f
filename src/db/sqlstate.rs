//! The SQLSTATE of a failed statement, read off the wire.
//!
//! diesel-async (0.9) turns a server error into diesel's error with the
//! message kept and the SQLSTATE dropped (only a few codes survive as
//! `DatabaseErrorKind`), and the message is translated by the server's
//! `lc_messages`: neither can say reliably that the database went away or a
//! statement timed out. So each connection's stream is read through
//! [`Observed`], which follows the backend's message framing and keeps the
//! code of the first `ErrorResponse` since the connection was last handed
//! out ([`ErrorCode`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{Header, Message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, TlsStream};

/// What a SQLSTATE says about the failure, for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The database went away or refused the session: connection
    /// exceptions (08), operator intervention (57P01 admin shutdown, 57P02
    /// crash shutdown, 57P03 cannot connect now), too many connections
    /// (53300). A retry on another connection mends it.
    Unavailable,
    /// A statement was cancelled (57014), by `statement_timeout` or an
    /// operator's `pg_cancel_backend`.
    Cancelled,
    /// The transaction lost a race (40001 serialization failure, 40P01
    /// deadlock) and was rolled back; the same call again may succeed.
    Conflict,
    /// Anything else: a bug or a constraint the caller's code handles.
    Other,
}

pub(crate) fn classify(code: &SqlState) -> Class {
    match code.code().as_bytes() {
        [b'0', b'8', ..] => Class::Unavailable,
        b"57P01" | b"57P02" | b"57P03" | b"53300" => Class::Unavailable,
        b"57014" => Class::Cancelled,
        b"40001" | b"40P01" => Class::Conflict,
        _ => Class::Other,
    }
}

/// The first error code the server sent on one connection since it was
/// last taken: shared by the connection's stream (which writes it) and
/// the connection's holder (which takes it).
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrorCode(Arc<AtomicU64>);

impl ErrorCode {
    /// The code recorded since the last take, if any; clears it.
    pub(crate) fn take(&self) -> Option<SqlState> {
        let packed = self.0.swap(0, Ordering::AcqRel);
        (packed != 0).then(|| {
            let bytes = packed.to_be_bytes();
            SqlState::from_code(std::str::from_utf8(&bytes[3..]).unwrap_or("XX000"))
        })
    }

    /// Keeps `code` unless an earlier one is kept: the first error of a
    /// transaction is its cause, the rest (25P02 "transaction is aborted")
    /// follow from it.
    fn record(&self, code: &[u8]) {
        let Ok(code) = <[u8; 5]>::try_from(code) else {
            return;
        };
        let mut bytes = [0u8; 8];
        bytes[3..].copy_from_slice(&code);
        let packed = u64::from_be_bytes(bytes);
        let _ = self
            .0
            .compare_exchange(0, packed, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Follows the backend's message stream (a tag byte and a length, then the
/// body) and hands every `ErrorResponse`'s code to [`ErrorCode`]. Other
/// messages are skipped without being copied.
#[derive(Debug, Default)]
struct Framer {
    /// The message being read, while it is a header or an error.
    pending: BytesMut,
    /// Bytes of a skipped message's body still to come.
    skip: usize,
}

const HEADER_LEN: usize = 5;

impl Framer {
    fn feed(&mut self, mut bytes: &[u8], codes: &ErrorCode) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let wanted = match Header::parse(&self.pending) {
                Ok(Some(header)) if header.tag() == b'E' => header.len() as usize + 1,
                Ok(Some(header)) => {
                    // Not an error: skip its body.
                    self.skip = (header.len() as usize + 1).saturating_sub(HEADER_LEN);
                    self.pending.clear();
                    continue;
                }
                Ok(None) => HEADER_LEN,
                Err(_) => {
                    // Not a frame we understand: stop looking rather than
                    // guess (the driver will report the broken stream).
                    self.skip = usize::MAX;
                    self.pending.clear();
                    continue;
                }
            };
            let n = (wanted - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() == wanted && wanted > HEADER_LEN {
                if let Ok(Some(Message::ErrorResponse(body))) = Message::parse(&mut self.pending) {
                    let mut fields = body.fields();
                    while let Ok(Some(field)) = fields.next() {
                        if field.type_() == b'C' {
                            codes.record(field.value_bytes());
                        }
                    }
                }
                self.pending.clear();
            }
        }
    }
}

/// A connection's stream, read through a [`Framer`]; its flushes of
/// written messages are counted as round trips ([`super::round_trips`]).
#[derive(Debug)]
pub(crate) struct Observed<S> {
    inner: S,
    framer: Framer,
    codes: ErrorCode,
    /// Bytes were written since the last flush.
    written: bool,
}

impl<S> Observed<S> {
    pub(crate) fn new(inner: S, codes: ErrorCode) -> Self {
        Self {
            inner,
            framer: Framer::default(),
            codes,
            written: false,
        }
    }

    fn wrote(&mut self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled {
            self.written |= n > 0;
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Observed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.framer.feed(&buf.filled()[before..], &this.codes);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Observed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled
            && std::mem::take(&mut this.written)
        {
            super::round_trips::sent();
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: TlsStream + Unpin> TlsStream for Observed<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend message: tag, length (itself included), body.
    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// An `ErrorResponse` as PostgreSQL sends it, message in German.
    fn error(code: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (field, value) in [
            (b'S', "FEHLER"),
            (b'V', "ERROR"),
            (b'C', code),
            (b'M', "storniere Anfrage wegen Zeitüberschreitung"),
        ] {
            body.push(field);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        message(b'E', &body)
    }

    fn stream() -> Vec<u8> {
        let mut bytes = message(b'1', b""); // ParseComplete
        bytes.extend(message(b'D', &[0, 1, 0, 0, 0, 1, b'x'])); // DataRow
        bytes.extend(error("57014"));
        bytes.extend(error("25P02"));
        bytes.extend(message(b'Z', b"E")); // ReadyForQuery, failed transaction
        bytes
    }

    #[test]
    fn the_first_error_code_is_kept_whatever_the_message_language() {
        let codes = ErrorCode::default();
        Framer::default().feed(&stream(), &codes);
        assert_eq!(codes.take(), Some(SqlState::QUERY_CANCELED));
        assert_eq!(codes.take(), None, "taking clears it");
    }

    #[test]
    fn messages_split_at_every_byte_are_followed() {
        let codes = ErrorCode::default();
        let mut framer = Framer::default();
        for byte in stream() {
            framer.feed(&[byte], &codes);
        }
        assert_eq!(codes.take(), Some(SqlState::QUERY_CANCELED));
        framer.feed(&error("40P01"), &codes);
        assert_eq!(codes.take(), Some(SqlState::T_R_DEADLOCK_DETECTED));
    }

    #[test]
    fn a_stream_without_errors_records_nothing() {
        let codes = ErrorCode::default();
        let mut bytes = message(b'C', b"SELECT 1\0");
        bytes.extend(message(b'Z', b"I"));
        Framer::default().feed(&bytes, &codes);
        assert_eq!(codes.take(), None);
    }

    #[test]
    fn codes_are_classified_by_class_and_code() {
        let class = |code: &str| classify(&SqlState::from_code(code));
        for unavailable in [
            "08000", "08006", "08P01", "57P01", "57P02", "57P03", "53300",
        ] {
            assert_eq!(class(unavailable), Class::Unavailable, "{unavailable}");
        }
        assert_eq!(class("57014"), Class::Cancelled);
        assert_eq!(class("40001"), Class::Conflict);
        assert_eq!(class("40P01"), Class::Conflict);
        for other in ["23505", "42501", "XX000", "25P02", "53200"] {
            assert_eq!(class(other), Class::Other, "{other}");
        }
    }
}
