//! Placeholder: filled in by the lab work.
