"""Does a server's prompt token count fit the images the node sent? (pure arithmetic)

Qwen2.5-VL turns a smart-resized W' x H' image into W' x H' / 784 tokens (14-pixel patches merged
2x2) between <|vision_start|> and <|vision_end|>. A server that resizes the image again (a smaller
pixel cap) reports a prompt of another size; nothing else in its answer says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mimo_embodied_ros.core.types import ImageSize

PIXELS_PER_IMAGE_TOKEN = 784  # (14 * 2) ** 2: one merged 2x2 patch group of 14-pixel patches
VISION_MARKERS_PER_IMAGE = 2  # <|vision_start|> and <|vision_end|>
TEMPLATE_SLACK_TOKENS = 64  # chat template tokens around the system prompt and task text


def image_tokens(size: ImageSize) -> int:
    """Prompt tokens one smart-resized image takes: W' x H' / 784 plus the two vision markers."""
    return size.width * size.height // PIXELS_PER_IMAGE_TOKEN + VISION_MARKERS_PER_IMAGE


def check_image_tokens(
    prompt_tokens: int,
    image_sizes: Sequence[ImageSize],
    text: str,
    max_pixels: int | None = None,
) -> str | None:
    """None when a server's prompt token count fits the images the node sent, else why not.

    ``text`` is the system prompt plus the task text. The tokens left after the expected image
    tokens must be more than 0 and at most its UTF-8 byte count plus the chat template's slack;
    otherwise the server processed the images at another size (it resized them again), and the
    message names the node's sizes, the size the server's count implies and the setting to change.
    """
    if not image_sizes:
        return None
    expected = sum(image_tokens(size) for size in image_sizes)
    text_bytes = len(text.encode("utf-8"))
    text_tokens = prompt_tokens - expected
    if 0 < text_tokens <= text_bytes + TEMPLATE_SLACK_TOKENS:
        return None
    # What the server's count implies: a rough text share (about 4 bytes a token plus the
    # template), the rest spread over the images by area, each keeping its aspect ratio.
    text_estimate = math.ceil(text_bytes / 4) + 12
    markers = VISION_MARKERS_PER_IMAGE * len(image_sizes)
    server_tokens = max(0, prompt_tokens - text_estimate - markers)
    total_area = sum(size.width * size.height for size in image_sizes)
    implied = []
    for size in image_sizes:
        area = server_tokens * PIXELS_PER_IMAGE_TOKEN * size.width * size.height / total_area
        scale = math.sqrt(area / (size.width * size.height))
        width = max(28, round(size.width * scale / 28) * 28)
        height = max(28, round(size.height * scale / 28) * 28)
        implied.append(f"{width}x{height}")
    sent = ", ".join(f"{s.width}x{s.height}" for s in image_sizes)
    cap = f'{{"max_pixels": {max_pixels}}}' if max_pixels else '{"max_pixels": <model.max_pixels>}'
    return (
        f"the server's prompt has {prompt_tokens} tokens, but the node sent {sent} "
        f"({expected - markers} image tokens) and at most "
        f"{text_bytes + TEMPLATE_SLACK_TOKENS} text tokens; the server's count means about "
        f"{server_tokens} image tokens, i.e. roughly {', '.join(implied)}: it resized the image "
        "again with another pixel cap, so its coordinates are in another frame. Start vLLM with "
        f"--mm-processor-kwargs '{cap}' (the node's cap), or set the node's model.max_pixels to "
        "the server's cap"
    )
