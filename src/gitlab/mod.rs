//! GitLab's Deployments API client.
