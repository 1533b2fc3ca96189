//! What adapter authors use, decided once in the core and translated thinly by each
//! framework adapter (besides the request view they implement,
//! [`RequestParts`](crate::web::RequestParts)): what loading a request's session gave
//! ([`Resolved`], [`optional`]), the one reporting policy for what an adapter answers
//! instead of the handler, the rate-limit headers of an allowed answer, the re-exports,
//! the extractor newtypes and the two error types. Handler authors do not need this module.

pub use crate::web::gate::{Resolved, optional};
#[cfg(feature = "rate-limit")]
pub use crate::web::rate_limit::rate_limit_headers;
pub use crate::web::report::{report_error, report_missing_component, report_rejection};

/// The core types every adapter re-exports, so that one dependency is enough and the four
/// adapters name the same things: invoke `keygate::adapter_reexports!();` at an adapter's
/// crate root. The core's [`Rejection`](crate::web::Rejection) is not among them: an
/// adapter's root `Rejection` is its own extractor rejection
/// ([`error_types!`](crate::error_types)), and the core's enum stays at
/// `keygate::web::Rejection`.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_reexports {
    () => {
        pub use ::keygate;
        /// The embedded in-memory backend (feature `memory`, on by default).
        #[cfg(feature = "memory")]
        pub use ::keygate::MemoryStore;
        pub use ::keygate::web::Envelope;
        pub use ::keygate::{
            CurrentSession, EndReason, Error, Keygate, Layout, LoginOptions, RedisOptions,
            RedisStore, SessionConfig, SessionCookie, SessionManager, SessionUser, Token,
            TokenFormat, TokenFormats, TokenReader, TokenSource, UpdateOutcome, UserId,
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

/// Defines an adapter's two error types with their framework-neutral parts, so that the
/// four adapters offer the same names and accessors; the adapter adds its framework's
/// response traits (and logs, when it renders them, through [`report_error`],
/// [`report_rejection`] and [`report_missing_component`]). Invoke it in the module that
/// renders them (the fields are private to it); doc comments given before each name are
/// kept.
///
/// - `ApiError` wraps a [`crate::Error`] that a handler returns with `?`: `inner`,
///   `into_inner`, `status` (503 for backend trouble, 500 otherwise).
/// - `Rejection` is why an extractor refused the request, the framework's form of
///   [`crate::web::Rejection`] (which is `Copy`): `inner`, `status`.
///
/// Both are `Debug`, `Display` (the core value's text), `std::error::Error` with the core
/// value as `source()`, and `From` the core type.
#[doc(hidden)]
#[macro_export]
macro_rules! error_types {
    (
        $(#[$api:meta])* ApiError;
        $(#[$rejection:meta])* Rejection;
    ) => {
        $(#[$api])*
        #[derive(Debug)]
        pub struct ApiError($crate::Error);

        impl ApiError {
            /// The core's error.
            pub fn inner(&self) -> &$crate::Error {
                &self.0
            }

            /// The core's error, by value.
            pub fn into_inner(self) -> $crate::Error {
                self.0
            }

            /// The HTTP status this error answers: 503 for backend trouble, 500 otherwise.
            pub fn status(&self) -> u16 {
                self.0.status()
            }
        }

        impl ::core::convert::From<$crate::Error> for ApiError {
            fn from(error: $crate::Error) -> Self {
                Self(error)
            }
        }

        impl ::core::fmt::Display for ApiError {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::error::Error for ApiError {
            fn source(&self) -> ::core::option::Option<&(dyn ::std::error::Error + 'static)> {
                ::core::option::Option::Some(&self.0)
            }
        }

        $(#[$rejection])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Rejection($crate::web::Rejection);

        impl Rejection {
            /// The core's rejection.
            pub fn inner(&self) -> $crate::web::Rejection {
                self.0
            }

            /// The HTTP status this rejection answers: 401, 403, 503, or 500 for a missing
            /// component.
            pub fn status(&self) -> u16 {
                self.0.status()
            }
        }

        impl ::core::convert::From<$crate::web::Rejection> for Rejection {
            fn from(rejection: $crate::web::Rejection) -> Self {
                Self(rejection)
            }
        }

        impl ::core::fmt::Display for Rejection {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::error::Error for Rejection {
            fn source(&self) -> ::core::option::Option<&(dyn ::std::error::Error + 'static)> {
                ::core::option::Option::Some(&self.0)
            }
        }
    };
}

/// The standard header names keygate reads on every request, as the constants of an
/// `http`-style header module (`http::header`, or actix-web's re-export): looking a header
/// up by a constant parses no name, where a lookup by `&str` parses and checks it each
/// time. `keygate::known_header!(name, http::header)` is `Option<HeaderName>`, `None` for
/// any other name (which the adapter then looks up by its text).
#[doc(hidden)]
#[macro_export]
macro_rules! known_header {
    ($name:expr, $($module:ident)::+) => {
        match $name {
            "authorization" => ::core::option::Option::Some($($module)::+::AUTHORIZATION),
            "cookie" => ::core::option::Option::Some($($module)::+::COOKIE),
            "origin" => ::core::option::Option::Some($($module)::+::ORIGIN),
            "referer" => ::core::option::Option::Some($($module)::+::REFERER),
            "host" => ::core::option::Option::Some($($module)::+::HOST),
            "user-agent" => ::core::option::Option::Some($($module)::+::USER_AGENT),
            "forwarded" => ::core::option::Option::Some($($module)::+::FORWARDED),
            "x-forwarded-for" => {
                const X_FORWARDED_FOR: $($module)::+::HeaderName =
                    $($module)::+::HeaderName::from_static("x-forwarded-for");
                ::core::option::Option::Some(X_FORWARDED_FOR)
            }
            _ => ::core::option::Option::None,
        }
    };
}
