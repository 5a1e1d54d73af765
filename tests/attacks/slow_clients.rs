//! (tests of this door are added with its fix)
