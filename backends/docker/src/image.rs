//! Pulling images.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use hoist_core::observe::{TaskEventKind, emit, listening};
use hoist_core::{Error, ErrorKind, Result};
use std::time::Duration;

use crate::engine_error::classify;

/// Splits an image reference into the name and tag the pull endpoint takes. A reference
/// without a tag pulls `latest` (never every tag); a digest reference is passed whole.
pub(crate) fn pull_parts(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_segment = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_segment..].rfind(':') {
        Some(i) => (&image[..last_segment + i], &image[last_segment + i + 1..]),
        None => (image, "latest"),
    }
}

/// Pulls `image`, for at most `timeout`.
pub(crate) async fn pull(docker: &Docker, image: &str, timeout: Duration) -> Result<()> {
    let (name, tag) = pull_parts(image);
    let mut options = CreateImageOptionsBuilder::new().from_image(name);
    if !tag.is_empty() {
        options = options.tag(tag);
    }
    let mut progress = docker.create_image(Some(options.build()), None, None);
    emit(
        TaskEventKind::ImagePullStarted,
        format!("pulling image {image}"),
        &[("image", image)],
    );
    let pulling = async {
        while let Some(item) = progress.next().await {
            let item = item?;
            if listening() {
                let layer = item.id.unwrap_or_default();
                let status = item.status.unwrap_or_default();
                let (current, total) = item
                    .progress_detail
                    .map(|p| (p.current.unwrap_or(0), p.total.unwrap_or(0)))
                    .unwrap_or((0, 0));
                let (current, total) = (current.to_string(), total.to_string());
                emit(
                    TaskEventKind::ImagePullProgress,
                    format!("{image}: {layer} {status}").trim_end().to_owned(),
                    &[
                        ("image", image),
                        ("layer", &layer),
                        ("status", &status),
                        ("current", &current),
                        ("total", &total),
                    ],
                );
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, pulling).await {
        Ok(Ok(())) => {
            emit(
                TaskEventKind::ImagePulled,
                format!("pulled image {image}"),
                &[("image", image)],
            );
            Ok(())
        }
        Ok(Err(e)) => {
            let (kind, message) = classify(&e);
            let lower = message.to_lowercase();
            // A registry that cannot be reached is the common case here; say so plainly.
            let kind = if lower.contains("dial tcp")
                || lower.contains("no such host")
                || lower.contains("connection refused")
                || lower.contains("i/o timeout")
                || lower.contains("network is unreachable")
            {
                ErrorKind::Unavailable
            } else if lower.contains("not found")
                || lower.contains("manifest unknown")
                || lower.contains("pull access denied")
            {
                ErrorKind::NotFound
            } else {
                kind
            };
            Err(
                Error::new(kind, format!("could not pull image `{image}`: {message}"))
                    .with_operation("pull")
                    .with_context("image", image),
            )
        }
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("pulling image `{image}` took longer than {timeout:?}"),
        )
        .with_operation("pull")
        .with_context("image", image)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        assert_eq!(pull_parts("busybox"), ("busybox", "latest"));
        assert_eq!(pull_parts("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(
            pull_parts("registry.local:5000/team/app"),
            ("registry.local:5000/team/app", "latest")
        );
        assert_eq!(
            pull_parts("registry.local:5000/team/app:v2"),
            ("registry.local:5000/team/app", "v2")
        );
        assert_eq!(pull_parts("app@sha256:abcd"), ("app@sha256:abcd", ""));
    }
}
