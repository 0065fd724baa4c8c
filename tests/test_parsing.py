from sprout.core.parsing import continued_items, parse_instances, parse_numbered_list, parse_yes_no


def test_numbered_list_from_a_literal_completion():
    reply = ("9. Suggest a name for a bakery.\n10) Explain why the sky is blue\n   in two sentences.\n"
             "**11.** Convert 3 miles to kilometres.\n\nSome chatter at the end")
    items = parse_numbered_list(reply)
    assert items == [(9, "Suggest a name for a bakery."),
                     (10, "Explain why the sky is blue in two sentences."),
                     (11, "Convert 3 miles to kilometres. Some chatter at the end")]


def test_list_continuation_stops_where_numbering_breaks_or_restarts():
    items = [(9, "a"), (10, "b"), (11, "c"), (1, "restart"), (12, "d")]
    assert continued_items(items, 9, 16) == ["a", "b", "c"]
    assert continued_items([(9, "a"), (9, "again")], 9, 16) == ["a"]
    assert continued_items([(10, "skipped 9")], 9, 16) == []
    assert continued_items([(15, "x"), (16, "y")], 15, 16) == ["x"]  # 16 is where the list must stop


def test_malformed_and_empty_replies_give_nothing():
    assert parse_numbered_list("") == []
    assert parse_numbered_list("I cannot think of any tasks.") == []
    assert parse_numbered_list("9.\n10.   \n") == []


def test_input_first_pairs():
    reply = "Input: 2 + 2\nOutput: 4\n\nInput: <noinput>\nOutput: Five is odd.\nInput: x"
    assert parse_instances(reply, "input_first") == [("2 + 2", "4"), ("", "Five is odd.")]
    six = "\n".join(f"Input: {i}\nOutput: {i * i}" for i in range(6))
    assert len(parse_instances(six, "input_first")) == 6  # every pair: capping them is a counted rule, not a slice
    assert parse_instances("Output: only an output", "input_first") == []


def test_output_first_pairs_come_back_as_input_output():
    reply = "Class label: Spam\nInput: You won a prize!\n\nClass label: **Ham**\nInput: Lunch at noon?"
    assert parse_instances(reply, "output_first") == [("You won a prize!", "Spam"), ("Lunch at noon?", "Ham")]
    assert parse_instances("Class label: Spam", "output_first") == []
    chatty = "Class label: Spam\nBecause it promises money.\nInput: Claim your reward now"
    assert parse_instances(chatty, "output_first") == [("Claim your reward now", "Spam\nBecause it promises money.")]


def test_yes_no_verdicts():
    assert parse_yes_no("Yes") is True
    assert parse_yes_no(" no.") is False
    assert parse_yes_no("**Yes**, it is") is True
    assert parse_yes_no("Task: Write the") is None
    assert parse_yes_no("Nope") is None
