//! The session store seen through the near cache: loads may be served from memory, and
//! every change this process makes drops the entry at once.

use std::sync::Arc;

use async_trait::async_trait;

use super::runtime::NearCacheRuntime;
use crate::codec::Layout;
use crate::codec::StoredValue;
use crate::error::Result;
use crate::session::event_log::{EventFields, EventReader, EventStreams, RawEvent};
use crate::session::store::{
    EndMark, Fetched, NewExpiry, Probe, RenameOutcome, SessionKeyRef, SessionStore, SessionTtl,
    UpdateOutcome,
};

pub(crate) struct NearCachedStore {
    pub(crate) inner: Arc<dyn SessionStore>,
    pub(crate) cache: Arc<NearCacheRuntime>,
}

#[async_trait]
impl SessionStore for NearCachedStore {
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        expiry: NewExpiry,
    ) -> Result<bool> {
        self.inner.insert(keys, value, expiry).await
    }

    async fn load_and_touch(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> Result<Fetched> {
        match self.cache.load(keys, codec, idle_ms).await {
            Some(fetched) => fetched,
            None => self.inner.load_and_touch(keys, codec, idle_ms).await,
        }
    }

    async fn replace(&self, key: &str, value: &StoredValue) -> Result<bool> {
        let result = self.inner.replace(key, value).await;
        self.cache.invalidate(key);
        result
    }

    async fn update(
        &self,
        key: &str,
        old: &StoredValue,
        new: &StoredValue,
    ) -> Result<UpdateOutcome> {
        let result = self.inner.update(key, old, new).await;
        self.cache.invalidate(key);
        result
    }

    async fn remove(&self, sessions: &[SessionKeyRef<'_>]) -> Result<u64> {
        let result = self.inner.remove(sessions).await;
        for keys in sessions {
            self.cache.invalidate(keys.session);
        }
        result
    }

    async fn remove_marked(
        &self,
        sessions: &[SessionKeyRef<'_>],
        mark: EndMark<'_>,
    ) -> Result<Vec<bool>> {
        let result = self.inner.remove_marked(sessions, mark).await;
        for keys in sessions {
            self.cache.invalidate(keys.session);
        }
        result
    }

    async fn rename_marked(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: EndMark<'_>,
    ) -> Result<RenameOutcome> {
        let result = self.inner.rename_marked(from, to, mark).await;
        self.cache.invalidate(from.session);
        self.cache.invalidate(to.session);
        result
    }

    async fn probe(&self, keys: SessionKeyRef<'_>, mark_prefix: &str) -> Result<Probe> {
        self.inner.probe(keys, mark_prefix).await
    }

    fn key_changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.inner.key_changes()
    }

    fn redis_store(&self) -> Option<crate::redis_store::RedisStore> {
        self.inner.redis_store()
    }

    async fn exists(&self, keys: &[&str]) -> Result<Vec<bool>> {
        self.inner.exists(keys).await
    }

    async fn ttls(&self, sessions: &[SessionKeyRef<'_>]) -> Result<Vec<Option<SessionTtl>>> {
        self.inner.ttls(sessions).await
    }

    async fn rename(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
    ) -> Result<RenameOutcome> {
        let result = self.inner.rename(from, to).await;
        self.cache.invalidate(from.session);
        self.cache.invalidate(to.session);
        result
    }

    fn can_rename(&self, from: &str, to: &str) -> bool {
        self.inner.can_rename(from, to)
    }

    async fn index_add(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<()> {
        self.inner
            .index_add(index, member, created_us, ttl_ms)
            .await
    }

    async fn index_page(
        &self,
        index: &str,
        offset: usize,
        count: usize,
    ) -> Result<Vec<(String, i64)>> {
        self.inner.index_page(index, offset, count).await
    }

    async fn index_replace(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> Result<bool> {
        self.inner
            .index_replace(index, old, new, created_us, ttl_ms)
            .await
    }

    async fn index_remove(&self, index: &str, members: &[&str]) -> Result<()> {
        self.inner.index_remove(index, members).await
    }

    async fn index_add_logged(
        &self,
        index: &str,
        member: &str,
        created_us: i64,
        ttl_ms: u64,
        streams: &EventStreams<'_>,
        event: &EventFields,
    ) -> Result<()> {
        self.inner
            .index_add_logged(index, member, created_us, ttl_ms, streams, event)
            .await
    }

    async fn index_replace_logged(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
        streams: &EventStreams<'_>,
        event: &EventFields,
    ) -> Result<bool> {
        self.inner
            .index_replace_logged(index, old, new, created_us, ttl_ms, streams, event)
            .await
    }

    async fn index_remove_logged(
        &self,
        index: &str,
        members: &[&str],
        streams: &EventStreams<'_>,
        events: &[EventFields],
    ) -> Result<Vec<bool>> {
        self.inner
            .index_remove_logged(index, members, streams, events)
            .await
    }

    async fn read_events(&self, stream: &str, count: usize) -> Result<Vec<RawEvent>> {
        self.inner.read_events(stream, count).await
    }

    async fn event_reader(&self) -> Result<Box<dyn EventReader>> {
        self.inner.event_reader().await
    }
}
