//! Custom resource types, shared names and condition helpers.
