//! sia
