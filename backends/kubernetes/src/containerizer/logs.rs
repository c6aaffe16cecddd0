//! The main container's log as a stream of chunks.

use bytes::Bytes;
use futures::{AsyncReadExt, StreamExt};
use hoist_core::{
    ContainerId, Error, ErrorKind, LogChunk, LogChunks, LogOptions, LogStream, Result,
};
use kube::api::LogParams;

use super::KubeContainerizer;
use crate::render::MAIN_CONTAINER;

impl KubeContainerizer {
    /// [`Containerizer::logs`]: the main container's log, followed if asked.
    pub(super) async fn log_chunks(
        &self,
        id: &ContainerId,
        options: LogOptions,
    ) -> Result<LogChunks> {
        let name = id.as_str();
        if self.local().created.contains_key(name) {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let params = LogParams {
            container: Some(MAIN_CONTAINER.into()),
            follow: options.follow,
            tail_lines: options.tail.map(|n| n as i64),
            ..LogParams::default()
        };
        let reader = self
            .request("logs", name, self.api.log_stream(name, &params))
            .await?;
        let name = name.to_owned();
        let chunks = futures::stream::unfold(Some(Box::pin(reader)), move |reader| {
            let name = name.clone();
            async move {
                let mut reader = reader?;
                let mut buf = vec![0u8; 16 * 1024];
                match reader.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        let chunk = LogChunk {
                            stream: LogStream::Stdout,
                            data: Bytes::from(buf),
                        };
                        Some((Ok(chunk), Some(reader)))
                    }
                    Err(e) => {
                        let err = Error::new(ErrorKind::Unavailable, "the log stream broke")
                            .with_operation("logs")
                            .with_context("container", &name)
                            .with_source(e);
                        Some((Err(err), None))
                    }
                }
            }
        });
        Ok(chunks.boxed())
    }
}
