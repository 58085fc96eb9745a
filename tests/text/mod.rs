//! Test texts.

#![allow(dead_code)] // each test crate uses its own part of this

/// `n` in Han numerals, one a digit (一二三 for 123): numbered texts that stay different texts
/// to the flood fingerprint whatever it does with digits (numbered notices, one message each).
pub fn han(n: i64) -> String {
    n.to_string()
        .chars()
        .map(|d| match d.to_digit(10) {
            Some(d) => "零一二三四五六七八九".chars().nth(d as usize).unwrap(),
            None => d,
        })
        .collect()
}
