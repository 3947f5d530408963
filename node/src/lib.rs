//! fengqiao-node: one 综治中心 (comprehensive governance center) node.
//!
//! Module map (each module's doc states what it owns and its invariants):
//! * [`domain`] — pure case model and state machine (no I/O).
//! * [`storage`] — the only module that touches sled (through its `db` layer alone).
//! * [`stats`] — figures for higher tiers: contributions, their exchange, aggregate queries.
//! * [`code`], [`identity`], [`pki`], [`tls`] — division codes, certificates, SPIFFE
//!   identities, roles and permissions.
//! * [`convert`] — protobuf ⇄ domain conversions (enums decoded with `TryFrom`).
//! * [`federation`] — links between nodes, exactly-once messages, moves of ownership and
//!   supervision across the tiers.
//! * [`app`] — the application layer: every operation (authorize → validate → domain →
//!   storage), one error type; [`service`] — thin gRPC handlers over it; [`server`] — listeners, wiring and shutdown;
//!   [`listener`] — accepting connections under caps, with the mutual-TLS handshake.
//! * [`sweep`] — the node applying its time-driven rules (deadlines, early-warning catch-up,
//!   scheduled reports); [`report`] — cadence reports as data, CSV and text.
//! * [`text`] — words and figures as people read them (language switch, yuan, gRPC code
//!   names), shared by every face of the node; a leaf module.
//! * [`config`] — layered configuration (defaults → tier config → file → environment).
//! * [`clock`] — injectable time; [`telemetry`] — logging.
//! * [`dev`] — `fqnode dev`, a local federation; [`cli`] — the `fqctl` operator CLI.

pub mod app;
pub mod cli;
pub mod clock;
pub mod code;
pub mod config;
pub mod convert;
pub mod dev;
pub mod domain;
pub mod error;
pub mod faults;
pub mod federation;
pub mod identity;
pub mod listener;
pub mod live_tls;
pub mod metrics;
pub mod pki;
pub mod protocol;
pub mod random;
pub mod report;
pub mod server;
pub mod service;
pub mod shed;
pub mod stats;
pub mod storage;
pub mod sweep;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod web;
