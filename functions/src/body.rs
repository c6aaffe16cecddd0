//! Reading a request body with a size limit, answering oversize bodies with the API's own
//! error instead of a framework's: the whole body is read (and what passes the limit thrown
//! away) so the client sees the answer rather than a connection reset.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt as _;

/// Past this many bytes an oversize body is no longer drained: the connection is closed.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Why a body could not be taken.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It holds more than the limit: at least `size` bytes.
    TooLarge { size: usize },
    /// It broke off.
    Broken(String),
}

/// Reads `body`, keeping at most `limit` bytes.
pub(crate) async fn read_capped(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut kept = Vec::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size = size.saturating_add(data.len());
        if size <= limit {
            kept.extend_from_slice(&data);
        } else {
            kept = Vec::new();
            if size > DRAIN_LIMIT {
                break;
            }
        }
    }
    if size > limit {
        Err(BodyError::TooLarge { size })
    } else {
        Ok(Bytes::from(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_within_the_limit_are_kept_and_larger_ones_measured() {
        let ok = read_capped(Body::from("hello"), 5).await.unwrap();
        assert_eq!(ok, "hello");
        match read_capped(Body::from(vec![b'x'; 100]), 10).await {
            Err(BodyError::TooLarge { size }) => assert_eq!(size, 100),
            other => panic!("an oversize body was taken: {other:?}"),
        }
    }
}
