//! Streams an archive: each photo's local header, its bytes as the store hands them over
//! (with their CRC-32 computed on the way) and its data descriptor, then the central
//! directory. A bounded channel between the writer task and the response body keeps memory
//! flat whatever the archive's size, and the next photos are opened while the current one
//! streams so that the store's time to first byte is not paid once per photo.
//!
//! The response carries the exact `Content-Length`; should a photo be missing or not the size
//! recorded for it once the stream has begun, the body fails and the connection is cut, so a
//! client never takes a short archive for a whole one.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::zip::{self, Entry, Written};
use crate::storage::{ObjectBody, ObjectStore};

/// One photo of an archive: where its bytes are and the entry they become.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: String,
    pub entry: Entry,
}

/// Chunks in flight between the writer and the socket.
const CHANNEL_CHUNKS: usize = 8;
/// Photos opened ahead of the one streaming.
const PREFETCH: usize = 2;

/// The response body of the archive of `items`, which is exactly
/// `zip::archive_size` bytes long.
pub fn body(store: Arc<dyn ObjectStore>, items: Vec<Item>) -> Body {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let started = Instant::now();
        let photos = items.len();
        match write(store, items, &tx).await {
            Ok(bytes) => tracing::info!(
                photos,
                bytes,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "archive sent"
            ),
            Err(Stop::Gone) => tracing::info!(photos, "archive download ended by the client"),
            Err(Stop::Failed(err)) => {
                tracing::warn!(error = %err, "archive download failed part way");
                let _ = tx.send(Err(err)).await;
            }
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Why writing stopped early.
enum Stop {
    /// The client went away.
    Gone,
    /// A photo could not be read as recorded.
    Failed(std::io::Error),
}

async fn send(tx: &mpsc::Sender<std::io::Result<Bytes>>, bytes: Bytes) -> Result<(), Stop> {
    tx.send(Ok(bytes)).await.map_err(|_| Stop::Gone)
}

fn failed(message: String) -> Stop {
    Stop::Failed(std::io::Error::other(message))
}

/// Writes the whole archive into `tx`; returns how many bytes that was.
async fn write(
    store: Arc<dyn ObjectStore>,
    items: Vec<Item>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<u64, Stop> {
    let entries: Vec<Entry> = items.iter().map(|item| item.entry.clone()).collect();
    let mut opened = futures_util::stream::iter(items.into_iter().map(|item| {
        let store = store.clone();
        async move {
            let body = store.open(&item.key).await;
            (item, body)
        }
    }))
    .buffered(PREFETCH);
    let mut offset = 0u64;
    let mut written = Vec::with_capacity(entries.len());
    while let Some((item, body)) = opened.next().await {
        let object = match body {
            Ok(Some(object)) => object,
            Ok(None) => return Err(failed(format!("{} is no longer in the store", item.key))),
            Err(err) => return Err(failed(format!("reading {}: {:#}", item.key, err))),
        };
        let header = zip::local_header(&item.entry);
        let at = offset;
        offset += header.len() as u64;
        send(tx, header.into()).await?;
        let crc32 = copy(object, &item, tx).await?;
        offset += item.entry.size;
        let descriptor = zip::data_descriptor(&item.entry, crc32);
        offset += descriptor.len() as u64;
        send(tx, descriptor.into()).await?;
        written.push(Written { offset: at, crc32 });
    }
    let directory = zip::central_directory(&entries, &written, offset);
    offset += directory.len() as u64;
    send(tx, directory.into()).await?;
    Ok(offset)
}

/// Sends one photo's bytes on, checking they are as many as its entry says; their CRC-32.
async fn copy(
    object: ObjectBody,
    item: &Item,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<u32, Stop> {
    let expected = item.entry.size;
    if object.byte_size != expected {
        return Err(failed(format!(
            "{} holds {} bytes, not the {expected} recorded",
            item.key, object.byte_size
        )));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut sent = 0u64;
    let mut chunks = object.chunks;
    while let Some(chunk) = chunks.try_next().await.map_err(Stop::Failed)? {
        sent += chunk.len() as u64;
        if sent > expected {
            return Err(failed(format!("{} grew while it was read", item.key)));
        }
        crc.update(&chunk);
        send(tx, chunk).await?;
    }
    if sent != expected {
        return Err(failed(format!("{} ended short", item.key)));
    }
    Ok(crc.finalize())
}
