//! Whether the service is draining: set by the shutdown sequence on SIGTERM, read by the
//! readiness route and the request-log middleware.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the service is draining: shared by the readiness route, the request log
/// middleware (which closes connections while draining) and the shutdown sequence.
#[derive(Debug, Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    /// Marks the service as going away.
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Drain::start`] was called.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
