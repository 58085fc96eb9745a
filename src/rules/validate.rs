//! Validators that a regex hit must pass: they turn "looks like a number" into "is one".
//!
//! Every validator also requires the number to stand alone in the normalised text (no digit
//! right before or after it): Hyperscan cannot look around, and without this an 18-digit ID
//! card would also be reported as the mobile numbers hidden inside it. The one exception: a
//! mobile number after China's country code written as one (`+86 138…`, `0086-138…`).

use serde::Deserialize;

/// A check on the matched text, named in a pack's `validate` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Mainland China resident ID card (GB 11643-1999): 18 characters, a valid birth date and
    /// the ISO 7064 MOD 11-2 check character.
    CnIdCard,
    /// Bank card number: 12–19 digits passing the Luhn checksum.
    Luhn,
    /// Mainland China mobile number: 11 digits starting 13–19.
    CnMobile,
}

/// True when `text[from..to]` (normalised message bytes) passes `v`, a country code before a
/// mobile number counting as written.
#[cfg(test)]
pub(crate) fn check(v: Validator, text: &[u8], from: usize, to: usize) -> bool {
    check_with(v, text, from, to, |_| true)
}

/// True when `text[from..to]` (normalised message bytes) passes `v`. China's country code
/// right before a mobile number (`86`/`0086`, starting at the offset given) lets it pass when
/// `written_as_code` says the original wrote it as one: the normalised text has lost the `+`
/// and the spaces that tell `+86 138…` from a 13-digit parcel number.
pub(crate) fn check_with(
    v: Validator,
    text: &[u8],
    from: usize,
    to: usize,
    written_as_code: impl FnOnce(usize) -> bool,
) -> bool {
    let m = &text[from..to];
    let before = from.checked_sub(1).map(|i| text[i]);
    let after = text.get(to).copied();
    let alone = |extra: u8| {
        !before.is_some_and(|b| b.is_ascii_digit() || b == extra)
            && !after.is_some_and(|b| b.is_ascii_digit() || b == extra)
    };
    match v {
        Validator::CnMobile => {
            let before_ok = !before.is_some_and(|b| b.is_ascii_digit())
                || country_code(text, from).is_some_and(written_as_code);
            before_ok && !after.is_some_and(|b| b.is_ascii_digit()) && cn_mobile(m)
        }
        Validator::Luhn => alone(b'0') && luhn(m),
        Validator::CnIdCard => alone(b'x') && cn_id_card(m),
    }
}

/// Where China's country code, written right before a number at `from`, starts: normalised
/// text drops the `+` and the spaces, so `+86 138 1234 5678` and `0086-138…` arrive here as
/// 8613812345678 and 008613812345678. The code itself must stand alone.
fn country_code(text: &[u8], from: usize) -> Option<usize> {
    [b"0086".as_slice(), b"86"].into_iter().find_map(|code| {
        let s = from.checked_sub(code.len())?;
        let alone = s == 0 || !text[s - 1].is_ascii_digit();
        (&text[s..from] == code && alone).then_some(s)
    })
}

fn cn_mobile(m: &[u8]) -> bool {
    m.len() == 11
        && m.iter().all(u8::is_ascii_digit)
        && m[0] == b'1'
        && (b'3'..=b'9').contains(&m[1])
}

fn luhn(m: &[u8]) -> bool {
    if !(12..=19).contains(&m.len()) || !m.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = m
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn cn_id_card(m: &[u8]) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10x98765432";
    if m.len() != 18 || !m[..17].iter().all(u8::is_ascii_digit) || m[0] == b'0' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        m[r].iter()
            .fold(0u32, |acc, &b| acc * 10 + (b - b'0') as u32)
    };
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2100).contains(&year) || !(1..=12).contains(&month) {
        return false;
    }
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days).contains(&day) {
        return false;
    }
    let sum: u32 = m[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(&b, w)| (b - b'0') as u32 * w)
        .sum();
    m[17] == CHECK[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_table() {
        // (validator, normalised text, expect valid)
        let cases: &[(Validator, &str, bool)] = &[
            // GB 11643 sample numbers with correct check characters.
            (Validator::CnIdCard, "11010519491231002x", true),
            (Validator::CnIdCard, "440524188001010014", false), // year 1880 out of range
            (Validator::CnIdCard, "110105194912310021", false), // wrong check digit
            (Validator::CnIdCard, "110105194902300026", false), // 30 February
            (Validator::CnIdCard, "11010519491231002", false),  // 17 chars
            (Validator::CnIdCard, "510104200002290011", true),  // 2000-02-29 is a leap day
            (Validator::CnIdCard, "510104190002290015", false), // 1900 was not a leap year
            (Validator::Luhn, "4111111111111111", true),
            (Validator::Luhn, "6222020200112233442", false),
            (Validator::Luhn, "6222021234567890128", true),
            (Validator::Luhn, "4111111111111112", false),
            (Validator::Luhn, "79927398713", false), // valid Luhn but too short for a card
            (Validator::CnMobile, "13812345678", true),
            (Validator::CnMobile, "19912345678", true),
            (Validator::CnMobile, "12812345678", false),
            (Validator::CnMobile, "1381234567", false),
        ];
        for (v, text, want) in cases {
            assert_eq!(
                check(*v, text.as_bytes(), 0, text.len()),
                *want,
                "{v:?} {text}"
            );
        }
    }

    #[test]
    fn numbers_inside_longer_numbers_are_not_reported() {
        let id = b"11010519491231002x";
        // The mobile-looking digits inside an ID card are not a mobile number.
        assert!(!check(Validator::CnMobile, b"a138123456789", 1, 12));
        assert!(check(Validator::CnMobile, b"a13812345678b", 1, 12));
        assert!(!check(Validator::CnIdCard, b"911010519491231002x", 1, 19));
        assert!(check(Validator::CnIdCard, id, 0, 18));
        assert!(!check(Validator::Luhn, b"41111111111111110", 0, 16));
    }

    #[test]
    fn a_mobile_number_may_follow_the_country_code() {
        // (normalised text, where the number starts, expect a mobile number)
        let cases: &[(&str, usize, bool)] = &[
            ("8613812345678", 2, true),     // +86 138…
            ("tel8613812345678", 5, true),  // tel:+86…
            ("008613812345678", 4, true),   // 0086…
            ("58613812345678", 3, false),   // 86 inside a longer number
            ("1008613812345678", 5, false), // 0086 inside a longer number
            ("7613812345678", 2, false),    // not China's code
            ("86138123456789", 2, false),   // too long after the code
        ];
        for &(text, from, want) in cases {
            let to = from + 11;
            let got = to <= text.len() && check(Validator::CnMobile, text.as_bytes(), from, to);
            assert_eq!(got, want, "{text}");
        }
    }
}
