//! Server-side printing: `meta.k8s.io/v1` Table output for built-ins and CRD printer columns (pure).
