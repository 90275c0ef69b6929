//! Pure status computation: conditions, phase, history.
