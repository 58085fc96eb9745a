//! What the watch needs of a message's text ([`Signature`]): computed in parallel inside the
//! engine's screening pass, where the normalised text is at hand, so the sequential pass only
//! does lookups.

use super::config::FloodConfig;
use super::flood;
use super::state::key_of;
use crate::model::{Message, Verdict};
use crate::screen::Engine;
use std::collections::HashSet;
use std::sync::Arc;

/// What the watch needs of a message's text, computed in parallel before the stateful pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signature {
    pub(super) group: u64,
    pub(super) sender: u64,
    /// Text fingerprint; `None` for short or common replies, which never count as floods.
    pub(super) sim: Option<u64>,
    pub(super) links: u16,
    pub(super) mentions: u16,
}

/// Computes [`Signature`]s; cheap to clone and shareable across screening workers.
#[derive(Clone)]
pub struct Fingerprinter {
    min_chars: usize,
    common: Arc<HashSet<String>>,
    /// The longest common reply, in characters: longer texts skip the lookup.
    common_max_chars: usize,
    scheme: Arc<memchr::memmem::Finder<'static>>,
    www: Arc<memchr::memmem::Finder<'static>>,
    fullwidth_at: Arc<memchr::memmem::Finder<'static>>,
}

impl Fingerprinter {
    /// A fingerprinter with `[watch.flood]`'s settings.
    pub(super) fn new(cfg: &FloodConfig) -> Fingerprinter {
        let common = cfg
            .common_replies
            .iter()
            .map(|r| crate::normalise(r).text)
            .collect::<HashSet<String>>();
        let common_max_chars = common.iter().map(|c| c.chars().count()).max().unwrap_or(0);
        Fingerprinter {
            min_chars: cfg.min_chars,
            common: Arc::new(common),
            common_max_chars,
            scheme: Arc::new(memchr::memmem::Finder::new(b"://")),
            www: Arc::new(memchr::memmem::Finder::new(b"www.")),
            fullwidth_at: Arc::new(memchr::memmem::Finder::new("＠".as_bytes())),
        }
    }

    /// Screens `msgs` with `engine` and signs each while its normalised text is at hand: the
    /// verdicts and signatures [`Watch::observe`](super::Watch::observe) takes.
    pub fn screen(&self, engine: &Engine, msgs: &[Message]) -> (Vec<Verdict>, Vec<Signature>) {
        engine.screen_batch_with(msgs, &|m, norm| self.sign(m, norm))
    }

    /// The signature of `m`, whose normalised text is `norm`.
    pub fn sign(&self, m: &Message, norm: &str) -> Signature {
        let chars = norm.chars().count();
        let sim = if chars < self.min_chars
            || (chars <= self.common_max_chars && self.common.contains(norm))
            || low_information(norm)
        {
            None
        } else {
            Some(flood::simhash(norm))
        };
        let (links, mentions) = self.links_and_mentions(m.text.as_bytes());
        Signature {
            group: key_of(&m.group_id),
            sender: key_of(&m.sender_id),
            sim,
            links: links.min(u16::MAX as usize) as u16,
            mentions: mentions.min(u16::MAX as usize) as u16,
        }
    }
}

impl Fingerprinter {
    /// URLs (`://`, and `www.` not right after one) and @-mentions (`@`, `＠`) in `t`. Most
    /// chat texts have no `:`, `w` or `@` at all: one scan for those three bytes then stands in
    /// for three of the four searches.
    fn links_and_mentions(&self, t: &[u8]) -> (usize, usize) {
        let fullwidth = self.fullwidth_at.find_iter(t).count();
        if memchr::memchr3(b':', b'w', b'@', t).is_none() {
            return (0, fullwidth);
        }
        let links = self.scheme.find_iter(t).count()
            + self
                .www
                .find_iter(t)
                .filter(|&i| i < 3 || &t[i - 3..i] != b"://")
                .count();
        (links, memchr::memchr_iter(b'@', t).count() + fullwidth)
    }
}

/// 哈哈哈哈哈哈, 666666, 好好好好: a text of one or two distinct characters says nothing.
fn low_information(norm: &str) -> bool {
    let mut chars = norm.chars();
    let Some(a) = chars.next() else { return true };
    let mut b = None;
    for c in chars {
        if c != a && Some(c) != b {
            if b.is_some() {
                return false;
            }
            b = Some(c);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_mentions_are_counted_with_or_without_the_quick_check() {
        let fp = Fingerprinter::new(&FloodConfig::default());
        // (text, links, mentions)
        let table = [
            ("今天天气不错，大家出门记得带伞。", 0, 0),
            ("", 0, 0),
            ("＠张三 明天见＠李四", 0, 2),
            ("@张三 @李四 看这里", 0, 2),
            ("详情见 https://example.com 和 www.example.org", 2, 0),
            ("http://www.example.com", 1, 0),
            ("www.a.cn www.b.cn", 2, 0),
            ("wow: no link here", 0, 0),
            ("邮箱 a@b.com，＠客服", 0, 2),
        ];
        for (text, links, mentions) in table {
            assert_eq!(
                fp.links_and_mentions(text.as_bytes()),
                (links, mentions),
                "{text}"
            );
        }
    }
}
