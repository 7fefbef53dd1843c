//! What a cache connection runs with: the [`Service`] (configuration, CA
//! leaves, store, counters) and what it does after a request ([`Next`]).
//! Its own module so that the connection loop (`server`) and the request
//! handling (`serve`) share it without importing each other.

use std::sync::Arc;

use gateway_forward_proxy::stats::Stats;

use crate::leaf::Leaves;
use crate::settings::CacheConfig;
use crate::stats::CacheStats;
use crate::store::Store;

/// Everything a connection needs; replaced as a whole on reload (running
/// connections keep the one they started with).
pub struct Service {
    pub config: CacheConfig,
    pub leaves: Arc<Leaves>,
    pub store: Arc<Store>,
    pub stats: Arc<Stats>,
    pub cache_stats: Arc<CacheStats>,
}

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Request,
    Close,
}
