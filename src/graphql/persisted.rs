//! Automatic persisted queries (Apollo's protocol, async-graphql's
//! extension), kept in the same cache as analytics: Redis when configured,
//! so every replica knows a hash another one learned.

use async_graphql::{
    extensions::apollo_persisted_queries::CacheStorage, parser::types::ExecutableDocument,
};

use crate::cache::Cache;

/// The persisted-query store.
#[derive(Clone)]
pub struct PersistedQueries(pub Cache);

fn key(hash: &str) -> String {
    format!("apq:{hash}")
}

#[async_trait::async_trait]
impl CacheStorage for PersistedQueries {
    async fn get(&self, hash: String) -> Option<ExecutableDocument> {
        let bytes = self.0.fetch(&key(&hash)).await?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn set(&self, hash: String, query: ExecutableDocument) {
        // The parsed form keeps every token's position: many times the text.
        // Cache::put keeps none over a megabyte.
        if let Ok(bytes) = serde_json::to_vec(&query) {
            self.0.put(&key(&hash), &bytes).await;
        }
    }
}
