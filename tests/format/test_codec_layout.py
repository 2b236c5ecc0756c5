import numpy as np
import pytest

from yue_train.format import codec_layout as cl


def test_offsets_follow_the_spec():
    codes = np.array([[0, 1023], [0, 5], [7, 7], [0, 0], [0, 0], [0, 0], [0, 0], [1023, 0]])
    ids = cl.codes_to_ids(codes)
    assert ids[0].tolist() == [45334, 46357]  # stage 1: codebook 0 ids 45,334-46,357
    assert ids[1].tolist() == [46358, 46363]
    assert ids[7, 0] == 53525  # highest stage-2 id
    assert np.array_equal(cl.ids_to_codes(ids), codes)


def test_range_errors_name_the_value():
    with pytest.raises(cl.CodecRangeError, match="code 1024 at index \\(0, 1\\)"):
        cl.codes_to_ids(np.array([[3, 1024]]))
    with pytest.raises(cl.CodecRangeError, match="-1"):
        cl.codes_to_ids(np.array([[-1]]))
    with pytest.raises(cl.CodecRangeError, match="not a codebook-1 id"):
        cl.ids_to_codes(np.array([[45334], [45334]]))
    with pytest.raises(cl.CodecRangeError, match="2-D"):
        cl.codes_to_ids(np.array([1, 2]))


def test_interleave_is_vocal_first_and_inverts():
    v, i = np.array([1, 2, 3]), np.array([10, 20, 30])
    dual = cl.interleave(v, i)
    assert dual.tolist() == [1, 10, 2, 20, 3, 30]
    back_v, back_i = cl.deinterleave(np.append(dual, 99))  # a trailing odd token is dropped
    assert back_v.tolist() == [1, 2, 3] and back_i.tolist() == [10, 20, 30]
    with pytest.raises(cl.CodecRangeError, match="differ in length"):
        cl.interleave(v, i[:2])


def test_flatten_frames_is_frame_major():
    ids = np.arange(6).reshape(2, 3)  # 2 codebooks, 3 frames
    flat = cl.flatten_frames(ids)
    assert flat.tolist() == [0, 3, 1, 4, 2, 5]
    assert np.array_equal(cl.unflatten_frames(flat, 2), ids)
    with pytest.raises(cl.CodecRangeError, match="whole number"):
        cl.unflatten_frames(flat[:5], 2)
