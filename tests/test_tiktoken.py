"""gpt2c's encoder gives tiktoken's ids, string for string, on thousands of strings.

The corpus mixes hand-written text in many scripts with strings generated (fixed seed) from every
general category of Unicode, white space of every kind, contractions in every case, digits, code,
and long runs of one character. tok_batch also checks decode(encode(s)) == s for each string.
"""
import random
import unicodedata

import pytest
from conftest import ROOT

SENTENCES = [
    "Hello, I'm a language model, and I can't stop talking!",
    "The quick brown fox jumps over the lazy dog. 1234567890",
    "Élève, garçon, œuvre, naïve façade — déjà vu à Noël.",
    "Größenwahnsinnige Straßenbahnfahrer äußern Übermut.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम",
    "我能吞下玻璃而不伤身体。天地玄黄，宇宙洪荒。",
    "いろはにほへと ちりぬるを カタカナ ｶﾀｶﾅ 漢字かな交じり文",
    "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다.",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "ሰማይ አይታረስ ንጉሥ አይከሰስ።",
    "Գրաբար, ქართული ენა, ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ, ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ, ꦧꦱꦗꦮ",
    "தமிழ் மொழி, తెలుగు భాష, ಕನ್ನಡ, മലയാളം, ගෙදර, བོད་ཡིག",
    "Tiếng Việt có dấu: Thủ đô Hà Nội, người Việt Nam.",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝒜𝓁𝓅𝒽𝒶 𝟙𝟚𝟛 ℕℤℚℝℂ",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇺🇸🇯🇵 ❤️‍🔥 🧑🏿‍🚀 #️⃣ ✌🏻",
    "Zalgo: Z̷̢̛a̵̛͜l̶̨͝g̴̡̛o̸̢͝ t̵̨̛e̴̢͝x̷̡͘t̶̨͝",
    "Numbers: ½ ¾ ⅓ Ⅻ ⅻ ① ⑳ ٣٤٥ ४५६ ๑๒๓ 𝟘𝟡 ²³ ₁₂",
    "Invisible: a\u200bb\u200cc\u200dd\u2060e\ufefff\u00adg",
    "Bidi: abc \u202eRLO\u202c \u2067iso\u2069 \u200fmark",
    "Quotes ‘single’ “double” «guillemets» „low“ ‹angle›",
    "I'm you're he's she'd we'll they've it's 'tis o'clock rock'n'roll",
    "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE IT'S DON'T",
    "I'm You'Re He'S She'D We'Ll They'vE It's Don'T",
    "I’m you’re he’s — curly apostrophes are not contractions",
    "'s 't 're 've 'm 'll 'd '' ''' 's's 'S 'T 'RE 'Ve 'LL",
    "<|endoftext|> is ordinary text here, <|endoftext|><|endoftext|>",
    "def f(x):\n    return {'a': [1, 2.5e-3, None], \"b\": x ** 2}  # comment\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "SELECT * FROM users WHERE id = 1 AND name LIKE '%o''brien%';",
    "https://example.com/path?query=1&x=%20#frag user@example.org",
    "$ git commit -m 'fix: off-by-one' && ./build/gpt2c --help | less",
    "3.14159 2,718 1e10 0x1F 0b1010 -42 +7 1_000_000 12:30:45 2026-11-23",
    "    indented\n        more\n\t\ttabs\n\r\nwindows\r\nline endings\r\n",
    "trailing spaces   \nand more   ",
    "   leading spaces",
    "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u0085g\u1680h\u202fi\u205fj",
]

WHITE_SPACE = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680", "\u2000", "\u2001",
               "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009",
               "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
# characters that look like space but are not White_Space
NOT_SPACE = ["\u180e", "\u200b", "\u2060", "\ufeff", "\x1c", "\x1d", "\x1e", "\x1f"]


def category_pools():
    """Assigned code points by general category, from the Unicode database of this Python."""
    pools = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        cat = unicodedata.category(chr(cp))
        if cat not in ("Cn", "Cs"):
            pools.setdefault(cat, []).append(chr(cp))
    return pools


def generated_strings(rng):
    pools = category_pools()
    cats = sorted(pools)
    ascii_bits = ["a", "Z", "the", " ", "  ", "1", "42", "!", "'s", "'", "\n", "\t", ".", "-", "_"]
    out = []
    for cat in cats:  # every category, alone and mixed with ASCII
        for _ in range(40):
            n = rng.randint(1, 12)
            parts = [rng.choice(pools[cat]) if rng.random() < 0.6 else rng.choice(ascii_bits)
                     for _ in range(n)]
            out.append("".join(parts))
    for _ in range(1500):  # anything with anything
        n = rng.randint(1, 30)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.4:
                parts.append(rng.choice(pools[rng.choice(cats)]))
            elif r < 0.6:
                parts.append(rng.choice(WHITE_SPACE + NOT_SPACE))
            else:
                parts.append(rng.choice(ascii_bits))
        out.append("".join(parts))
    for ws in WHITE_SPACE + NOT_SPACE:  # white space runs before words, numbers, punctuation, end
        for n in (1, 2, 3, 7):
            for after in ("", "word", "123", "!?", " x", "\n", "é"):
                out.append("x" + ws * n + after)
                out.append(ws * n + after)
                out.append("x " + ws * n + after)
    for word in ("s", "t", "re", "ve", "m", "ll", "d", "S", "T", "RE", "Re", "rE", "VE", "M", "LL", "Ll", "D", "x"):
        for before in ("", "I", "you", " ", "1", "!", "'", "é"):
            for after in ("", " ", "a", "1", "!", "'s"):
                out.append(before + "'" + word + after)
    return out


def long_runs():
    return ["a" * 100_000, " " * 100_000, "1" * 20_000, "!" * 20_000, "\n" * 10_000,
            "é" * 10_000, "😀" * 5_000, "ab" * 30_000, " a" * 20_000, "\t \n" * 5_000,
            "の" * 10_000, "x" + " " * 50_000 + "y", "'s" * 10_000, "\u0301" * 5_000]


def corpus():
    rng = random.Random(1337)
    strings = list(SENTENCES)
    strings += [unicodedata.normalize(form, s) for s in SENTENCES for form in ("NFD", "NFKC")]
    strings += generated_strings(rng)
    strings += long_runs()
    return strings


def test_corpus_matches_tiktoken(tiktoken_gpt2, gpt2c_encode_batch):
    strings = corpus()
    assert len(strings) > 3000
    theirs = tiktoken_gpt2.encode_ordinary_batch(strings, num_threads=2)
    ours = gpt2c_encode_batch([s.encode() for s in strings])
    bad = [(s[:40], t[:12], o[:12]) for s, t, o in zip(strings, theirs, ours) if t != o]
    assert not bad, "%d of %d strings differ, e.g. %r" % (len(bad), len(strings), bad[:5])


def test_tiny_shakespeare_matches_tiktoken(tiktoken_gpt2, gpt2c_encode_batch):
    text = (ROOT / "data/tinyshakespeare/input.txt").read_text()
    theirs = tiktoken_gpt2.encode_ordinary(text)
    (ours,) = gpt2c_encode_batch([text.encode()])
    assert len(theirs) == 338025
    assert ours == theirs


def test_known_ids(gpt2c_encode_batch):
    # from the released GPT-2's tokenizer, the lecture's prompt
    (ids,) = gpt2c_encode_batch([b"Hello, I'm a language model,"])
    assert ids == [15496, 11, 314, 1101, 257, 3303, 2746, 11]


def test_endoftext_is_ordinary_text(gpt2c_encode_batch):
    (ids,) = gpt2c_encode_batch([b"<|endoftext|>"])
    assert 50256 not in ids and ids == [27, 91, 437, 1659, 5239, 91, 29]


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_round_trip(seed, gpt2c_encode_batch):
    """Any bytes, valid UTF-8 or not, survive encode then decode (tok_batch --roundtrip checks)."""
    rng = random.Random(seed)
    alphabet = [bytes([b]) for b in range(256)] + [b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80",
                                                    b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                                                    b"\xe0\x80\x80", b" ", b"a", b"'s", b"\n"]
    strings = [b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(2000)]
    ids = gpt2c_encode_batch(strings)
    assert all(all(0 <= i < 50256 for i in x) for x in ids)


def test_valid_utf8_inside_invalid_bytes_matches_tiktoken_on_the_valid_parts(tiktoken_gpt2,
                                                                               gpt2c_encode_batch):
    """An invalid byte is one 'other' character: text around it tokenizes as tiktoken would
    tokenize the same text with U+FFFD-like punctuation in its place, byte for byte apart from it."""
    (ids,) = gpt2c_encode_batch([b"hello \xff world"])
    # " \xff" is a space plus an 'other' character, one piece; "hello" and " world" as usual
    assert ids[0] == tiktoken_gpt2.encode_ordinary("hello")[0]
    assert ids[-1] == tiktoken_gpt2.encode_ordinary(" world")[0]
