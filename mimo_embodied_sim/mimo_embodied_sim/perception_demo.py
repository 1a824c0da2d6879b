"""Headless demo: the perception node answers questions about the simulated tabletop camera.

    make perception-demo   # python -m mimo_embodied_sim.perception_demo --out out/perception_demo

Starts the sim_tabletop graph (MuJoCo RGB-D camera + the `mimo_embodied` node) in one process,
asks the node's ~/instruct service a few questions over DDS, saves the node's annotated debug
images as PNGs and writes out/demo/summary.json. With the default scripted backend the answers are
written from the simulator's ground truth in the model's exact output format (resized-image pixels),
so everything after the model (parsing, rescaling, depth lifting, 3D boxes) runs for real and its
error against ground truth is reported. `--backend transformers --model-path DIR` or
`--backend openai --base-url URL` asks a real MiMo-Embodied-7B instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "61")

import rclpy  # noqa: E402 - after the DDS environment is set
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from mimo_embodied_msgs.srv import Instruct  # noqa: E402
from mimo_embodied_ros.core.resize import smart_resize  # noqa: E402
from mimo_embodied_ros.core.types import ImageSize  # noqa: E402
from mimo_embodied_ros.ros.images import image_msg_to_rgb  # noqa: E402
from mimo_embodied_ros.runner import load_graph, run_graph  # noqa: E402
from mimo_embodied_sim.answers import box_answer, pointing_answer, write_answers_file  # noqa: E402
from mimo_embodied_sim.tabletop import TabletopScene  # noqa: E402

QUERY_TIMEOUT_S = 300.0  # a 7B model on CPU is slow; the scripted one answers at once
SETTLE_S = 1.5  # simulated seconds for the objects to come to rest before the first question


@dataclass(frozen=True)
class Question:
    instruction: str
    task: str  # what the scripted model is asked to do ("point" or "detect")
    target: str  # simulator object or part the answer refers to


QUESTIONS = (
    Question("where is the red cube", "detect", "red cube"),
    Question("point at the handle of the mug", "point", "mug/handle"),
    Question("where can I place the cup", "point", "placemat"),
    Question("find the blue cylinder", "detect", "blue cylinder"),
)


def scripted_answers(scene: TabletopScene, resized: ImageSize) -> dict[str, str]:
    """Model-format answers from ground truth: what a perfect MiMo-Embodied would write."""
    source = ImageSize(scene.width, scene.height)
    answers = {}
    for q in QUESTIONS:
        if q.task == "point":
            answers[q.instruction] = pointing_answer(
                [scene.target_pixel(q.target)], source, resized, q.instruction,
                reasoning=f"The {q.target.replace('/', ' ')} is what the request refers to.",
            )
        else:
            answers[q.instruction] = box_answer(
                [scene.target_box(q.target)], source, resized, q.target,
                reasoning=f"I can see the {q.target} on the table.",
            )
    return answers


def ground_truth_errors(scene: TabletopScene, q: Question, response: Instruct.Response) -> dict:
    """How far the node's output is from the simulator's truth (pixels, metres)."""
    if q.task == "point":
        if not response.affordances.points:
            return {}
        p = response.affordances.points[0]
        u, v = scene.target_pixel(q.target)
        truth = scene.target_point_camera(q.target)
        got = np.array([p.position.x, p.position.y, p.position.z])
        return {"pixel_error_px": float(np.hypot(p.u - u, p.v - v)),
                "point_error_m": float(np.linalg.norm(got - truth))}
    if not response.objects.objects:
        return {}
    o = response.objects.objects[0]
    truth = scene.object(q.target)
    center = np.array([o.center.position.x, o.center.position.y, o.center.position.z])
    size = np.array([o.size.x, o.size.y, o.size.z])
    return {"center_error_m": float(np.linalg.norm(center - truth.center_camera)),
            "size_m": size.round(4).tolist(), "true_size_m": truth.size.round(4).tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/perception_demo",
                        help="folder for PNGs and summary.json")
    parser.add_argument("--backend", default="scripted",
                        choices=("scripted", "transformers", "openai"))
    parser.add_argument("--model-path", default="", help="checkpoint folder (transformers)")
    parser.add_argument("--base-url", default="", help="OpenAI-compatible server (openai)")
    parser.add_argument("--max-pixels", type=int, default=1003520)
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    entries = load_graph("sim_tabletop.yaml")
    camera_entry = next(e for e in entries if e["name"] == "tabletop_camera")
    seed = int((camera_entry.get("overrides") or {}).get("seed", 0))
    truth = TabletopScene(seed=seed)  # same seed: the same scene as the simulator node renders
    truth.step(int(SETTLE_S / truth.timestep))
    resized = smart_resize(truth.height, truth.width, max_pixels=args.max_pixels)
    answers = scripted_answers(truth, resized)
    answers_file = write_answers_file(out / "scripted_answers.yaml", answers)

    overrides = {"backend": args.backend, "model.max_pixels": args.max_pixels,
                 "scripted.answers_file": str(answers_file.resolve()),
                 "debug_image.max_rate_hz": 100.0}
    if args.model_path:
        overrides["transformers.model_path"] = args.model_path
    if args.base_url:
        overrides["openai.base_url"] = args.base_url

    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    results = []
    try:
        with run_graph(entries, {"mimo_embodied": overrides}, context) as runner:
            results = ask_questions(runner, context, truth, out, args.backend)
    finally:
        context.try_shutdown()
        truth.close()

    summary = {
        "backend": args.backend,
        "backend_note": (
            "scripted: answers written from the simulator's ground truth in MiMo-Embodied's output "
            "format; parsing, rescaling, depth lifting and 3D boxes ran for real"
            if args.backend == "scripted" else f"{args.backend}: answers from the model"
        ),
        "image_size": [truth.width, truth.height],
        "model_image_size": [resized.width, resized.height],
        "results": results,
        "success": bool(results) and all(r["success"] for r in results),
        "wall_s": round(time.monotonic() - started, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"demo: backend '{args.backend}' answered {sum(r['success'] for r in results)}"
          f"/{len(QUESTIONS)} questions; wrote {out}/summary.json and "
          f"{len(list(out.glob('*.png')))} PNGs in {summary['wall_s']} s")
    return 0 if summary["success"] else 1


def ask_questions(runner, context: Context, truth: TabletopScene, out: Path, backend: str) -> list:
    client_node = Node("demo_client", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client_node)
    debug_images: dict[tuple[int, int], Image] = {}
    client_node.create_subscription(
        Image, "/mimo_embodied/debug_image",
        lambda m: debug_images.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m), 10)
    client = client_node.create_client(Instruct, "/mimo_embodied/instruct")
    camera = runner.nodes["tabletop_camera"]
    if not client.wait_for_service(timeout_sec=30.0):
        raise RuntimeError("the perception service did not come up")
    deadline = time.monotonic() + 60.0
    while camera.scene.time < SETTLE_S and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    results = []
    for index, q in enumerate(QUESTIONS):
        for _ in range(50):  # wait for the first frame; then every question gets an answer
            future = client.call_async(Instruct.Request(instruction=q.instruction, task=q.task))
            answer_deadline = time.monotonic() + QUERY_TIMEOUT_S
            while not future.done() and time.monotonic() < answer_deadline:
                executor.spin_once(timeout_sec=0.05)
            if not future.done():
                raise RuntimeError(f"no answer to {q.instruction!r} in {QUERY_TIMEOUT_S} s")
            response = future.result()
            if "no camera frame" not in response.message:
                break
            time.sleep(0.2)
        stamp = response.affordances.header.stamp
        key = (stamp.sec, stamp.nanosec)
        end = time.monotonic() + 3.0
        while key not in debug_images and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        png = out / f"{index:02d}_{q.instruction.replace(' ', '_')}.png"
        if key in debug_images:
            rgb = image_msg_to_rgb(debug_images[key])
            cv2.imwrite(str(png), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        result = {
            "instruction": q.instruction, "task": response.task, "success": response.success,
            "message": response.message, "backend": backend,
            "model_ms": round(response.affordances.timings.model_ms
                              if q.task == "point" else response.objects.timings.model_ms, 2),
            "points": [{"u": p.u, "v": p.v, "xyz": [p.position.x, p.position.y, p.position.z],
                        "label": p.label} for p in response.affordances.points],
            "objects": [{"label": o.label, "box_2d": list(o.box_2d),
                         "center": [o.center.position.x, o.center.position.y,
                                    o.center.position.z],
                         "size": [o.size.x, o.size.y, o.size.z], "method": o.method}
                        for o in response.objects.objects],
            "image": png.name if png.exists() else None,
        }
        if backend == "scripted":
            result["ground_truth_error"] = ground_truth_errors(truth, q, response)
        results.append(result)
        print(f"  [{backend}] {q.instruction!r}: {response.message}")
    executor.shutdown()
    client_node.destroy_node()
    return results


if __name__ == "__main__":
    sys.exit(main())
