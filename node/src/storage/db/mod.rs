//! The storage engine, behind a thin layer.
//!
//! * [`Syncer`] makes what the engine wrote durable (`sync`: it knows which files sled writes
//!   and how).

mod sync;

pub(crate) use sync::{BEFORE_SYNC_OPS, Syncer};
