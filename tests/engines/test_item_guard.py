"""ItemGuard: which next pieces would go on with a list after an item that repeats an earlier one."""

from knowlm.engines.constrain import ItemGuard


def fed(*pieces: str) -> ItemGuard:
    guard = ItemGuard()
    for piece in pieces:
        guard.feed(piece)
    return guard


def test_a_repeated_object_may_close_its_list_but_not_go_on():
    guard = fed('{"a": [', '{"head": "X", "tail": "Y"}', ", ", '{"head": "X", "tail": "Z"}, ')
    assert guard.watching
    guard.feed('{"head": "X", "tail": "Y"')
    assert not guard.refuses("}")  # writing the repeat itself is allowed
    assert not guard.refuses("}]")
    assert guard.refuses("}, ") and guard.refuses("},")  # one token may close the item and go on
    guard.feed("}")
    assert guard.refuses(", ") and not guard.refuses("]") and not guard.refuses('], "b": [')


def test_a_new_item_lets_the_list_go_on_and_each_list_keeps_its_own_items():
    guard = fed('{"a": ["X", "Y"', ", ")
    assert not guard.refuses('"Z", ')
    assert guard.refuses('"X", ')
    guard.feed('"X"], "b": [')
    assert not guard.watching  # the new list has no item yet
    assert not guard.refuses('"X", ')  # "X" was in the other list


def test_strings_with_quotes_commas_and_brackets_are_read_as_text():
    guard = fed('{"a": ["say \\"hi, [x]\\""')
    assert not guard.refuses(", ")
    guard.feed(', "say \\"hi, [x]\\""')
    assert guard.refuses(", ")
    assert not guard.refuses("]")


def test_a_trial_does_not_change_the_guard():
    guard = fed('{"a": ["X"')
    assert not guard.refuses(', "Z", ') and guard.refuses(', "X", "Y"')
    assert guard.text == '{"a": ["X"' and guard.stack[-1].items == {'"X"'}  # "Z" was only tried
