//! Session archives: every photo of a session that a member may see, as one ZIP downloaded
//! from Photon itself with a short-lived signed link. What goes in is decided by
//! `service::archive`; this module lays the ZIP out ([`zip`]), signs and checks the links
//! ([`link`]) and streams the bytes from the object store ([`stream`]) without holding a
//! whole photo in memory.

pub mod link;
pub mod stream;
pub mod zip;
