//! contact_id
