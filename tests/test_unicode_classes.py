"""Every code point's pre-tokenizer class agrees with tiktoken's regex engine.

For each code point X we ask tiktoken whether "aX", "1X" and "!X" are one piece, that is
whether X continues a run of letters (\\p{L}), of numbers (\\p{N}) or of other characters
([^\\s\\p{L}\\p{N}]); the three are exclusive and white space is none of them. Piece boundaries
are invisible in GPT-2's own ids, so tiktoken is given a vocabulary made for the question: the
256 bytes plus "c" + every prefix of X's UTF-8 bytes, for each context c. BPE then turns a piece
"cX" into a single token exactly when it is one piece. gpt2c's pre-tokenizer answers the same
question directly (tests/tok_batch --pieces).
"""
import os

import pytest

CONTEXTS = (b"a", b"1", b"!")
PLANE = 0x10000


def code_points(plane):
    for cp in range(plane * PLANE, (plane + 1) * PLANE):
        if not 0xD800 <= cp <= 0xDFFF:  # surrogates have no UTF-8 form
            yield cp


def probe_encoding(plane):
    import tiktoken

    ranks = {bytes([b]): b for b in range(256)}
    for ctx in CONTEXTS:
        for cp in code_points(plane):
            x = chr(cp).encode()
            for k in range(1, len(x) + 1):
                ranks.setdefault(ctx + x[:k], len(ranks))
    from tiktoken_ext.openai_public import r50k_pat_str

    return ranks, tiktoken.Encoding(name="probe", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                    special_tokens={})


@pytest.mark.parametrize("plane", range(17))
def test_every_code_point_class(plane, gpt2c_pieces_batch):
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    ranks, enc = probe_encoding(plane)
    strings = [ctx + chr(cp).encode() for cp in code_points(plane) for ctx in CONTEXTS]
    # one encode_ordinary call a string: encode_ordinary_batch hands each string to a thread pool
    # as its own future, which costs ten times the encoding itself (tiktoken 0.14: 3 s a plane
    # against 0.25 s); the answers are the same calls' either way
    theirs = [enc.encode_ordinary(s.decode()) for s in strings]
    ours = gpt2c_pieces_batch(strings)
    mismatches = []
    for s, t, o in zip(strings, theirs, ours):
        tiktoken_one_piece = t == [ranks[s]]
        gpt2c_one_piece = o == [len(s)]
        if tiktoken_one_piece != gpt2c_one_piece:
            mismatches.append("U+%04X after %r: tiktoken %s, gpt2c %s" % (
                ord(s[1:].decode()), s[:1].decode(), tiktoken_one_piece, gpt2c_one_piece))
    assert not mismatches, "%d code points differ, e.g. %s" % (len(mismatches), mismatches[:10])


def test_tables_are_what_the_generator_makes():
    """src/tokenizer/unicode_tables.c is the output of scripts/gen_unicode_tables.py with the
    pinned Unicode database, not hand-edited."""
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, str(ROOT / "scripts/gen_unicode_tables.py")],
                         capture_output=True, check=True)
    assert out.stdout == (ROOT / "src/tokenizer/unicode_tables.c").read_bytes()
