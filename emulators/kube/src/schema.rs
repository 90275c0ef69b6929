//! CRD structural schemas: defaulting, pruning, validation and CEL rules (pure).
