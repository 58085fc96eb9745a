//! A synthetic city-wide chat stream: thousands of groups and senders, mostly ordinary chatter
//! with ads, abuse, rumours, privacy leaks and their evasion variants mixed in. Deterministic
//! for a seed, so benchmarks and demos are repeatable. Used by `qunguard gen`, the demo, the
//! load generator and the benches.

use crate::model::Message;

/// Deterministic pseudo-random numbers (SplitMix64): fast, no dependency, good enough for data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
    /// One element of `xs`.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const CHATTER: &[&str] = &[
    "大家好，明天上午九点小区开业主大会，请准时参加。",
    "今天菜市场的青菜特别新鲜，价格也便宜，推荐大家去看看。",
    "请问谁知道附近哪家医院儿科看得比较好？孩子有点发烧。",
    "周末一起去公园骑车吧，天气预报说是晴天。",
    "物业通知：本周四下午两点到五点停水检修，请提前储水。",
    "孩子们的作业记得今晚拍照发到群里，老师明天统一检查。",
    "楼下的快递柜坏了，取件的邻居可以先去门卫那里拿。",
    "感谢大家上次帮忙找到走丢的小狗，真的太感谢了！",
    "社区下周组织义诊活动，老人可以免费量血压测血糖。",
    "有没有人拼车去机场？明天早上六点出发，还有两个位置。",
    "今天的会议纪要已经整理好了，放在群文件里，大家看一下。",
    "这家面馆新开的，味道不错，人均二十块钱左右。",
    "请各位家长注意，下周一开始冬季作息时间调整。",
    "电梯维修完成了，可以正常使用，谢谢大家的耐心。",
    "晚上广场舞改到八点开始，音响已经换新的了。",
];

const SHORT_REPLIES: &[&str] = &[
    "收到",
    "好的",
    "谢谢",
    "收到，谢谢",
    "👍",
    "好的好的",
    "明白",
];

const ADS: &[&str] = &[
    "代开发票，量大从优，有需要的私聊我",
    "代 開 發 票，正规渠道，加VX：kaipiao_8888",
    "dai kai fa piao 了解一下😀，价格美丽",
    "代代开开发发票票，全国可开",
    "兼职日结，在家躺赚，扫码进群领红包 https://t.cn/A6xyz",
    "无抵押贷款，贷款秒批，加微信详聊",
    "帮忙投票！每天都能投，投我一票，拜托了",
    "拼多多帮我砍一刀，谢谢大家",
];

const ABUSE: &[&str] = &[
    "你这个傻 逼，滚蛋",
    "脑残吧你，说的什么东西",
    "你才是废物，神经病",
    "狗东西，闭嘴",
    "nmsl，垃圾人",
];

const RUMOURS: &[&str] = &[
    "紧急通知：明天全面封城，转发扩散！！",
    "内部消息，自来水有毒，千万别喝，看完就删",
    "据可靠消息，下周地震预报，速转",
];

const PRIVACY: &[&str] = &[
    "有事打我电话 幺三八 一二三四 五六七八",
    "他身份证号11010519491231002X，大家人肉搜索一下",
    "转账到卡号6222021234567890128就行",
    "联系人手机 139-1234-5678",
];

const ILLEGAL: &[&str] = &[
    "出售仿 真 枪，枪枝弹药齐全",
    "百家乐网上赌场，首充送彩金",
    "约炮加我，一夜情",
    "出冰毒，价格好商量",
];

/// Shape of the synthetic stream.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Number of distinct groups.
    pub groups: usize,
    /// Number of distinct senders.
    pub senders: usize,
    /// Event time of the first message, ms since the epoch.
    pub start_ts: i64,
    /// Mean gap between messages, ms of event time.
    pub gap_ms: i64,
    /// Seed for repeatability.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            groups: 5000,
            senders: 200_000,
            start_ts: 1_764_000_000_000,
            gap_ms: 1,
            seed: 42,
        }
    }
}

/// An endless stream of synthetic messages.
#[derive(Debug, Clone)]
pub struct Synth {
    cfg: SynthConfig,
    rng: Rng,
    n: u64,
}

impl Synth {
    /// A stream shaped by `cfg` (0 groups or senders count as 1).
    pub fn new(mut cfg: SynthConfig) -> Synth {
        cfg.groups = cfg.groups.max(1);
        cfg.senders = cfg.senders.max(1);
        Synth {
            rng: Rng::new(cfg.seed),
            cfg,
            n: 0,
        }
    }

    fn text(&mut self) -> String {
        let r = self.rng.below(1000);
        let pool = match r {
            0..=699 => CHATTER,
            700..=849 => SHORT_REPLIES,
            850..=899 => ADS,
            900..=929 => ABUSE,
            930..=949 => RUMOURS,
            950..=979 => PRIVACY,
            _ => ILLEGAL,
        };
        self.rng.pick(pool).to_string()
    }
}

impl Iterator for Synth {
    type Item = Message;
    fn next(&mut self) -> Option<Message> {
        let n = self.n;
        self.n += 1;
        let text = self.text();
        Some(Message {
            id: format!("m{n}").into(),
            group_id: format!("g{}", self.rng.below(self.cfg.groups)).into(),
            sender_id: format!("u{}", self.rng.below(self.cfg.senders)).into(),
            ts: self.cfg.start_ts + n as i64 * self.cfg.gap_ms,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_deterministic_and_varied() {
        let a: Vec<_> = Synth::new(SynthConfig::default()).take(2000).collect();
        let b: Vec<_> = Synth::new(SynthConfig::default()).take(2000).collect();
        assert_eq!(a, b);
        let groups: std::collections::HashSet<_> = a.iter().map(|m| &m.group_id).collect();
        assert!(groups.len() > 1000, "{}", groups.len());
        assert!(a.iter().any(|m| ADS.contains(&m.text.as_str())));
        assert!(a.iter().any(|m| CHATTER.contains(&m.text.as_str())));
        assert!(a.windows(2).all(|w| w[0].ts < w[1].ts));
    }

    #[test]
    fn no_groups_or_senders_means_one_of_each_not_a_panic() {
        let cfg = SynthConfig {
            groups: 0,
            senders: 0,
            ..Default::default()
        };
        let a: Vec<_> = Synth::new(cfg).take(10).collect();
        assert!(a.iter().all(|m| m.group_id == "g0" && m.sender_id == "u0"));
    }
}

/// The screen bench's workload (`benches/screen.rs`, `examples/screen_loop.rs`): ~100-byte
/// messages drawn from the characters of ordinary chat, a tenth of the characters noise
/// (punctuation, an emoji), and a term of `terms` appended to a tenth of the messages.
pub mod workload {
    use super::Rng;
    use crate::model::Message;
    use crate::{RuleSet, normalise};
    use std::path::Path;

    /// Characters of ordinary chat, so texts look like chat to the matcher's prefilters.
    const POOL: &str = "大家好明天上午九点小区开业主会请准时参加今天菜市场的青菜特别新鲜价格也便宜推荐去看请问谁\
知道附近哪家医院儿科得比较好孩子有点发烧周末一起公园骑车吧天气预报说是晴物业通知本四下午两到五停水检修提前储们作\
记得晚拍照群里老师统一查楼递柜坏了取件邻居可以先门卫那拿感谢上次帮忙找走丢小狗真太社区组织义诊活动人免费量血压测\
糖有没拼机场早六出发还个位置议纪已经整理放文么这面馆新味道不错均二十块钱左右各长注意冬季息时间调电梯维修完成正常使\
用耐心广场舞改八始音响换";

    /// `n` messages, and how many of them had a term planted.
    pub fn messages(terms: &[String], n: usize, rng: &mut Rng) -> (Vec<Message>, usize) {
        let pool: Vec<char> = POOL.chars().collect();
        let noise = ['，', '。', '！', '？', '😀', '、'];
        let mut planted = 0;
        let msgs = (0..n)
            .map(|i| {
                let mut text = String::with_capacity(128);
                while text.len() < 96 {
                    if rng.chance(0.1) {
                        text.push(*rng.pick(&noise));
                    } else {
                        text.push(*rng.pick(&pool));
                    }
                }
                if rng.chance(0.1) {
                    text.push_str(rng.pick(terms).as_str());
                    planted += 1;
                }
                Message {
                    id: i.to_string().into(),
                    group_id: format!("g{}", i % 500).into(),
                    sender_id: format!("u{}", i % 5000).into(),
                    ts: i as i64,
                    text,
                }
            })
            .collect();
        (msgs, planted)
    }

    /// The terms of a term list (one a line, blank lines and `#` comments skipped), such as the
    /// dictionary `QUNGUARD_BENCH_DICT` names.
    pub fn read_terms(path: &Path) -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_to_string(path)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect())
    }

    /// Writes `terms` into `dir` as one pack (category `bench`, action review) and loads it.
    /// Terms a pack would reject (nothing left after normalisation) are left out; the terms kept
    /// come back with the rule set.
    pub fn rule_set(terms: Vec<String>, dir: &Path) -> anyhow::Result<(Vec<String>, RuleSet)> {
        let terms: Vec<String> = terms
            .into_iter()
            .filter(|t| !normalise(t).text.is_empty() && !t.contains('\n'))
            .collect();
        std::fs::write(dir.join("terms.txt"), terms.join("\n"))?;
        std::fs::write(
            dir.join("bench.toml"),
            "category = \"bench\"\naction = \"review\"\nwords_file = \"terms.txt\"\n",
        )?;
        let rules = RuleSet::load_dir(dir)?;
        Ok((terms, rules))
    }

    /// 10,000 random terms of 2–4 Han characters.
    pub fn generated_terms(rng: &mut Rng) -> Vec<String> {
        (0..10_000)
            .map(|_| {
                let len = 2 + rng.below(3);
                (0..len)
                    .map(|_| char::from_u32(0x4E00 + rng.below(0x51A5) as u32).unwrap_or('中'))
                    .collect()
            })
            .collect()
    }
}
