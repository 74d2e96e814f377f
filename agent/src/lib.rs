//! tufad.
