//! Pure decision: what should happen next for one GitlabDeployment.
