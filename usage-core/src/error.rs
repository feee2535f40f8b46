//! The one error type of usage-core. Every binding maps these variants, field for field, to its
//! own error classes, so each variant names what went wrong and the value that was wrong.

use rust_decimal::Decimal;

/// Everything that can go wrong in usage-core and the store backends.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model is not in the pricing catalog, under any alias or normalised form.
    #[error(
        "unknown model `{model}`: it is not in the pricing catalog (add it with PriceCatalog::add_model)"
    )]
    UnknownModel {
        /// The model id as given.
        model: String,
    },

    /// Token counts or other usage figures that cannot be right.
    #[error("invalid usage: `{field}` {reason}")]
    InvalidUsage {
        /// The field that is wrong, e.g. `reasoning`.
        field: String,
        /// Why it is wrong, including the value.
        reason: String,
    },

    /// Catalog data that cannot be used for pricing.
    #[error("invalid catalog data for `{model}`: `{field}` {reason}")]
    InvalidCatalog {
        /// The model id the bad data belongs to (or `<catalog>` for file-level problems).
        model: String,
        /// The field that is wrong.
        field: String,
        /// Why it is wrong.
        reason: String,
    },

    /// A provider response that does not have the shape its provider documents.
    #[error("cannot read {provider} response: `{field}` {reason}")]
    InvalidResponse {
        /// The provider or format being parsed.
        provider: String,
        /// The JSON path of the field that is wrong.
        field: String,
        /// Why it is wrong.
        reason: String,
    },

    /// An argument (a query, a time zone, a quota definition, a URL…) that cannot be used.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument {
        /// The argument that is wrong.
        field: String,
        /// Why it is wrong, including the value.
        reason: String,
    },

    /// A hard quota would be exceeded by the request.
    #[error("quota `{quota}` exceeded: limit {limit}, used {used}, requested {requested}")]
    QuotaExceeded {
        /// The quota's id.
        quota: String,
        /// The quota's limit, in the quota's metric (USD, tokens or requests).
        limit: Decimal,
        /// What is already used or held, in the quota's metric.
        used: Decimal,
        /// What this request asked for, in the quota's metric.
        requested: Decimal,
    },

    /// Something asked for does not exist (a quota, a reservation, a run).
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What kind of thing, e.g. `quota`.
        kind: &'static str,
        /// Its id.
        id: String,
    },

    /// A long operation was cancelled by its caller; nothing it did was kept.
    #[error("{operation} was cancelled; no partial result was kept")]
    Cancelled {
        /// The operation, e.g. `rebuild_rollups`.
        operation: String,
    },

    /// The storage backend failed.
    #[error("{backend} store: {operation} failed: {source}")]
    Store {
        /// `sqlite`, `postgres` or `memory`.
        backend: &'static str,
        /// What the store was doing, e.g. `record`.
        operation: String,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// A stable machine-readable code for this error (`"QUOTA_EXCEEDED"`…), the same string
    /// the Node binding puts in `err.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownModel { .. } => "UNKNOWN_MODEL",
            Error::InvalidUsage { .. } => "INVALID_USAGE",
            Error::InvalidCatalog { .. } => "INVALID_CATALOG",
            Error::InvalidResponse { .. } => "INVALID_RESPONSE",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::Cancelled { .. } => "CANCELLED",
            Error::Store { .. } => "STORE_ERROR",
        }
    }

    /// Shorthand for [`Error::InvalidUsage`].
    pub fn usage(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidUsage {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn argument(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidCatalog`].
    pub fn catalog(
        model: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidCatalog {
            model: model.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidResponse`].
    pub fn response(
        provider: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidResponse {
            provider: provider.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Wraps a backend error, naming the backend and the operation.
    pub fn store(
        backend: &'static str,
        operation: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Store {
            backend,
            operation: operation.into(),
            source: source.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
