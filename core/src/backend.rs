//! The storage side, for those who write or wrap a backend: each capability's store trait
//! and the types they exchange. Handlers never need this module; [`RedisStore`](crate::RedisStore) and
//! [`MemoryStore`](crate::MemoryStore) implement every trait here.

#[cfg(feature = "codes")]
pub use crate::code::{CheckOutcome, CodeKeys, CodeStore, IssueLimits, IssueOutcome};
pub use crate::codec::StoredValue;
#[cfg(feature = "flash-sale")]
pub use crate::flash_sale::{
    Claimed, Entry, FlashSaleStore, RawOrder, ShardKeys, StreamLengths, StreamReader,
};
#[cfg(feature = "locks")]
pub use crate::lock::{AcquireOutcome, LockKeys, LockStore, ReleaseSignal};
#[cfg(feature = "rate-limit")]
pub use crate::rate_limit::{LimitReply, RateLimitStore};
pub use crate::session::events::{EventFields, EventReader, EventStreams, RawEvent};
pub use crate::session::store::{
    EndMark, Fetched, NewExpiry, Probe, RenameOutcome, SessionKeyRef, SessionStore, SessionTtl,
    end_mark_key,
};
