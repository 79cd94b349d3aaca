from tessy_core.predictors.base import TokenKind
from tessy_core.predictors.lexicon import LexiconPredictor

PREDICTOR = LexiconPredictor(["Okay, so", "Hmm", "let me", "Thus", "We need to"])


def test_first_style_phrase_in_a_teacher_chunk():
    chunk = " sum the values. Thus print"
    assert PREDICTOR.find_boundary_sync("", chunk, TokenKind.STYLE) == chunk.index(" Thus")


def test_first_capability_word_in_a_student_chunk():
    chunk = "Okay, so the sum"
    assert PREDICTOR.find_boundary_sync("", chunk, TokenKind.CAPABILITY) == chunk.index(" the")


def test_phrases_match_whole_words_only_and_ignore_case():
    assert PREDICTOR.find_boundary_sync("", " thusly we hmmm", TokenKind.STYLE) is None
    assert PREDICTOR.find_boundary_sync("", " a. thus", TokenKind.STYLE) == 3


def test_min_offset_skips_the_leading_word():
    chunk = "Thus compute. Thus"
    assert PREDICTOR.find_boundary_sync("", chunk, TokenKind.STYLE, min_offset=4) == chunk.rindex(" Thus")


def test_phrase_straddling_the_chunk_start_is_recognized():
    # "Okay, so" begins in the context: the chunk's " so" is style, capability starts at " we".
    assert PREDICTOR.find_boundary_sync("text. Okay,", " so we", TokenKind.CAPABILITY) == 3


def test_no_boundary_when_the_chunk_is_all_one_kind():
    assert PREDICTOR.find_boundary_sync("", "Hmm, let me", TokenKind.CAPABILITY) is None
