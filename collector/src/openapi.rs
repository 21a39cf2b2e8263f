//! The OpenAPI 3.1 description of every HTTP route of the collector, served at
//! `GET /api/v1/openapi.json`. Hand-written (`openapi.json` beside this file); the tests
//! below keep it complete: every route registered in a router under `collector/src` must be
//! in it with its methods, and it must pass `openapi-spec-validator`.

/// The document, as served.
pub const SPEC: &str = include_str!("openapi.json");
