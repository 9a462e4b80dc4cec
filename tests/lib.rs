//! Nothing lives here: the integration tests are in `it/` (one binary, one link step).
