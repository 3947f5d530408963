//! The federation's pure core: what nodes say to each other and what a node does with it,
//! with no I/O — beside the case state machine (`crate::domain`), on which it builds.
//!
//! * [`message`] — the messages, as queued in outboxes and applied by receivers;
//! * [`route`] — which neighbour a message for a node goes to next;
//! * [`apply`] — applying one message to what a node holds (through the [`apply::Local`]
//!   view the store gives it), and dealing with a neighbour's refusal;
//! * [`trust`] — what a child may say, checked as its messages are applied;
//! * [`supervision`] — the read-only copies that follow a supervised case up;
//! * [`subtree`] — the repeat-person sightings counted across a subtree.
//!
//! Storage (`crate::storage`) writes what these functions decide in one transaction; the
//! network (`crate::federation`) carries messages between nodes; both depend on this module
//! and not on each other. So does the simulation (`fqsim`), which drives it through real
//! stores. Besides the domain it uses only pure helpers: division codes, identity URIs, and
//! the protobuf conversions for encoded sizes.

pub mod apply;
pub mod message;
pub mod route;
pub mod subtree;
pub mod supervision;
pub mod trust;

pub use message::case_bytes;
