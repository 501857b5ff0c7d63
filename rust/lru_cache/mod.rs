//! `ByteLRU`: an LRU cache of `str` keys to `bytes` values under an exact byte
//! budget, with per-entry TTL, a stale window and tags.
//!
//! `store` is the algorithm (pure Rust, generic over key and value), `ttl` the
//! fresh/stale/expired rule, `tags` the tag index, and `py` the Python binding.

pub mod py;
pub mod store;
pub mod tags;
pub mod ttl;
