//! Grape-style parameters.
