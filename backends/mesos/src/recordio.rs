//! RecordIO framing: `<decimal length>\n<payload>`, repeated.
//!
//! The agent streams events this way. Chunk boundaries mean nothing (a proxy may split or join
//! records anywhere), so [`RecordDecoder`] buffers across chunks and hands out whole records.
//! It caps the record size before buffering the payload, and a length header that is not a
//! positive decimal number is an error naming the bytes it saw.

use bytes::{Buf, Bytes, BytesMut};

/// The default cap on one record: 16 MiB, far above any event the agent sends.
pub const DEFAULT_MAX_RECORD: usize = 16 << 20;

/// The longest length header accepted: a `u64` has at most 20 decimal digits.
const MAX_HEADER_DIGITS: usize = 20;

/// A framing error. The stream cannot be resynchronised after one: the connection must be
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordIoError {
    /// The length header holds something other than decimal digits, or is too long.
    #[error("malformed RecordIO length header {header:?}: expected decimal digits and a newline")]
    MalformedLength {
        /// What the header held (lossily decoded, at most 32 bytes).
        header: String,
    },
    /// The length header is `0`, which RecordIO does not allow.
    #[error("RecordIO record of length 0: lengths must be positive")]
    ZeroLength,
    /// The record is longer than the decoder's cap.
    #[error("RecordIO record of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The stream ended inside a record.
    #[error("the stream ended inside a RecordIO record ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes left in the buffer.
        buffered: usize,
    },
}

impl From<RecordIoError> for hoist_core::Error {
    fn from(err: RecordIoError) -> Self {
        hoist_core::Error::new(hoist_core::ErrorKind::InvalidInput, err.to_string())
            .with_operation("decode RecordIO")
    }
}

/// An incremental RecordIO decoder.
///
/// ```
/// use hoist_mesos::recordio::{RecordDecoder, encode};
///
/// let mut wire = encode(b"{\"type\":\"HEARTBEAT\"}").to_vec();
/// wire.extend_from_slice(&encode(b"{}"));
/// let mut decoder = RecordDecoder::new(1024);
/// let mut records = vec![];
/// for byte in wire.chunks(3) {
///     decoder.push(byte);
///     while let Some(record) = decoder.next_record().unwrap() {
///         records.push(record);
///     }
/// }
/// assert_eq!(records, [&b"{\"type\":\"HEARTBEAT\"}"[..], &b"{}"[..]]);
/// decoder.finish().unwrap();
/// ```
#[derive(Debug)]
pub struct RecordDecoder {
    buf: BytesMut,
    max_record: usize,
    /// The length of the record being read, once its header is complete.
    pending: Option<usize>,
}

impl Default for RecordDecoder {
    fn default() -> Self {
        RecordDecoder::new(DEFAULT_MAX_RECORD)
    }
}

impl RecordDecoder {
    /// A decoder refusing records longer than `max_record` bytes.
    pub fn new(max_record: usize) -> Self {
        RecordDecoder {
            buf: BytesMut::new(),
            max_record,
            pending: None,
        }
    }

    /// Appends a chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole record, `None` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        let len = match self.pending {
            Some(len) => len,
            None => match self.header()? {
                Some(len) => len,
                None => return Ok(None),
            },
        };
        if self.buf.len() < len {
            self.pending = Some(len);
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Parses a complete header off the buffer.
    fn header(&mut self) -> Result<Option<usize>, RecordIoError> {
        let scan = self.buf.len().min(MAX_HEADER_DIGITS + 1);
        let Some(newline) = self.buf[..scan].iter().position(|&b| b == b'\n') else {
            if let Some(bad) = self.buf[..scan].iter().position(|b| !b.is_ascii_digit()) {
                return Err(self.malformed(bad + 1));
            }
            if scan > MAX_HEADER_DIGITS {
                return Err(self.malformed(scan));
            }
            return Ok(None);
        };
        let digits = &self.buf[..newline];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(self.malformed(newline));
        }
        let len = digits
            .iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or_else(|| self.malformed(newline))?;
        if len == 0 {
            return Err(RecordIoError::ZeroLength);
        }
        if len > self.max_record as u64 {
            return Err(RecordIoError::TooLarge {
                len,
                max: self.max_record,
            });
        }
        self.buf.advance(newline + 1);
        Ok(Some(len as usize))
    }

    fn malformed(&self, upto: usize) -> RecordIoError {
        let shown = &self.buf[..upto.min(32)];
        RecordIoError::MalformedLength {
            header: String::from_utf8_lossy(shown).into_owned(),
        }
    }

    /// Checks that the stream ended between records.
    pub fn finish(&self) -> Result<(), RecordIoError> {
        if self.buf.is_empty() && self.pending.is_none() {
            Ok(())
        } else {
            Err(RecordIoError::Truncated {
                buffered: self.buf.len(),
            })
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Frames one record.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    encode_into(payload, &mut out);
    out.freeze()
}

/// Appends one framed record to `out`.
pub fn encode_into(payload: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.extend_from_slice(b"\n");
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        decoder: &mut RecordDecoder,
        wire: &[u8],
        chunk: usize,
    ) -> Result<Vec<Bytes>, RecordIoError> {
        let mut out = vec![];
        for piece in wire.chunks(chunk.max(1)) {
            decoder.push(piece);
            while let Some(r) = decoder.next_record()? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn records_split_at_every_byte_and_joined() {
        let payloads: Vec<Vec<u8>> =
            vec![b"a".to_vec(), vec![b'x'; 300], b"{\"k\":\"\n\"}".to_vec()];
        let mut wire = BytesMut::new();
        for p in &payloads {
            encode_into(p, &mut wire);
        }
        for chunk in 1..=wire.len() {
            let mut d = RecordDecoder::new(1024);
            let got = decode_all(&mut d, &wire, chunk).unwrap();
            assert_eq!(got, payloads, "chunk size {chunk}");
            d.finish().unwrap();
        }
    }

    #[test]
    fn oversized_record_is_refused_before_its_payload_arrives() {
        let mut d = RecordDecoder::new(10);
        d.push(b"11\n");
        assert_eq!(
            d.next_record(),
            Err(RecordIoError::TooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn malformed_lengths_are_named() {
        for bad in [
            &b"abc\n{}"[..],
            b"-1\n",
            b"\n",
            b"1 2\n",
            b"99999999999999999999999\n",
            b"1.5\n",
        ] {
            let mut d = RecordDecoder::new(1 << 20);
            d.push(bad);
            let err = d.next_record().unwrap_err();
            assert!(
                matches!(err, RecordIoError::MalformedLength { .. }),
                "{bad:?}: {err}"
            );
        }
        let mut d = RecordDecoder::new(10);
        d.push(b"x");
        let err = d.next_record().unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed RecordIO length header \"x\": expected decimal digits and a newline"
        );
        let mut d = RecordDecoder::new(10);
        d.push(b"0\n");
        assert_eq!(d.next_record(), Err(RecordIoError::ZeroLength));
    }

    #[test]
    fn a_length_past_u64_is_malformed_not_wrapped() {
        let mut d = RecordDecoder::new(usize::MAX);
        d.push(b"99999999999999999999\n");
        assert!(matches!(
            d.next_record(),
            Err(RecordIoError::MalformedLength { .. })
        ));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut d = RecordDecoder::new(100);
        d.push(b"5\nab");
        assert_eq!(d.next_record(), Ok(None));
        assert_eq!(d.finish(), Err(RecordIoError::Truncated { buffered: 2 }));
    }
}
