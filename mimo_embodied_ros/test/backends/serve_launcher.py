"""Runs the real `transformers serve` CLI after registering the image-only Qwen2.5-VL processor.

Without torchvision, AutoProcessor cannot resolve a folder saved with the image-only processor and
falls back to the bare tokenizer; the server then treats the model as text-only and silently drops
images. Registering the processor first, in the server's own process, makes AutoProcessor return
it, so the server runs the tiny model as the vision-language model it is.

Usage: python serve_launcher.py MODEL_DIR --host 127.0.0.1 --port PORT [other serve options]
"""

from __future__ import annotations

import sys

from mimo_embodied_ros.backends.processor import register_image_only_processor


def main(argv: list[str]) -> None:
    register_image_only_processor()
    # The CLI app itself, not transformers' main(): main() first checks online for a CLI update.
    from transformers.cli.transformers import app

    app(["serve", *argv], standalone_mode=True)


if __name__ == "__main__":
    main(sys.argv[1:])
