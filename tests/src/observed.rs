//! One delegating session store for the tests that watch what reaches the real one
//! (counting calls, interleaving other requests between a login's steps, measuring batch
//! widths), so each test states only its observation.

use std::sync::Arc;

use async_trait::async_trait;
use keygate::backend::{
    EndMark, Fetched, NewExpiry, RenameOutcome, SessionKeyRef, SessionStore, SessionTtl,
    StoredValue,
};
use keygate::session::events::{EventFields, EventReader, EventStreams, RawEvent};
use keygate::{Layout, UpdateOutcome};

/// A call about to reach the real store, with how many keys or members it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreCall {
    /// `insert`.
    Insert,
    /// `load_and_touch`.
    LoadAndTouch,
    /// `replace`.
    Replace,
    /// `update`.
    Update,
    /// `remove` of this many sessions.
    Remove(usize),
    /// `exists` of this many keys.
    Exists(usize),
    /// `ttls` of this many sessions.
    Ttls(usize),
    /// `rename`.
    Rename,
    /// `index_add`.
    IndexAdd,
    /// `index_page` of at most this many members.
    IndexPage(usize),
    /// `index_remove` of this many members.
    IndexRemove(usize),
    /// `index_replace`.
    IndexReplace,
}

/// What a test does when a call is about to reach the store.
#[async_trait]
pub trait StoreObserver: Send + Sync + 'static {
    /// Runs before `call` is passed on; an error is returned instead of calling the store.
    async fn before(&self, call: StoreCall) -> keygate::Result<()>;
}

/// A session store that shows every call to an observer, then passes it on.
pub struct ObservedStore<O> {
    inner: Arc<dyn SessionStore>,
    /// The observer (public so a test can read what it recorded).
    pub observer: O,
}

impl<O: StoreObserver> ObservedStore<O> {
    /// Watches the calls reaching `inner`.
    pub fn new(inner: Arc<dyn SessionStore>, observer: O) -> Self {
        Self { inner, observer }
    }
}

#[async_trait]
impl<O: StoreObserver> SessionStore for ObservedStore<O> {
    async fn insert(
        &self,
        keys: SessionKeyRef<'_>,
        value: &StoredValue,
        expiry: NewExpiry,
    ) -> keygate::Result<bool> {
        self.observer.before(StoreCall::Insert).await?;
        self.inner.insert(keys, value, expiry).await
    }

    async fn load_and_touch(
        &self,
        keys: SessionKeyRef<'_>,
        codec: Layout,
        idle_ms: u64,
    ) -> keygate::Result<Fetched> {
        self.observer.before(StoreCall::LoadAndTouch).await?;
        self.inner.load_and_touch(keys, codec, idle_ms).await
    }

    async fn replace(&self, key: &str, value: &StoredValue) -> keygate::Result<bool> {
        self.observer.before(StoreCall::Replace).await?;
        self.inner.replace(key, value).await
    }

    async fn update(
        &self,
        key: &str,
        old: &StoredValue,
        new: &StoredValue,
    ) -> keygate::Result<UpdateOutcome> {
        self.observer.before(StoreCall::Update).await?;
        self.inner.update(key, old, new).await
    }

    async fn remove(&self, sessions: &[SessionKeyRef<'_>]) -> keygate::Result<u64> {
        self.observer
            .before(StoreCall::Remove(sessions.len()))
            .await?;
        self.inner.remove(sessions).await
    }

    async fn exists(&self, keys: &[&str]) -> keygate::Result<Vec<bool>> {
        self.observer.before(StoreCall::Exists(keys.len())).await?;
        self.inner.exists(keys).await
    }

    async fn ttls(
        &self,
        sessions: &[SessionKeyRef<'_>],
    ) -> keygate::Result<Vec<Option<SessionTtl>>> {
        self.observer
            .before(StoreCall::Ttls(sessions.len()))
            .await?;
        self.inner.ttls(sessions).await
    }

    async fn rename(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
    ) -> keygate::Result<RenameOutcome> {
        self.observer.before(StoreCall::Rename).await?;
        self.inner.rename(from, to).await
    }

    async fn rename_marked(
        &self,
        from: SessionKeyRef<'_>,
        to: SessionKeyRef<'_>,
        mark: EndMark<'_>,
    ) -> keygate::Result<RenameOutcome> {
        self.observer.before(StoreCall::Rename).await?;
        self.inner.rename_marked(from, to, mark).await
    }

    async fn remove_marked(
        &self,
        sessions: &[SessionKeyRef<'_>],
        mark: EndMark<'_>,
    ) -> keygate::Result<Vec<bool>> {
        self.observer
            .before(StoreCall::Remove(sessions.len()))
            .await?;
        self.inner.remove_marked(sessions, mark).await
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
    ) -> keygate::Result<()> {
        self.observer.before(StoreCall::IndexAdd).await?;
        self.inner
            .index_add(index, member, created_us, ttl_ms)
            .await
    }

    async fn index_page(
        &self,
        index: &str,
        offset: usize,
        count: usize,
    ) -> keygate::Result<Vec<(String, i64)>> {
        self.observer.before(StoreCall::IndexPage(count)).await?;
        self.inner.index_page(index, offset, count).await
    }

    async fn index_replace(
        &self,
        index: &str,
        old: &str,
        new: &str,
        created_us: i64,
        ttl_ms: u64,
    ) -> keygate::Result<bool> {
        self.observer.before(StoreCall::IndexReplace).await?;
        self.inner
            .index_replace(index, old, new, created_us, ttl_ms)
            .await
    }

    async fn index_remove(&self, index: &str, members: &[&str]) -> keygate::Result<()> {
        self.observer
            .before(StoreCall::IndexRemove(members.len()))
            .await?;
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
    ) -> keygate::Result<()> {
        self.observer.before(StoreCall::IndexAdd).await?;
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
    ) -> keygate::Result<bool> {
        self.observer.before(StoreCall::IndexReplace).await?;
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
    ) -> keygate::Result<Vec<bool>> {
        self.observer
            .before(StoreCall::IndexRemove(members.len()))
            .await?;
        self.inner
            .index_remove_logged(index, members, streams, events)
            .await
    }

    async fn read_events(&self, stream: &str, count: usize) -> keygate::Result<Vec<RawEvent>> {
        self.inner.read_events(stream, count).await
    }

    async fn event_reader(&self) -> keygate::Result<Box<dyn EventReader>> {
        self.inner.event_reader().await
    }
}

/// Counts every call that reaches the store.
#[derive(Debug, Default)]
pub struct CallCount(std::sync::atomic::AtomicUsize);

impl CallCount {
    /// Calls so far.
    pub fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl StoreObserver for CallCount {
    async fn before(&self, _call: StoreCall) -> keygate::Result<()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}
