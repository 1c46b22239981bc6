//! End-to-end tests across the codejail crates; see `tests/`.
