//! Push devices: registering and unregistering the viewer's FCM tokens.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::device;

use super::ContextExt;
use super::ids::{self, Kind};
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::devices as service;

/// A phone or browser that receives the viewer's push notifications.
pub struct Device(pub device::Model);

/// What kind of device a token belongs to.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Platform {
    /// An Android phone or tablet.
    Android,
    /// An iPhone or iPad (FCM relays to APNs).
    Ios,
    /// A browser (web push).
    Web,
}

impl From<Platform> for device::Platform {
    fn from(platform: Platform) -> Self {
        match platform {
            Platform::Android => Self::Android,
            Platform::Ios => Self::Ios,
            Platform::Web => Self::Web,
        }
    }
}

impl From<device::Platform> for Platform {
    fn from(platform: device::Platform) -> Self {
        match platform {
            device::Platform::Android => Self::Android,
            device::Platform::Ios => Self::Ios,
            device::Platform::Web => Self::Web,
        }
    }
}

/// A phone or browser that receives the viewer's push notifications.
#[Object]
impl Device {
    /// Global id of the registration.
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Device, self.0.id)
    }

    /// What kind of device it is.
    async fn platform(&self) -> Platform {
        self.0.platform.into()
    }

    /// When the viewer registered it (registering it again does not change this).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct DeviceMutation;

#[Object]
impl DeviceMutation {
    /// Sends the viewer's push notifications to this FCM registration token too. Harmless to
    /// repeat (the app may call it at every start); a token registered by someone else becomes
    /// the viewer's. Pushes go to members who are not watching a session live.
    async fn register_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The FCM registration token the app got from Firebase.")] token: String,
        #[graphql(desc = "The kind of device the token belongs to.")] platform: Platform,
    ) -> Result<Device> {
        ctx.rate_limit(Rule::RegisterDevice)?;
        let device =
            service::register_device(&ctx.deps()?.db, ctx.viewer(), &token, platform.into())
                .await?;
        Ok(Device(device))
    }

    /// Stops push notifications to this token (at sign-out, say). True if it was the
    /// viewer's; false if it was not registered to the viewer, which changes nothing.
    async fn unregister_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The FCM registration token to forget.")] token: String,
    ) -> Result<bool> {
        Ok(service::unregister_device(&ctx.deps()?.db, ctx.viewer(), &token).await?)
    }
}
