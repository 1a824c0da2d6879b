"""Prompt wording (model-io.md, verbatim), message layout, task routing and input checks."""

from __future__ import annotations

import pytest

from mimo_embodied_ros.core.prompts import (
    NO_THINK_SUFFIX,
    ROUTING_RULES,
    SYSTEM_PROMPT,
    Task,
    answer_prompt,
    build_messages,
    build_task_text,
    check_instruction,
    choice_prompt,
    choose_task,
    detection_prompt,
    plan_prompt,
    pointing_prompt,
    region_prompt,
    visibility_question,
)

# Copied from model-io.md, with <REF> where the description goes.
OFFICIAL_POINTING = (
    'Based on the description: "<REF>", locate points matching the description. Output a JSON in '
    'the format [{"points": [...], "label": "{the_whole_description}"}, ...].'
)
# MiMo-VL's grounding (box) prompt, copied from model-io.md: note the trailing space.
OFFICIAL_GROUNDING = (
    'Based on the description: "<REF>", locate all regions matching the description. Output a '
    'JSON in the format [{"bbox_2d": [...], "label": "{the_whole_description}"}, ...]. '
)


def test_constants_are_the_official_strings() -> None:
    assert SYSTEM_PROMPT == "You are a helpful assistant."
    assert NO_THINK_SUFFIX == " /no_think"
    tasks = ["point", "detect", "choice", "plan", "answer", "region"]
    assert [task.value for task in Task] == tasks
    assert Task("point") is Task.POINT


def test_pointing_prompt_is_verbatim() -> None:
    assert pointing_prompt("the handle of the mug") == OFFICIAL_POINTING.replace(
        "<REF>", "the handle of the mug"
    )


def test_pointing_prompt_strips_whitespace_and_replaces_double_quotes() -> None:
    prompt = pointing_prompt('  the "red" cup\n')
    assert prompt == OFFICIAL_POINTING.replace("<REF>", "the 'red' cup")
    # Exactly the template's own quotes remain around the reference.
    assert prompt.count('"') == OFFICIAL_POINTING.count('"')


def test_pointing_prompt_keeps_other_characters_verbatim() -> None:
    description = "Identify several points of the car headlights {x} \\n ünïcode"
    assert pointing_prompt(description) == OFFICIAL_POINTING.replace("<REF>", description)


def test_grounding_prompt_is_mimo_vl_verbatim_with_trailing_space() -> None:
    assert detection_prompt("the red mug") == OFFICIAL_GROUNDING.replace("<REF>", "the red mug")
    assert detection_prompt("the red mug").endswith("...]. ")


def test_grounding_prompt_replaces_double_quotes_and_is_no_project_prompt() -> None:
    prompt = detection_prompt('  the "big" box ')
    assert prompt == OFFICIAL_GROUNDING.replace("<REF>", "the 'big' box")
    assert prompt.count('"') == OFFICIAL_GROUNDING.count('"')
    assert detection_prompt.__doc__ is not None and "MiMo-VL" in detection_prompt.__doc__
    assert "defined by this project" not in detection_prompt.__doc__


def test_build_task_text_detection_is_the_grounding_prompt() -> None:
    text = build_task_text(Task.DETECT, "the cups", think=True)
    assert text == OFFICIAL_GROUNDING.replace("<REF>", "the cups")


def test_choice_prompt_appends_boxed_instruction_with_literal_backslash() -> None:
    prompt = choice_prompt(" Is the drawer open? ")
    assert prompt == "Is the drawer open?\nPut your final answer in \\boxed{}."
    assert "\\boxed{}" in prompt and "\x08" not in prompt
    assert choice_prompt(prompt) == prompt  # not appended twice


def test_plan_and_answer_prompts_keep_the_users_words() -> None:
    goal = plan_prompt("put the apple in the bowl")
    assert "put the apple in the bowl" in goal
    assert "What is the immediate next step?" in goal and "numbered list" in goal
    question = plan_prompt("What should the robot do next?")
    assert question.startswith("What should the robot do next?\n")
    assert answer_prompt("  What colour is the cup? ") == "What colour is the cup?"


@pytest.mark.parametrize("task", list(Task))
def test_build_task_text_think_and_no_think(task: Task) -> None:
    thinking = build_task_text(task, "the cup", think=True)
    fast = build_task_text(task.value, "the cup", think=False)
    assert not thinking.endswith(NO_THINK_SUFFIX)
    assert fast == thinking + NO_THINK_SUFFIX
    assert "the cup" in thinking


def test_build_task_text_rejects_auto_unknown_and_empty() -> None:
    with pytest.raises(ValueError):
        build_task_text("auto", "the cup", think=True)
    with pytest.raises(ValueError):
        build_task_text(Task.POINT, "   ", think=True)


def test_build_task_text_pointing_no_think_is_official_prompt_plus_suffix() -> None:
    text = build_task_text(Task.POINT, "the lid of the pot", think=False)
    assert text == OFFICIAL_POINTING.replace("<REF>", "the lid of the pot") + " /no_think"


@pytest.mark.parametrize("num_images", [0, 1, 3])
def test_build_messages_images_first_text_last(num_images: int) -> None:
    messages = build_messages("task text", num_images)
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
    assert messages[1]["role"] == "user"
    content = messages[1]["content"]
    assert content[:num_images] == [{"type": "image"}] * num_images
    assert content[-1] == {"type": "text", "text": "task text"}
    assert len(content) == num_images + 1
    assert len(messages) == 2


def test_build_messages_image_entries_are_independent_dicts() -> None:
    content = build_messages("t", 2)[1]["content"]
    content[0]["image"] = "payload"  # a backend filling in one image
    assert content[1] == {"type": "image"}


def test_build_messages_rejects_negative_count() -> None:
    with pytest.raises(ValueError):
        build_messages("t", -1)


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("Draw a bounding box around the mug", Task.DETECT),
        ("detect all chairs", Task.DETECT),
        ("draw a bounding box around the mug you would pick", Task.DETECT),
        ("draw a 3D bounding box around the mug", Task.DETECT),
        ("detect the cups", Task.DETECT),
        ("give me the 3d box of the chair", Task.DETECT),
        ("draw boxes on the cups", Task.DETECT),
        ("find the bounding box of the remote", Task.DETECT),
        ("Where is the bed?", Task.POINT),
        ("find the remote", Task.POINT),
        ("Locate the fridge", Task.POINT),
        ("where's my phone", Task.POINT),
        ("the cardboard box", Task.POINT),  # a box as an object, not a request for boxes
        ("Where is the box?", Task.POINT),
        ("point to the cup", Task.POINT),
        ("Where can I place the plate?", Task.POINT),
        ("grasp the handle of the mug", Task.POINT),
        ("put the apple in the box", Task.POINT),
        ("find the handle", Task.POINT),
        ("point out and find the bed", Task.POINT),
        ("affordance of the knife", Task.POINT),
        ("I want to sleep", Task.POINT),
        ("the red cup", Task.POINT),
        ("Which is closer?\n(A) the cup\n(B) the bowl", Task.CHOICE),
        ("Pick the right one:\nA. left\nB. right", Task.CHOICE),
        ("Is there a box on the table?", Task.CHOICE),
        ("Are there any people in the room?", Task.CHOICE),
        ("Does the drawer look open?", Task.CHOICE),
        ("Look at the shelf. Can you see a handle?", Task.CHOICE),
        ("What is the next step?", Task.PLAN),
        ("Plan how to clear the table", Task.PLAN),
        ("How do I pick up the cup?", Task.PLAN),
    ],
)
def test_choose_task(instruction: str, expected: Task) -> None:
    assert choose_task(instruction) is expected


@pytest.mark.parametrize(
    "instruction", ["find the mug", "where is the bowl?", "where are the keys", "locate the cup"]
)
def test_find_and_where_route_to_the_official_pointing_prompt(instruction: str) -> None:
    assert choose_task(instruction) is Task.POINT
    fired = next(
        rule for rule in ROUTING_RULES
        if len(rule.pattern.findall(instruction)) >= rule.min_matches
    )
    assert fired.task is Task.POINT and "pointing prompt" in fired.why


@pytest.mark.parametrize(
    "instruction", ["draw a 3D bounding box around the mug", "detect the cups"]
)
def test_explicit_box_requests_route_to_detect(instruction: str) -> None:
    assert choose_task(instruction) is Task.DETECT
    assert build_task_text(choose_task(instruction), "the mug", think=True).startswith(
        'Based on the description: "the mug", locate all regions'
    )


def test_routing_table_is_ordered_and_documented() -> None:
    assert all(rule.why for rule in ROUTING_RULES)
    tasks = [rule.task for rule in ROUTING_RULES]
    # Explicit box words beat yes/no and pointing words; yes/no beats pointing words.
    assert tasks.index(Task.DETECT) < tasks.index(Task.POINT)
    assert tasks.index(Task.CHOICE) < tasks.index(Task.POINT)
    # "plant" is not a plan, a single "A." line is not a list of options.
    assert choose_task("water the plant") is Task.POINT
    assert choose_task("A. go to the kitchen") is Task.POINT


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("", "empty"),
        (" \n\t ", "empty"),
        ("x" * 11, "limit is 10"),
        ("caf\ufffd", "U+FFFD"),
        ("bad \ud800 x", "surrogate"),
        ("nul\x00", "control"),
        ("bell\x07", "control"),
        ("cr\rlf", "control"),
        ("del\x7f", "control"),
        ("c1\x85", "control"),
        (b"bytes", "must be text"),
    ],
)
def test_check_instruction_rejects(text: object, reason_part: str) -> None:
    reason = check_instruction(text, max_chars=10)
    assert reason is not None and reason_part in reason


@pytest.mark.parametrize("text", ["pick\tthe\ncup", "x" * 10, "tasse à café ☕"])
def test_check_instruction_accepts(text: str) -> None:
    assert check_instruction(text, max_chars=14) is None


def test_check_instruction_on_decoded_bad_bytes() -> None:
    decoded = b"grasp the \xff\xfe cup".decode("utf-8", errors="replace")
    assert "U+FFFD" in (check_instruction(decoded, max_chars=100) or "")
    escaped = b"grasp the \xff cup".decode("utf-8", errors="surrogateescape")
    assert "surrogate" in (check_instruction(escaped, max_chars=100) or "")


def test_region_prompt_quotes_the_instruction_and_asks_for_point_label_and_target() -> None:
    text = region_prompt('  I want to "sleep"  ')
    assert 'Instruction: "I want to \'sleep\'".' in text
    assert text.startswith("This is a top-down map")
    assert '"label": "<region name>", "target": "<object to look for>"}]' in text
    assert build_task_text(Task.REGION, "I want to sleep", think=False).endswith(NO_THINK_SUFFIX)


def test_visibility_question_is_a_yes_no_choice_question() -> None:
    assert visibility_question(" bed ") == "Is there a bed in the image?"
    assert choose_task(visibility_question("fridge")) is Task.CHOICE
    with pytest.raises(ValueError):
        visibility_question("  ")
