//! Placeholder for the path normalisation of the route policy (written on another branch):
//! same signatures, minimal body. Replaced at merge.

/// Why a request path cannot be normalised without ambiguity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path does not start with '/'")]
    NotAbsolute,
}

/// The normalised form of `raw`, or why there is none.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.starts_with('/') {
        Ok(raw.to_owned())
    } else {
        Err(PathError::NotAbsolute)
    }
}
