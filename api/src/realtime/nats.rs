//! Wake-ups over NATS (`PHOTON_NATS_URL`), for deployments where Postgres's notifications
//! become the bottleneck: every `NOTIFY` takes one lock for the whole database at commit, and
//! each replica's listener holds a connection. A NATS message carries the same thing a
//! notification does, the ids of events that committed; replicas read the events themselves
//! from the log. NATS core delivers at most once: a message lost while a replica's
//! connection is down (or dropped because it fell behind) loses no event, because after a
//! reconnect the bus tells every feed to catch up from the log, and a gap in a session's
//! sequence makes its feeds read the log too.

use std::sync::Arc;

use async_nats::{Client, ConnectOptions, Event};
use futures_util::{FutureExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

use super::announce::parse_ids;
use super::bus::Bus;
use crate::jobs::TaskCtx;

/// The listener's name under the supervisor.
pub const TASK: &str = "event_listener_nats";
/// The connection name replicas show in NATS's monitoring.
const CLIENT_NAME: &str = "photon";

/// Where the replicas' wake-ups go: a NATS server and a subject of this deployment's own.
#[derive(Clone)]
pub struct NatsBus {
    url: SecretString,
    subject: String,
}

impl NatsBus {
    pub fn new(url: SecretString, subject: String) -> Self {
        Self { url, subject }
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// A connection that reports its connection events to `events` (when given). It does not
    /// retry its first connection: the supervisor does, after a back-off.
    async fn connect_reporting(
        &self,
        events: Option<mpsc::Sender<Event>>,
    ) -> anyhow::Result<Client> {
        let mut options = ConnectOptions::new().name(CLIENT_NAME);
        if let Some(events) = events {
            options = options.event_callback(move |event| {
                let events = events.clone();
                async move {
                    // Full means a report is already waiting, which is all the listener acts on.
                    let _ = events.try_send(event);
                }
            });
        }
        Ok(options.connect(self.url.expose_secret()).await?)
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        self.connect_reporting(None).await
    }
}

/// Listens until shutdown (`Ok`) or until the connection drops (`Err`: the supervisor
/// connects again, after a back-off, and the bus resyncs then).
pub async fn run(
    ctx: TaskCtx,
    nats: NatsBus,
    database_url: SecretString,
    bus: Arc<Bus>,
) -> anyhow::Result<()> {
    tokio::select! {
        outcome = listen(&ctx, &nats, &database_url, &bus) => outcome,
        () = ctx.stop().cancelled() => Ok(()),
    }
}

async fn listen(
    ctx: &TaskCtx,
    nats: &NatsBus,
    database_url: &SecretString,
    bus: &Bus,
) -> anyhow::Result<()> {
    let (events_tx, mut events) = mpsc::channel(16);
    let client = nats.connect_reporting(Some(events_tx)).await?;
    let mut wake_ups = client.subscribe(nats.subject().to_owned()).await?;
    // The round trip makes sure the server has the subscription before we call ourselves
    // listening: anything published from now on reaches us.
    client.flush().await?;
    let reader = super::reader(database_url).await?;
    tracing::debug!(subject = nats.subject(), "listening for events on NATS");
    // Anything committed while we were not listening reaches subscribers this way.
    bus.resync();
    crate::metrics::bus_resynced();
    ctx.ready();
    let mut ids = Vec::new();
    loop {
        tokio::select! {
            message = wake_ups.next() => {
                let Some(message) = message else {
                    anyhow::bail!("the NATS subscription ended");
                };
                ids.clear();
                ids.extend(parse_ids(&String::from_utf8_lossy(&message.payload)));
                // Whatever else has arrived meanwhile goes in the same read of the log: one
                // read per message would fall behind at a few hundred photos a second.
                while ids.len() < super::pg::BATCH {
                    match wake_ups.next().now_or_never() {
                        Some(Some(more)) => {
                            ids.extend(parse_ids(&String::from_utf8_lossy(&more.payload)));
                        }
                        _ => break,
                    }
                }
                super::deliver(&reader, bus, &ids).await;
            }
            Some(event) = events.recv() => match event {
                Event::Disconnected | Event::Closed => {
                    anyhow::bail!("the NATS connection was lost")
                }
                Event::SlowConsumer(_) => {
                    // The client dropped wake-ups it could not hand us in time.
                    tracing::warn!("fell behind on NATS wake-ups; catching up from the log");
                    bus.resync();
                    crate::metrics::bus_resynced();
                }
                other => tracing::debug!(event = %other, "NATS connection event"),
            },
        }
    }
}
