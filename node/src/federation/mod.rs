//! The federation: nodes at every tier linked into one tree (design essay below, filled in
//! with the network half).

pub mod apply;
pub mod message;
pub mod route;
pub mod supervision;
