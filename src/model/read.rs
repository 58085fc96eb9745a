//! Messages read from JSON by hand on the common path: every input record is a message, and
//! serde's derived reader matched field names and copied strings through a generic visitor
//! (with the UTF-8 check, ~9% of `scan`'s CPU). The fast path takes only plain input (strings
//! without escapes, integer `ts`, unknown fields with plain values); anything else, errors
//! included, goes to serde_json, so every accepted input gives the same `Message` and every
//! rejected one the same error as before (tests compare the two on a table and on mutated
//! inputs).

use super::Message;

impl Message {
    /// Parses a message from JSON: the same result as `serde_json::from_str::<Message>`.
    pub fn from_json(s: &str) -> serde_json::Result<Message> {
        match plain(s) {
            Some(m) => Ok(m),
            None => serde_json::from_str(s),
        }
    }
}

/// The message, if `b` is plain JSON for one; `None` for anything else (valid or not).
fn plain(s: &str) -> Option<Message> {
    let b = s.as_bytes();
    let mut r = Reader { s, b, at: 0 };
    let (mut id, mut group_id, mut sender_id, mut ts, mut text) = (None, None, None, None, None);
    r.ws();
    r.eat(b'{')?;
    loop {
        r.ws();
        let key = &b[r.string()?];
        r.ws();
        r.eat(b':')?;
        r.ws();
        // A repeated field is serde's error to report.
        match key {
            b"id" => set(&mut id, r.str()?.into())?,
            b"group_id" => set(&mut group_id, r.str()?.into())?,
            b"sender_id" => set(&mut sender_id, r.str()?.into())?,
            b"text" => set(&mut text, r.str()?.to_owned())?,
            b"ts" => set(&mut ts, r.int()?)?,
            _ => r.skip_value()?,
        }
        r.ws();
        match r.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    r.ws();
    if r.at != b.len() {
        return None;
    }
    Some(Message {
        id: id?,
        group_id: group_id?,
        sender_id: sender_id?,
        ts: ts?,
        text: text?,
    })
}

fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(v);
            Some(())
        }
    }
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON's whitespace (the set serde_json skips).
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters (which serde_json rejects): where its
    /// contents lie in the input.
    #[inline]
    fn string(&mut self) -> Option<std::ops::Range<usize>> {
        self.eat(b'"')?;
        let rest = &self.b[self.at..];
        let special = |c: u8| c < 0x20 || c == b'"' || c == b'\\';
        // Sixteen bytes at a time without an early exit, so the check vectorises; texts are
        // ~100 bytes.
        let mut i = 0;
        while let Some(chunk) = rest.get(i..i + 16) {
            if chunk.iter().fold(false, |any, &c| any | special(c)) {
                break;
            }
            i += 16;
        }
        let end = i + rest[i..].iter().position(|&c| special(c))?;
        if rest[end] != b'"' {
            return None;
        }
        let start = self.at;
        self.at += end + 1;
        Some(start..start + end)
    }

    /// [`Reader::string`]'s contents. The input is a `str` and quotes are ASCII, so they are
    /// whole characters: slicing checks only the two ends (checking the UTF-8 again cost
    /// more than the rest of parsing a text).
    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        let r = self.string()?;
        self.s.get(r)
    }

    /// An integer that fits an `i64`, in JSON's grammar (no leading zeros, no fraction or
    /// exponent: those serde_json reads as floats, which `ts` refuses).
    fn int(&mut self) -> Option<i64> {
        let neg = self.b.get(self.at) == Some(&b'-');
        if neg {
            self.at += 1;
        }
        let digits = self.b[self.at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let d = &self.b[self.at..self.at + digits];
        // serde_json reads `-0` as a float.
        if digits == 0 || (digits > 1 && d[0] == b'0') || (neg && d == b"0") {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(self.at + digits) {
            return None;
        }
        self.at += digits;
        let mut v: i64 = 0;
        for &c in d {
            let x = i64::from(c - b'0');
            v = v.checked_mul(10)?.checked_add(if neg { -x } else { x })?;
        }
        Some(v)
    }

    /// A value of a field the message does not have: plain strings, integers, `true`,
    /// `false` and `null`; objects, arrays and the rest go to serde_json.
    fn skip_value(&mut self) -> Option<()> {
        match *self.b.get(self.at)? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.int().map(drop),
            _ => {
                for word in [&b"true"[..], b"false", b"null"] {
                    if self.b[self.at..].starts_with(word) {
                        self.at += word.len();
                        return Some(());
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str =
        r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1764000000000,"text":"今天天气不错"}"#;

    fn same_as_serde(s: &str) {
        let ours = Message::from_json(s).map_err(|e| e.to_string());
        let theirs = serde_json::from_str::<Message>(s).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{s:?}");
    }

    #[test]
    fn plain_messages_take_the_fast_path() {
        for s in [
            PLAIN,
            " \t\r\n{ \"text\" : \"\" , \"ts\" : 0 , \"sender_id\":\"u\",\"group_id\":\"g\",\"id\":\"m\" } \n",
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":-9223372036854775808,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":9223372036854775807,"text":"x"}"#,
            r#"{"v":2,"id":"m1","kind":"text","group_id":"g1","sender_id":"u1","ts":0,"text":"😀","a":true,"b":false,"c":null,"v":-3}"#,
        ] {
            assert!(plain(s).is_some(), "{s}");
            same_as_serde(s);
        }
    }

    #[test]
    fn anything_else_is_read_or_refused_by_serde_as_before() {
        for s in [
            r#"{"id":"m\"1","group_id":"g1","sender_id":"u1","ts":1,"text":"a\nb\u4e2d"}"#,
            r#"{"i\u0064":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            "{\"id\":\"m1\",\"group_id\":\"g1\",\"sender_id\":\"u1\",\"ts\":1,\"text\":\"tab\there\"}",
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1.0,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1e3,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":01,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":-,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":-0,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":-9223372036854775809,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":9223372036854775808,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":"1","text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":null,"text":"x"}"#,
            r#"{"id":1,"group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"id":"m1","id":"m2","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"ts":2,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x",}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"} x"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}{}"#,
            r#"{"meta":{"a":[1,2]},"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"x":1.5,"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"x":01,"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"x":tru,"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"x":truex,"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x""#,
            r#"{"id":"m1","group_id":"g1","sender_id":"u1","ts":1,"text":"x"#,
            r#"{"id":"m1" "group_id":"g1","sender_id":"u1","ts":1,"text":"x"}"#,
            r#"["m1","g1","u1",1,"x"]"#,
            "{}",
            "",
            "{",
            "null",
        ] {
            assert!(plain(s).is_none(), "{s}");
            same_as_serde(s);
        }
    }

    /// Every one-byte change of a plain message, to each byte that matters to the grammar,
    /// reads as serde_json reads it.
    #[test]
    fn mutated_messages_read_as_serde_reads_them() {
        let with_extra = r#"{"v":1,"id":"m1","group_id":"g1","sender_id":"u1","ts":-17,"text":"a b","ok":true,"n":null}"#;
        let bytes = b"\"\\{}[],:-.0129eE tfnl\x01\t\n";
        for base in [PLAIN, with_extra] {
            for at in 0..base.len() {
                if !base.is_char_boundary(at) || !base.is_char_boundary(at + 1) {
                    continue;
                }
                for &c in bytes {
                    for edit in 0..3 {
                        let mut s = base.as_bytes().to_vec();
                        match edit {
                            0 => s[at] = c,
                            1 => s.insert(at, c),
                            _ => drop(s.remove(at)),
                        }
                        same_as_serde(std::str::from_utf8(&s).unwrap());
                    }
                }
            }
        }
    }

    /// Generated messages: fields shuffled, repeated or missing, and keys, values and
    /// whitespace drawn from what JSON and serde_json treat specially. (A review ran the same
    /// generator over 2M inputs and a 3-edit mutator over 3M.)
    #[test]
    fn generated_messages_read_as_serde_reads_them() {
        const KEYS: &[&str] = &[
            r#""id""#,
            r#""group_id""#,
            r#""sender_id""#,
            r#""ts""#,
            r#""text""#,
            r#""""#,
            r#""x""#,
            r#""i\u0064""#,
            r#""ID""#,
            r#""id ""#,
        ];
        const VALUES: &[&str] = &[
            r#""a""#,
            r#""""#,
            r#""中""#,
            r#""\n""#,
            "\"\u{7f}\"",
            "\"\u{1}\"",
            "0",
            "-0",
            "1",
            "-1",
            "01",
            "1.0",
            "1e2",
            "-",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "true",
            "false",
            "null",
            "tru",
            "truex",
            "[]",
            "{}",
            "[1]",
            r#"{"a":1}"#,
            "+1",
            ".5",
            "1.",
            "NaN",
            "1 2",
            "00",
            "\u{feff}1",
        ];
        const SPACE: &[&str] = &[
            "", "", "", "", "", "", "", "", " ", "\t", "\n", "\r", "\u{c}", "\u{a0}", "\u{3000}",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut n = |k: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % k as u64) as usize
        };
        let mut fast = 0;
        for _ in 0..50_000 {
            let mut fields: Vec<(&str, &str)> = vec![
                (KEYS[0], r#""m""#),
                (KEYS[1], r#""g""#),
                (KEYS[2], r#""u""#),
                (KEYS[3], "1"),
                (KEYS[4], r#""t""#),
            ];
            for f in &mut fields {
                if n(8) == 0 {
                    f.1 = VALUES[n(VALUES.len())];
                }
            }
            for _ in 0..n(3) {
                let f = (KEYS[n(KEYS.len())], VALUES[n(VALUES.len())]);
                if n(2) == 0 {
                    let i = n(fields.len());
                    fields[i] = f;
                } else {
                    let i = n(fields.len() + 1);
                    fields.insert(i, f);
                }
            }
            if n(4) == 0 {
                fields.remove(n(fields.len()));
            }
            let mut s = String::from(SPACE[n(SPACE.len())]);
            s += if n(30) == 0 { "[" } else { "{" };
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    s += if n(40) == 0 { ";" } else { "," };
                }
                for part in [SPACE[n(SPACE.len())], k, SPACE[n(SPACE.len())], ":", v] {
                    s += part;
                }
                s += SPACE[n(SPACE.len())];
            }
            s += if n(30) == 0 { "," } else { "" };
            s += if n(30) == 0 { "" } else { "}" };
            s += if n(30) == 0 {
                VALUES[n(VALUES.len())]
            } else {
                SPACE[n(SPACE.len())]
            };
            fast += usize::from(plain(&s).is_some());
            same_as_serde(&s);
        }
        // The generator must reach the fast path, not only serde's errors.
        assert!(fast > 100, "{fast}");
    }
}
