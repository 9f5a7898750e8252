//! The async facade: `stream_to_pipeline(&[paths], |batch| async
//! move { .. }).await`. The file-system work stays on the walker's OS
//! threads (tokio's file API is a thread pool of blocking calls and far
//! slower for this); a bridge thread carries batches into a small tokio
//! channel, so an async consumer gets backpressure like a sync one.

use std::future::Future;
use std::path::Path;

use super::{StreamingWalker, WalkError, WalkEvent, WalkStats};
use crate::entry::FileEntry;

/// Why [`StreamingWalker::stream_to_pipeline`] stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError<E> {
    /// The walk could not start.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// The consumer returned an error; the walk was stopped.
    #[error("pipeline stopped the walk: {0}")]
    Pipeline(E),
}

/// Batches waiting between the bridge thread and the async consumer. Two is
/// enough to overlap; the walker's own channel holds the rest.
const ASYNC_QUEUE: usize = 2;

impl StreamingWalker {
    /// Walks `roots` and awaits `process` on every batch as it is found.
    /// Per-entry errors go to the progress tracker and the statistics; the
    /// first error returned by `process` stops the walk.
    pub async fn stream_to_pipeline<P, F, Fut, E>(
        &self,
        roots: &[P],
        mut process: F,
    ) -> Result<WalkStats, StreamError<E>>
    where
        P: AsRef<Path>,
        F: FnMut(Vec<FileEntry>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let walk = self.walk(roots)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<FileEntry>>(ASYNC_QUEUE);
        let (stats_tx, stats_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("dedupe-bridge".into())
            .spawn(move || {
                let mut walk = walk;
                for event in walk.by_ref() {
                    if let WalkEvent::Batch(b) = event {
                        if tx.blocking_send(b).is_err() {
                            break; // the consumer stopped; dropping `walk` stops the scanners
                        }
                    }
                }
                let stats = walk.stats();
                drop(walk);
                let _ = stats_tx.send(stats);
            })
            .map_err(WalkError::Thread)?;
        while let Some(batch) = rx.recv().await {
            if let Err(e) = process(batch).await {
                return Err(StreamError::Pipeline(e));
            }
        }
        Ok(stats_rx.await.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{Config, NoProgress, StreamingWalker};

    #[tokio::test(flavor = "current_thread")]
    async fn batches_reach_an_async_consumer() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..120 {
            std::fs::write(dir.path().join(format!("f{i}")), [u8::try_from(i).unwrap()]).unwrap();
        }
        let walker = StreamingWalker::new(Arc::new(Config::default()), Arc::new(NoProgress), None);
        let mut seen = 0;
        let stats = walker
            .stream_to_pipeline(&[dir.path()], |batch| {
                seen += batch.len();
                async move { Ok::<(), std::io::Error>(()) }
            })
            .await
            .unwrap();
        assert_eq!(seen, 120);
        assert_eq!(stats.files, 120);
        let err = walker
            .stream_to_pipeline(&[dir.path()], |_| async { Err::<(), _>("stop") })
            .await
            .unwrap_err();
        assert!(matches!(err, super::StreamError::Pipeline("stop")));
    }
}
