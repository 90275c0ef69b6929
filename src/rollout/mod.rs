//! Pure rollout evaluation: a target object to a rollout state.
