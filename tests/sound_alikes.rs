//! Sound-alikes against the shipped packs: ordinary sentences whose words merely sound like a
//! term are not flagged (the common-word lexicon explains them, or a sentence break splits
//! them), deliberate sound-alikes and romanised spellings still are, and every dropped match is
//! explained on the verdict.

mod screening;

use qunguard::{Action, MatchKind, SuppressedBy};
use screening::msg;

use screening::shipped as engine;

/// Everyday sentences, each holding a word that sounds like a term of a shipped `pinyin = true`
/// pack (the term in the comment). None may be flagged.
const ORDINARY: &[&str] = &[
    // 畜生 chusheng
    "他出生在上海，后来搬到了北京",
    "孩子出生以后我就没睡过整觉",
    "出生证明要带原件去派出所",
    "请问出生日期写农历还是公历",
    "初生的太阳照在湖面上",
    "初生牛犊不怕虎",
    "她的出生地在江西南昌",
    "新出生的小猫特别可爱",
    // 大麻 dama
    "楼下的大妈每天早上跳广场舞",
    "隔壁大妈送了我们一篮鸡蛋",
    "广场舞大妈们又来了",
    "周末在家打麻将",
    "我爸最喜欢打麻将了",
    "你家房子大吗",
    "这双鞋码数大吗",
    "新开的超市大吗",
    "沿着大马路一直走就到了",
    "他去大马旅游了一个星期",
    // 笑气 xiaoqi
    "别那么小气，请大家喝杯奶茶",
    "他这个人特别小气",
    "做人不要太小气",
    "小气鬼又不肯请客",
    // 贱人 jianren
    "他是福建人，说话有口音",
    "我们老板是福建人",
    "她性格很坚韧，从不放弃",
    "坚韧不拔的意志",
    "他兼任我们班的数学老师",
    "王老师兼任教务主任",
    "坚忍的性格让她挺过了难关",
    "福建人都爱喝茶",
    // 去死 qusi
    "我们下个月去四川玩",
    "暑假打算去四川看大熊猫",
    "明天去寺庙烧香",
    "周末一起去寺庙祈福吧",
    "他们全家去四川旅游了",
    "去四川的高铁票买好了",
    // 白痴 baichi
    "小鸟扇动着白翅膀",
    "这只鸽子有一对白翅膀",
    "家里的白炽灯坏了",
    "白炽灯太费电了，换成节能灯吧",
    "不能白吃白喝人家的",
    "这顿饭白吃了，一点都不饱",
    "白吃了这么多年的饭",
    // 冰毒 bingdu
    "社区开展病毒预防知识宣传",
    "电脑中了病毒，文件打不开",
    "流感病毒最近很活跃",
    "勤洗手可以预防病毒感染",
    "手机杀病毒软件哪个好用",
    "这种病毒传播很快，大家注意防护",
    "新型病毒的疫苗研发出来了",
    "病毒性感冒要多喝水多休息",
    // 溜冰 liubing
    "小区的孩子都去溜冰场了",
    "给孩子买了一双溜冰鞋",
    // 迷药 miyao
    "服务器的密钥要妥善保存",
    "忘记密钥了怎么办",
    "把公钥和密钥分开放",
    // 废物 feiwu
    "窗外雪花飞舞",
    "蝴蝶在花丛中飞舞",
    "柳絮漫天飞舞",
    "彩带在空中飞舞",
    // 智障 zhizhang
    "打印机的纸张用完了",
    "这种纸张质量很好",
    "纸张大小选A4",
    "请节约纸张，双面打印",
    "纸张太薄了，墨水会透过去",
    // 弱智 ruozhi
    "这道题太简单了，简直是送分",
    // 杂种 zazhong
    "杂交水稻的杂种优势很明显",
    // 残废 canfei
    "这个月的餐费大家AA",
    "公司报销餐费吗",
    "餐费已经转给你了",
    // 枪支 qiangzhi
    "法院强制执行了判决",
    "强制保险必须买",
    "学校强制要求穿校服",
    "不能强制别人做不愿意的事",
    // 猎枪 lieqiang
    "近代中国受到列强的侵略",
    "历史课讲到了八国列强",
    // 弓弩 gongnu
    "电视剧里的宫女都很漂亮",
    "清宫剧里宫女太多了",
    // 电击器 dianjiqi
    "工厂新买了一台电机",
    "电机坏了要找师傅修",
    // 气枪 qiqiang
    "他起床后先去跑步",
    // 手枪 shouqiang
    "大家都在抢购口罩",
    // 博彩 bocai
    "晚饭做了菠菜炒鸡蛋",
    "菠菜要先焯水再炒",
    "多吃菠菜补铁",
    "博采众长才能进步",
    "菠菜汤很好喝",
    // 老虎机 laohuji
    "动物园的老虎今天出来晒太阳了",
    // 台独 taidu
    "他的服务态度很好",
    "学习态度决定成绩",
    "工作态度要端正",
    "你这是什么态度",
    "态度诚恳一点，好好道歉",
    "老师的态度很温和",
    "请注意你说话的态度",
    "这家店的态度真差",
    "他对这件事的态度很明确",
    "端正态度，认真对待",
    // 港独 gangdu
    "这种材料的刚度不够",
    "梁的刚度要重新计算",
    // 疆独 jiangdu
    "我老家在扬州江都",
    "江都区的水利工程很有名",
    // 东突 dongtu
    "北方冻土层很厚",
    "冻土地区修铁路很难",
    "青藏铁路穿过大片冻土",
    // 藏独 zangdu / 赌球 duqiu / 吸毒 xidu / 贩毒 fandu: ordinary readings
    "这本书值得细细品读",
    // 约炮 yuepao
    "他越跑越快，把别人甩在后面",
    // 援交 yuanjiao
    "周末去远郊爬山",
    "远郊的空气特别好",
    // 楼凤 loufeng
    "窗户漏风，冬天好冷",
    "这个门有点漏风",
    // 鸦片 yapian
    "明天去医院拍个片子",
    // 套现 taoxian
    "我们去桃园摘桃子",
    // 招代理 zhaodaili: a sentence break between 照 and 代理
    "谢谢您的关照。代理的事下次再聊",
    "多谢关照！代理商下周到",
    "承蒙关照，代理合同已经签了",
    "谢谢照顾。代理人明天过来",
    // 加微信 jiaweixin / 加威信 / 加v
    "家里的维修工明天来",
    "他在家为新房子忙装修",
    // 刷单 shuadan
    "刷完单词再去吃饭",
    // 办证 banzheng
    "去派出所办身份证要带户口本",
    // 日赚 rizhuan
    "今日转发的文章很有意思",
    // 网赚 wangzhuan
    "往左转就到了",
    // 拉人头 larentou
    "拉人的三轮车都停在门口",
    // 私聊我 siliaowo
    "思路我已经理清楚了",
    // 神经病 shenjingbing
    "神经外科的病房在五楼",
    // 脑残 naocan
    "早餐吃了包子",
    // 人渣 renzha
    "人造革的沙发不耐用",
    // 王八蛋 wangbadan
    "王八是一种乌龟",
    // 婊子 biaozi
    "表姊妹们都来过年了",
    // 穷鬼 qionggui
    "穷困的日子总会过去",
    // 乡巴佬 xiangbalao
    "乡下的八老爷过寿",
    // 垃圾人 lajiren
    "垃圾分类人人有责",
    // 狗东西 goudongxi
    "超市里东西很多",
    // 滚蛋 gundan
    "滚烫的鸡蛋汤",
    // 白痴 baichi
    "菜市场里白菜很便宜",
    // 去死 qusi
    "去世的爷爷留下一块手表",
    // 死全家 siquanjia
    "四川全家福照片",
    // 智障 zhizhang
    "支撑不住了，要休息一下",
    // 冰毒 bingdu
    "冰冻的饮料不要多喝",
    "冰镇西瓜真好吃",
    // 大麻 dama
    "他这人大大咧咧的",
    "大门口有人在等你",
    // 笑气 xiaoqi
    "小区门口新开了一家超市",
    "小棋手赢了比赛",
    // 吸毒 xidu
    "西渡口的风景很美",
    "学习读书要有耐心",
    // 嗑药 keyao
    "可以要一杯热水吗",
    "颗颗药丸都要按时吃",
    // 贩毒 fandu
    "饭都做好了，快来吃",
    "饭都凉了还不回来",
    // 迷药 miyao
    "米要淘洗三遍再煮",
    "秘方的药材很难找",
    // 海洛因 hailuoyin
    "海螺音乐会今晚开始",
    // 三唑仑 sanzuolun
    "三座轮船停在港口",
    // 摇头丸 yaotouwan
    "要偷玩手机的孩子被抓到了",
    // 听话水 tinghuashui
    "听话说水果店明天打折",
    // 时时彩 shishicai
    "实时采集的数据有误",
    // 牛牛群 niuniuqun
    "牛牛去上学了",
    // 卖淫 maiyin
    "买音响要看品牌",
    // 裸聊 luoliao
    "落了一地的树叶",
    // 一夜情 yiyeqing
    "一夜晴朗，星星很亮",
    // 特殊服务 teshufuwu
    "特殊的服务窗口在一楼",
    // 包夜服务 baoyefuwu
    "包夜班的服务员很辛苦",
    // 黄色网站 huangsewangzhan
    "黄色的网站首页很刺眼",
    // 全能神 quannengshen
    "全能生的考核标准",
    // 枪械 qiangxie
    "墙斜了要请人修",
    // 炸药 zhayao
    "眨眼就过去了一年",
    // 军刺 junci
    "均此致意",
    // 管制刀具 guanzhidaoju
    "管子倒进去就行",
    // 代开发票 daikaifapiao
    "带开发区的朋友去吃饭",
    // 淘宝刷单 taobaoshuadan
    "淘宝上的东西很便宜",
    // 免费领取 mianfeilingqu
    "免费领养小猫",
    // 低价出售 dijiachushou
    "低价促销活动",
    // 高仿 gaofang
    "高房价让年轻人压力很大",
    // 私聊我 siliaowo
    "撕了我的作业本",
    // 扫码进群 saomajinqun
    "扫马路的阿姨很辛苦",
    // 兼职日结 jianzhirijie
    "剪纸日记本",
    // 弱智 ruozhi
    "若是你愿意就来吧",
    // 残废 canfei
    "参会的人都到了",
    // 杂种 zazhong
    "他被石头砸中了脚",
    // 婊子 biaozi
    "标志牌写着禁止停车",
    // 去死 qusi
    "趣事一件接一件",
    // 白痴 baichi
    "摆出一副无所谓的样子",
    // 贱人 jianren
    "建人行天桥要审批",
    // 废物 feiwu
    "非物质文化遗产",
    // 畜生 chusheng
    "出声提醒一下他",
    // 傻逼 shabi
    "沙壁上长满了青苔",
    // More everyday sentences with the same sound-alikes in other contexts.
    "她是个很坚韧的人",
    "他在公司兼任财务",
    "雪花在空中飞舞",
    "今天白吃了一顿饭",
    "打麻将三缺一，快来",
    "服务态度有待提高",
    "态度决定一切",
    "春天冻土开始融化",
    "列强瓜分中国的历史",
    "宫女们排成一队走过来",
    "电脑病毒已经清除了",
    "注意预防病毒性肝炎",
    "他出生于一九九零年",
    "近年出生率下降了",
    "江都的早茶很有名",
    "刚度和强度都要算",
    "买菠菜送葱",
    "电机转速太快了",
    "现在纸张也涨价了",
    "密钥过期了要重新申请",
    "远郊的房价便宜一些",
    "门窗漏风要修一下",
    "餐费我先垫付了",
    "初生婴儿要注意保暖",
    "小区大妈组织了义卖",
    "大妈们在公园下棋",
];

#[test]
fn ordinary_sentences_with_sound_alikes_of_shipped_terms_are_not_flagged() {
    assert!(ORDINARY.len() >= 200, "{} sentences", ORDINARY.len());
    let e = engine();
    let flagged: Vec<String> = ORDINARY
        .iter()
        .filter_map(|text| {
            let v = e.screen(&msg(text));
            (!v.hits.is_empty()).then(|| {
                let hits: Vec<_> = v.hits.iter().map(|h| (&*h.rule, h.text.as_str())).collect();
                format!("{text}: {hits:?}")
            })
        })
        .collect();
    assert!(
        flagged.is_empty(),
        "{} of {} flagged:\n{}",
        flagged.len(),
        ORDINARY.len(),
        flagged.join("\n")
    );
}

/// (case, text, expected hits as (rule, kind, original substring)).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, MatchKind, &'static str)],
);

#[test]
fn deliberate_sound_alikes_and_romanised_spellings_are_still_caught() {
    use MatchKind::*;
    let cases: &[Case] = &[
        (
            "homophone that is no word",
            "代开发飘找我",
            &[("ads:代开发票", Pinyin, "代开发飘")],
        ),
        (
            "variant character",
            "枪枝出售",
            &[("weapons:枪支", Pinyin, "枪枝")],
        ),
        (
            "homophone of 微",
            "加薇信聊",
            &[("ads:加微信", Pinyin, "加薇信")],
        ),
        (
            "romanised",
            "dai kai fa piao",
            &[("ads:代开发票", Pinyin, "dai kai fa piao")],
        ),
        (
            "romanised word",
            "有bing du吗",
            &[("drugs:冰毒", Pinyin, "bing du")],
        ),
        (
            "romanised across punctuation",
            "bing. du",
            &[("drugs:冰毒", Pinyin, "bing. du")],
        ),
        (
            "spelt out with a break in every gap",
            "代.开.发.飘",
            &[("ads:代开发票", Pinyin, "代.开.发.飘")],
        ),
        ("literal term", "出冰毒", &[("drugs:冰毒", Term, "冰毒")]),
        // A variant spelling that is itself a dictionary word would be explained away as a
        // sound-alike, so the pack lists it as a term of its own.
        (
            "variant spelling listed as a term",
            "你这个畜牲",
            &[("insult:畜牲", Term, "畜牲")],
        ),
        (
            "one hit per rule for overlapping term and pinyin spans",
            "出售仿真枪",
            &[("weapons:仿真枪", Term, "仿真枪")],
        ),
    ];
    screening::check(engine(), cases);
}

/// Terms of one pack that sound the same (傻逼, 煞笔: shabi) share a pattern; each is judged on
/// its own characters, whichever comes first in the pack, and the hit names the term the span
/// keeps most of.
#[test]
fn terms_that_sound_alike_are_each_judged_on_their_own_characters() {
    use MatchKind::*;
    let cases: &[Case] = &[
        (
            "keeps a character of the second term only",
            "你真煞比",
            &[("insult:煞笔", Pinyin, "煞比")],
        ),
        (
            "keeps a character of the first term only",
            "你真傻比",
            &[("insult:傻逼", Pinyin, "傻比")],
        ),
        ("keeps neither", "你真沙币", &[]),
        (
            "the second term itself",
            "你真煞笔",
            &[("insult:煞笔", Term, "煞笔")],
        ),
    ];
    for terms in ["\"傻逼\", \"煞笔\"", "\"煞笔\", \"傻逼\""] {
        let pack = format!(
            "category = \"insult\"\naction = \"review\"\npinyin = true\nwords = [{terms}]\n"
        );
        let e = screening::engine_of(&[("insult", &pack)]);
        screening::check(&e, cases);
        // A tie (one character of each, or romanised) is named by the pack's earlier term.
        let first = terms.split('"').nth(1).unwrap();
        for (text, span) in [("你真傻笔", "傻笔"), ("你真shabi", "shabi")] {
            let got: Vec<(String, MatchKind, String)> = e
                .screen(&msg(text))
                .hits
                .iter()
                .map(|h| (h.rule.to_string(), h.kind, h.text.to_string()))
                .collect();
            let want = vec![(format!("insult:{first}"), Pinyin, span.to_string())];
            assert_eq!(got, want, "{terms}: {text}");
        }
    }
}

#[test]
fn dropped_matches_are_explained_on_the_verdict() {
    // (text, expected suppressions as (rule, kind, original substring, reason, by))
    type Want = (
        &'static str,
        MatchKind,
        &'static str,
        SuppressedBy,
        Option<&'static str>,
    );
    let table: &[(&str, &[Want])] = &[
        (
            "周末在溜冰场，买了大麻花",
            &[
                (
                    "drugs_review:溜冰",
                    MatchKind::Term,
                    "溜冰",
                    SuppressedBy::Allow,
                    Some("溜冰场"),
                ),
                (
                    "drugs:大麻",
                    MatchKind::Term,
                    "大麻",
                    SuppressedBy::Allow,
                    Some("大麻花"),
                ),
            ],
        ),
        (
            "社区预防病毒",
            &[(
                "drugs:冰毒",
                MatchKind::Pinyin,
                "病毒",
                SuppressedBy::Lexicon,
                Some("病毒"),
            )],
        ),
        (
            "我们去四川玩",
            &[(
                "insult:去死",
                MatchKind::Pinyin,
                "去四",
                SuppressedBy::Lexicon,
                Some("四川"),
            )],
        ),
        (
            "房子大吗",
            &[(
                "drugs:大麻",
                MatchKind::Pinyin,
                "大吗",
                SuppressedBy::Lexicon,
                Some("吗"),
            )],
        ),
        (
            "谢谢关照。代理的事再说",
            &[(
                "ads:招代理",
                MatchKind::Pinyin,
                "照。代理",
                SuppressedBy::Sentence,
                None,
            )],
        ),
        // A repeat folded across a break (开，开) does not join two sentences into a term.
        (
            "我来代开，开发票的事明天说",
            &[(
                "ads:代开发票",
                MatchKind::Pinyin,
                "代开，开发票",
                SuppressedBy::Sentence,
                None,
            )],
        ),
        ("今天天气不错", &[]),
    ];
    let e = engine();
    for (text, want) in table {
        let v = e.screen(&msg(text));
        assert_eq!(v.action, Action::Allow, "{text}: {v:?}");
        assert!(v.hits.is_empty(), "{text}: {v:?}");
        let got: Vec<String> = v
            .suppressed
            .iter()
            .map(|s| {
                assert_eq!(
                    &text[s.start..s.end],
                    s.text,
                    "{text}: offsets slice the original"
                );
                let by = s.by.as_deref();
                format!("{:?}", (&*s.rule, s.kind, s.text.as_str(), s.reason, by))
            })
            .collect();
        let want: Vec<String> = want.iter().map(|w| format!("{w:?}")).collect();
        assert_eq!(got, want, "{text}");
    }
    // Folded repeats and sentence breaks, (text, rule, the hit's text or None for no hit):
    // a repeat folded across a break at a span's edge leaves the part on the term's side (as
    // long as it keeps the term's own repeats: 时时彩 has two); punctuation between every
    // character is a term spelt out; romanised spellings are never judged by breaks; a
    // character that normalises to two (ⅱ, ⅲ, ﬀ) folds without a gap between its halves.
    let folds: &[(&str, &str, Option<&str>)] = &[
        ("出售仿真枪，枪枝弹药齐全", "weapons:枪支", Some("枪枝")),
        ("我要枪枝，枝", "weapons:枪支", Some("枪枝")),
        ("枪，枪，枪枝", "weapons:枪支", Some("枪枝")),
        ("诗诗彩", "gambling:时时彩", Some("诗诗彩")),
        ("诗，诗彩", "gambling:时时彩", None),
        ("诗.诗.彩", "gambling:时时彩", Some("诗.诗.彩")),
        ("代.开.开.发.飘", "ads:代开发票", Some("代.开.开.发.飘")),
        (
            "d.a.i.k.a.a.i.f.a.p.i.a.o",
            "ads:代开发票",
            Some("d.a.i.k.a.a.i.f.a.p.i.a.o"),
        ),
        ("daikai，ifapiao", "ads:代开发票", Some("daikai，ifapiao")),
        ("qⅲangzhi", "weapons:枪支", Some("qⅲangzhi")),
        ("daikaⅱfapiao", "ads:代开发票", Some("daikaⅱfapiao")),
        ("daikaiﬀapiao", "ads:代开发票", Some("daikaiﬀapiao")),
    ];
    for &(text, rule, span) in folds {
        let v = e.screen(&msg(text));
        let hit = v.hits.iter().find(|h| h.rule == rule);
        assert_eq!(hit.map(|h| h.text.as_str()), span, "{text}: {v:?}");
        for h in &v.hits {
            assert_eq!(
                &text[h.start..h.end],
                h.text,
                "{text}: offsets slice the original"
            );
        }
    }
    // On the wire: the reason and what dropped it.
    let v = e.screen(&msg("买了大麻花"));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(
        json["suppressed"][0],
        serde_json::json!({"rule": "drugs:大麻", "category": "drugs", "kind": "term",
            "start": 6, "end": 12, "text": "大麻", "reason": "allow", "by": "大麻花"})
    );
    let clean = serde_json::to_string(&e.screen(&msg("你好"))).unwrap();
    assert!(!clean.contains("suppressed"), "{clean}");
}
