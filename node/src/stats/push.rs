//! The sender task (placeholder, filled in below).
