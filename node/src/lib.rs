//! fengqiao-node: one 综治中心 (comprehensive governance center) node.
//!
//! Module map (each module's doc states what it owns and its invariants):
//! * `domain` — pure case model and state machine (no I/O).
//! * `storage` — the only module that touches sled.
//! * `identity`, `pki`, `tls` — certificates, SPIFFE identities, roles and permissions.
//! * `convert` — protobuf ⇄ domain conversions (enums decoded with `TryFrom`).
//! * `service` — thin gRPC handlers; `server` — wiring, listeners and shutdown.
//! * `config` — layered configuration (defaults → tier config → file → environment).
//! * `cli` — the `fqctl` operator CLI.

pub mod domain;
pub mod storage;
