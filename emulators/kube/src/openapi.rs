//! OpenAPI v2/v3 documents for built-in kinds and served CRDs (pure).
