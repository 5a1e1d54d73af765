//! Domain types of the OCI Distribution and Image specs, parsed once at the
//! edge: once a [`RepoName`], [`Tag`] or [`Digest`] exists it is valid, so no
//! handler or storage code checks strings again.

pub mod digest;
mod error;
mod manifest;
mod name;
mod pattern;

pub use digest::{Algorithm, Digest};
pub use error::ErrorCode;
pub use manifest::{
    references, Descriptor, Manifest, MediaType, ParseError, References, MAX_MANIFEST_BYTES,
};
pub use name::{Reference, RepoName, Tag};
pub use pattern::RepoPattern;
