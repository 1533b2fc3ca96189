//! What adapter authors use, decided once in the core and translated thinly by each
//! framework adapter (besides the request view they implement,
//! [`RequestParts`](crate::web::RequestParts)): what loading a request's session gave ([`Resolved`], [`optional`]), the one reporting policy
//! for what an adapter answers instead of the handler, the re-exports, and the extractor
//! newtypes. Handler authors do not need this module.

pub use crate::web::gate::{Resolved, optional};
pub use crate::web::report::{report_error, report_missing_component, report_rejection};

/// The core types every adapter re-exports, so that one dependency is enough and the four
/// adapters name the same things: invoke `keygate::adapter_reexports!();` at an adapter's
/// crate root.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_reexports {
    () => {
        pub use ::keygate;
        /// The embedded in-memory backend (feature `memory`, on by default).
        #[cfg(feature = "memory")]
        pub use ::keygate::MemoryStore;
        pub use ::keygate::web::{Envelope, Rejection};
        pub use ::keygate::{
            CurrentSession, Error, Keygate, Layout, LoginOptions, RedisOptions, RedisStore,
            SessionConfig, SessionCookie, SessionManager, SessionUser, Token, TokenFormat,
            TokenFormats, TokenReader, TokenSource, UpdateOutcome, UserId,
        };
    };
}

/// Defines an adapter's `Auth<T>`, `MaybeAuth<T>` and `Sessions<T>` newtypes with their
/// framework-neutral parts (`Deref`, `into_inner`, `Clone`, redacting `Debug`); the adapter
/// adds its framework's extractor traits. Each framework needs its own types (the orphan
/// rule), but not its own copy of this code. Invoke it in the module that constructs them
/// (the fields are private to it); doc comments given before each name are kept.
#[doc(hidden)]
#[macro_export]
macro_rules! extractor_types {
    (
        $(#[$auth:meta])* Auth;
        $(#[$maybe:meta])* MaybeAuth;
        $(#[$sessions:meta])* Sessions;
    ) => {
        $(#[$auth])*
        pub struct Auth<T>($crate::CurrentSession<T>);

        impl<T> Auth<T> {
            /// The core's session handle, for keeping it beyond the handler.
            pub fn into_inner(self) -> $crate::CurrentSession<T> {
                self.0
            }
        }

        impl<T> ::core::ops::Deref for Auth<T> {
            type Target = $crate::CurrentSession<T>;

            fn deref(&self) -> &$crate::CurrentSession<T> {
                &self.0
            }
        }

        impl<T> ::core::clone::Clone for Auth<T> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<T: ::core::fmt::Debug> ::core::fmt::Debug for Auth<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple("Auth").field(&self.0).finish()
            }
        }

        $(#[$maybe])*
        pub struct MaybeAuth<T>(pub ::core::option::Option<Auth<T>>);

        impl<T> MaybeAuth<T> {
            /// The session, if any.
            pub fn into_inner(self) -> ::core::option::Option<Auth<T>> {
                self.0
            }
        }

        impl<T> ::core::clone::Clone for MaybeAuth<T> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<T: ::core::fmt::Debug> ::core::fmt::Debug for MaybeAuth<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple("MaybeAuth").field(&self.0).finish()
            }
        }

        $(#[$sessions])*
        pub struct Sessions<T>($crate::Keygate<T>);

        impl<T> Sessions<T> {
            /// The gate.
            pub fn into_inner(self) -> $crate::Keygate<T> {
                self.0
            }
        }

        impl<T> ::core::ops::Deref for Sessions<T> {
            type Target = $crate::Keygate<T>;

            fn deref(&self) -> &$crate::Keygate<T> {
                &self.0
            }
        }

        impl<T> ::core::clone::Clone for Sessions<T> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<T> ::core::fmt::Debug for Sessions<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_tuple("Sessions").field(&self.0).finish()
            }
        }
    };
}
