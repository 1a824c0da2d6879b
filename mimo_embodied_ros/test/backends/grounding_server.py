"""A small OpenAI-compatible server that points at the red disk in the image it really processed.

It runs the tiny Qwen2.5-VL folder's REAL processor (chat template and image processor, with the
server's own pixel cap from the command line, as `vllm serve --mm-processor-kwargs` sets one), so
`usage.prompt_tokens` is the true count for the size the server resized the image to. Instead of
a model it answers a pointing prompt with the centroid of the saturated red pixels measured in
that resized image, in MiMo-Embodied's format. Like a server whose cap is fixed at start, it
ignores the request's `mm_processor_kwargs` (they are recorded in the answer's `x_received`).

Usage: python grounding_server.py MODEL_DIR --port PORT --max-pixels N [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import base64
import http.server
import io
import json
import re
import sys

import numpy as np
from PIL import Image

from mimo_embodied_ros.backends.processor import load_processor


def red_centroid(rgb: np.ndarray) -> tuple[float, float] | None:
    """Mean (x, y) of the saturated red pixels, or None when there are none."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    rows, cols = np.nonzero((r > 200) & (g < 60) & (b < 60))
    if rows.size == 0:
        return None
    return float(cols.mean()), float(rows.mean())


class Handler(http.server.BaseHTTPRequestHandler):
    """POST /v1/chat/completions and GET /health."""

    processor = None  # set in main()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, {"status": "ok"} if self.path == "/health" else {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        images: list[Image.Image] = []
        messages = []
        for turn in body["messages"]:
            content = []
            for item in turn["content"]:
                if item["type"] == "image_url":
                    data = item["image_url"]["url"].split(",", 1)[1]
                    images.append(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
                    content.append({"type": "image"})
                else:
                    content.append(item)
            messages.append({"role": turn["role"], "content": content})
        processor = self.processor
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[prompt], images=images or None, return_tensors="np")
        answer = "<think>no image</think>[]"
        if images:
            _, grid_h, grid_w = (int(v) for v in inputs["image_grid_thw"][0])
            size = (grid_w * 14, grid_h * 14)  # what the processor resized the image to
            seen = np.asarray(images[0].resize(size, resample=Image.BICUBIC))
            point = red_centroid(seen)
            text = messages[-1]["content"][-1]["text"]
            label = (re.search(r'description: "([^"]*)"', text) or re.search("(.*)", text))[1]
            if point is not None:
                x, y = (int(round(v)) for v in point)
                answer = (
                    f"<think>The red disk is at about ({x}, {y}) in the {size[0]}x{size[1]} "
                    f'image.</think>[{{"points": [[{x}, {y}]], "label": "{label}"}}]'
                )
        completion = len(processor.tokenizer(answer)["input_ids"])
        self._send(
            200,
            {
                "model": body.get("model", "grounding"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer},
                     "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": int(inputs["input_ids"].shape[1]),
                    "completion_tokens": completion,
                },
                "x_received": {"mm_processor_kwargs": body.get("mm_processor_kwargs")},
            },
        )

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-pixels", type=int, required=True)
    parser.add_argument("--min-pixels", type=int, default=3136)
    args = parser.parse_args(argv)
    Handler.processor = load_processor(args.model_dir, args.min_pixels, args.max_pixels)
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
