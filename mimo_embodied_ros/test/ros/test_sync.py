"""FrameSynchronizer on real sensor_msgs messages, fed directly (no ROS graph needed)."""

from __future__ import annotations

import threading

from sensor_msgs.msg import CameraInfo, Image

from mimo_embodied_ros.ros.sync import FrameSynchronizer, stamp_seconds


def stamped(kind: type, seconds: float, **fields) -> object:
    msg = kind(**fields)
    whole = int(seconds)
    msg.header.stamp.sec = whole
    msg.header.stamp.nanosec = round((seconds - whole) * 1e9)
    msg.header.frame_id = "camera_color_optical_frame"
    return msg


def image(seconds: float) -> Image:
    return stamped(Image, seconds, encoding="rgb8")


def depth(seconds: float) -> Image:
    return stamped(Image, seconds, encoding="32FC1")


def info(seconds: float, fx: float = 500.0) -> CameraInfo:
    return stamped(CameraInfo, seconds, k=[fx, 0.0, 320.0, 0.0, fx, 240.0, 0.0, 0.0, 1.0])


def test_stamp_seconds():
    assert abs(stamp_seconds(image(12.25).header.stamp) - 12.25) < 1e-9


def test_pairs_within_slop_in_either_order():
    sync = FrameSynchronizer(slop_s=0.05)
    colour, matching = image(10.0), depth(10.03)
    sync.add_image(colour)
    assert sync.latest() is None
    sync.add_depth(matching)
    frame = sync.latest()
    assert frame is not None and frame.image is colour and frame.depth is matching
    assert sync.counts["synced"] == 1

    sync = FrameSynchronizer(slop_s=0.05)
    later_colour, earlier_depth = image(20.049), depth(20.0)
    sync.add_depth(earlier_depth)
    sync.add_image(later_colour)
    frame = sync.latest()
    assert frame is not None and frame.image is later_colour and frame.depth is earlier_depth


def test_never_pairs_beyond_slop():
    sync = FrameSynchronizer(slop_s=0.05)
    for t in (1.0, 2.0, 3.0):
        sync.add_image(image(t))
        sync.add_depth(depth(t + 0.051))
    assert sync.latest() is None
    assert sync.counts == {"image": 3, "depth": 3, "camera_info": 0, "synced": 0}
    assert sync.missing() == (
        "colour and depth images arrive but their stamps never match within 50 ms"
    )


def test_newest_pair_is_chosen():
    sync = FrameSynchronizer(slop_s=0.02)
    images = {t: image(t) for t in (1.0, 1.1, 1.2, 1.3)}
    depths = {t: depth(t) for t in (1.005, 1.105, 1.2)}
    for t in (1.0, 1.1, 1.2, 1.3):  # the camera streams interleave; 1.3 has no depth yet
        sync.add_image(images[t])
        for d in [d for d in depths if abs(d - t) < 0.01]:
            sync.add_depth(depths[d])
    frame = sync.latest()
    assert frame.image is images[1.2] and frame.depth is depths[1.2]
    # The newest colour image pairs with the depth nearest to it, not an older one in slop.
    near, nearer = depth(1.315), depth(1.301)
    sync.add_depth(near)
    assert sync.latest().image is images[1.3] and sync.latest().depth is near
    sync.add_depth(nearer)
    assert sync.latest().image is images[1.3]
    assert sync.counts["synced"] == 4  # 1.0, 1.1, 1.2 and 1.3, each counted once


def test_clock_jumping_back_still_gives_the_new_frames():
    """A simulator reset or a looping bag restarts stamps; the frames after it must be used."""
    sync = FrameSynchronizer(slop_s=0.05)
    sync.add_image(image(100.0))
    sync.add_depth(depth(100.0))
    after_reset = image(0.5)
    sync.add_image(after_reset)
    sync.add_depth(depth(0.5))
    assert sync.latest().image is after_reset
    assert sync.counts["synced"] == 2


def test_queues_are_bounded():
    sync = FrameSynchronizer(slop_s=0.05, queue_size=2)
    for t in (1.0, 2.0, 3.0):
        sync.add_image(image(t))
    sync.add_depth(depth(1.0))  # its partner was pushed out of the queue
    assert sync.latest() is None
    sync.add_depth(depth(2.0))
    assert stamp_seconds(sync.latest().image.header.stamp) == 2.0


def test_missing_messages_in_order():
    sync = FrameSynchronizer(slop_s=0.05)
    assert sync.missing() == "no colour image received yet"
    sync.add_depth(depth(1.0))
    assert sync.missing() == "no colour image received yet"  # colour is reported first

    sync = FrameSynchronizer(slop_s=0.05)
    sync.add_camera_info(info(1.0))
    sync.add_image(image(1.0))
    assert sync.missing() == "no depth image received yet"
    sync.add_depth(depth(1.5))
    assert "never match within 50 ms" in sync.missing()
    sync.add_depth(depth(1.01))
    assert sync.missing() is None


def test_without_depth_every_image_is_a_frame():
    sync = FrameSynchronizer(use_depth=False)
    assert sync.missing() == "no colour image received yet"
    first, second = image(1.0), image(2.0)
    sync.add_image(first)
    assert sync.missing() is None and sync.latest().image is first
    assert sync.latest().depth is None
    sync.add_image(second)
    assert sync.latest().image is second and sync.counts["synced"] == 2


def test_camera_info_matched_to_nearest_stamp():
    sync = FrameSynchronizer(slop_s=0.05)
    sync.add_image(image(1.4))
    sync.add_depth(depth(1.4))
    assert sync.latest().camera_info is None  # none received yet: the node reports it
    infos = {t: info(t, fx=100.0 * t) for t in (0.9, 1.5, 2.0)}
    for msg in infos.values():
        sync.add_camera_info(msg)
    assert sync.latest().camera_info is infos[1.5]
    sync.add_image(image(1.95))
    sync.add_depth(depth(1.96))
    assert sync.latest().camera_info is infos[2.0]


def test_camera_info_arriving_after_the_pair_is_attached():
    sync = FrameSynchronizer(slop_s=0.05)
    sync.add_image(image(3.0))
    sync.add_depth(depth(3.0))
    late = info(3.0)
    sync.add_camera_info(late)
    assert sync.latest().camera_info is late
    assert sync.counts["camera_info"] == 1 and sync.counts["synced"] == 1


def test_concurrent_callbacks_keep_counts_and_pairs_consistent():
    sync = FrameSynchronizer(slop_s=0.001, queue_size=5)
    stamps = [1.0 + 0.01 * i for i in range(400)]

    def feed(add, make):
        for t in stamps:
            add(make(t))

    threads = [threading.Thread(target=feed, args=(sync.add_image, image)),
               threading.Thread(target=feed, args=(sync.add_depth, depth))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    frame = sync.latest()
    assert sync.counts["image"] == 400 and sync.counts["depth"] == 400
    assert abs(stamp_seconds(frame.image.header.stamp) - stamp_seconds(frame.depth.header.stamp)) \
        <= 0.001
    assert abs(stamp_seconds(frame.image.header.stamp) - stamps[-1]) < 1e-6


def test_a_late_older_pair_does_not_replace_a_newer_one():
    sync = FrameSynchronizer(slop_s=0.05)
    sync.add_image(image(2.0))
    sync.add_depth(depth(2.0))
    sync.add_image(image(1.9))  # delivered late, 100 ms older
    sync.add_depth(depth(1.9))
    assert stamp_seconds(sync.latest().image.header.stamp) == 2.0
    assert sync.counts["synced"] == 1
