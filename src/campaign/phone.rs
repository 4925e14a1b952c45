//! Phone numbers: E.164 normalization and the time zones of a number's prefix.
