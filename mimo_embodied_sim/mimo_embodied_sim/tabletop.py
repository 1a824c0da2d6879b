"""A headless MuJoCo tabletop seen by one RGB-D camera, with exact ground truth for tests.

The scene is generated as MJCF text in code (nothing binary is committed). Everything a test
needs to score a model answer is available in the camera optical frame used by ROS and OpenCV
(x right, y down, z forward; pixel centres at integer coordinates):

- ``intrinsics()`` matches what MuJoCo renders: fy = (H / 2) / tan(fovy / 2), fx = fy (square
  pixels), cx = (W - 1) / 2, cy = (H - 1) / 2.
- ``render_depth()`` is z-depth in metres along the optical axis (what a RealSense publishes),
  which is what MuJoCo's depth buffer linearises to (not the distance along the pixel ray).
- ``target_pixel`` / ``target_box`` come from the rendered segmentation, so they describe what is
  visible, and ``target_point_camera`` is the rendered depth back-projected at ``target_pixel``:
  the surface point a perfect model answer plus a perfect depth camera would give.

Off-screen rendering uses EGL when it works, else OSMesa (software). ``MUJOCO_GL`` set by the
caller wins. The choice is made before any OpenGL import because PyOpenGL binds its platform
once per process.
"""

from __future__ import annotations

import atexit
import math
import os
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from mimo_embodied_sim.sim_common import MujocoWorld, fmt

TABLE_TOP_Z = 0.75
"""World height of the table's top surface, metres."""

_EGL_PROBE = (
    "from mujoco.egl import GLContext\n"
    "context = GLContext(8, 8)\n"
    "context.make_current()\n"
    "context.free()\n"
)


def select_gl_backend() -> str:
    """Set MUJOCO_GL (unless the caller did) to 'egl' if an EGL context opens, else 'osmesa'.

    The probe runs in a child process: a failed EGL start cannot be undone inside this one.
    """
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        return chosen
    env = dict(os.environ, MUJOCO_GL="egl")
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _EGL_PROBE], env=env, capture_output=True, timeout=60
        )
        chosen = "egl" if probe.returncode == 0 else "osmesa"
    except (OSError, subprocess.TimeoutExpired):
        chosen = "osmesa"
    os.environ["MUJOCO_GL"] = chosen
    return chosen


select_gl_backend()

import mujoco  # noqa: E402  (MUJOCO_GL must be set before this import)

# ---------------------------------------------------------------------------------------------
# Scene description
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One primitive geom of an object, in the object's body frame (MJCF units: half sizes)."""

    name: str
    kind: str  # "box" or "cylinder"
    size: tuple[float, ...]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] | None = None  # None: the object's colour


@dataclass(frozen=True)
class _ObjectSpec:
    """An object as placed before the seeded perturbation: body origin on the table top."""

    name: str
    description: str
    colour: str
    rgba: tuple[float, float, float, float]
    xy: tuple[float, float]
    yaw: float
    movable: bool
    parts: tuple[_Part, ...]
    density: float = 500.0


def _tray_parts() -> tuple[_Part, ...]:
    half_x, half_y, wall, height, base = 0.11, 0.08, 0.005, 0.035, 0.005
    wall_z = 2 * base + height / 2
    return (
        _Part("base", "box", (half_x, half_y, base), (0.0, 0.0, base)),
        _Part("wall_front", "box", (half_x, wall, height / 2), (0.0, -half_y + wall, wall_z)),
        _Part("wall_back", "box", (half_x, wall, height / 2), (0.0, half_y - wall, wall_z)),
        _Part("wall_left", "box", (wall, half_y - 2 * wall, height / 2), (-half_x + wall, 0.0,
                                                                          wall_z)),
        _Part("wall_right", "box", (wall, half_y - 2 * wall, height / 2), (half_x - wall, 0.0,
                                                                           wall_z)),
    )


_OBJECTS: tuple[_ObjectSpec, ...] = (
    _ObjectSpec("red cube", "a red cube, 5 cm on each side", "red", (0.85, 0.1, 0.1, 1.0),
                (-0.17, -0.07), 0.3, True, (_Part("body", "box", (0.025,) * 3, (0, 0, 0.025)),)),
    _ObjectSpec("green cube", "a green cube, 5 cm on each side", "green",
                (0.1, 0.7, 0.15, 1.0), (-0.04, 0.02), -0.2, True,
                (_Part("body", "box", (0.025,) * 3, (0, 0, 0.025)),)),
    _ObjectSpec("blue cylinder", "a blue cylinder, 6 cm wide and 8 cm tall", "blue",
                (0.1, 0.25, 0.85, 1.0), (0.05, -0.11), 0.0, True,
                (_Part("body", "cylinder", (0.03, 0.04), (0, 0, 0.04)),)),
    _ObjectSpec("mug", "a white mug with its handle on the right", "white",
                (0.92, 0.92, 0.88, 1.0), (0.19, -0.03), 0.0, True,
                (_Part("body", "cylinder", (0.04, 0.0475), (0, 0, 0.0475)),
                 _Part("inside", "cylinder", (0.034, 0.0005), (0, 0, 0.095), (0.3, 0.2, 0.15, 1)),
                 _Part("handle", "box", (0.0125, 0.007, 0.028), (0.0525, 0.0, 0.05))), 400.0),
    _ObjectSpec("tray", "a grey tray with low walls that things can be put into", "grey",
                (0.45, 0.47, 0.52, 1.0), (-0.14, 0.2), 0.0, False, _tray_parts()),
    _ObjectSpec("placemat", "a flat yellow placemat, free space to put things on", "yellow",
                (0.95, 0.8, 0.25, 1.0), (0.16, 0.2), 0.0, False,
                (_Part("body", "box", (0.1, 0.07, 0.001), (0, 0, 0.001)),)),
)
_TABLE_HALF = (0.5, 0.4, 0.02)
_TABLE_CENTER_XY = (0.0, 0.05)
_CAMERA_TARGET = (0.0, 0.05, TABLE_TOP_Z)


def _geom_name(object_name: str, part: str) -> str:
    return f"{object_name.replace(' ', '_')}/{part}"


def _camera_pose(distance: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera position and MuJoCo x/y axes (right, image-up) looking at the table centre."""
    pitch = math.radians(pitch_deg)
    target = np.array(_CAMERA_TARGET)
    position = target + distance * np.array([0.0, -math.cos(pitch), math.sin(pitch)])
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return position, right, up


def build_mjcf(
    width: int, height: int, seed: int, fovy_deg: float, distance_m: float, pitch_deg: float
) -> str:
    """The scene's MJCF text; `seed` perturbs object positions (+-1.5 cm) and yaws (+-15 deg)."""
    rng = np.random.default_rng(seed)
    cam_pos, cam_x, cam_y = _camera_pose(distance_m, pitch_deg)
    table_z = TABLE_TOP_Z - _TABLE_HALF[2]
    leg_half = (TABLE_TOP_Z - 2 * _TABLE_HALF[2]) / 2
    legs = "\n".join(
        f'      <geom name="table/leg_{i}" type="box" size="0.025 0.025 {leg_half:.6g}" '
        f'pos="{sx * (_TABLE_HALF[0] - 0.05):.6g} {sy * (_TABLE_HALF[1] - 0.05):.6g} '
        f'{leg_half - table_z:.6g}" material="wood"/>'
        for i, (sx, sy) in enumerate(((-1, -1), (1, -1), (-1, 1), (1, 1)))
    )
    bodies = []
    for spec in _OBJECTS:
        dx, dy = rng.uniform(-0.015, 0.015, size=2)
        yaw = spec.yaw + rng.uniform(-math.radians(15), math.radians(15))
        pos = (spec.xy[0] + dx, spec.xy[1] + dy, TABLE_TOP_Z + (0.0005 if spec.movable else 0))
        geoms = "\n".join(
            f'      <geom name="{_geom_name(spec.name, part.name)}" type="{part.kind}" '
            f'size="{fmt(part.size)}" pos="{fmt(part.pos)}" '
            f'rgba="{fmt(part.rgba or spec.rgba)}" '
            f'density="{spec.density:.6g}"/>'
            for part in spec.parts
        )
        joint = f'      <freejoint name="{spec.name.replace(" ", "_")}/joint"/>\n' \
            if spec.movable else ""
        bodies.append(
            f'    <body name="{spec.name.replace(" ", "_")}" pos="{fmt(pos)}" '
            f'euler="0 0 {yaw:.6g}">\n{joint}{geoms}\n    </body>'
        )
    body_text = "\n".join(bodies)
    return f"""<mujoco model="mimo_tabletop">
  <compiler angle="radian"/>
  <option timestep="0.002"/>
  <statistic extent="1" center="0 0 {TABLE_TOP_Z}"/>
  <visual>
    <global offwidth="{width}" offheight="{height}"/>
    <quality shadowsize="1024"/>
    <map znear="0.05" zfar="10"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.4 0.4 0.4" specular="0.05 0.05 0.05"/>
  </visual>
  <asset>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.34 0.35 0.38"
             rgb2="0.28 0.29 0.32" width="256" height="256"/>
    <material name="floor" texture="floor" texrepeat="6 6" reflectance="0"/>
    <material name="wood" rgba="0.62 0.46 0.3 1" reflectance="0" specular="0.1"/>
  </asset>
  <worldbody>
    <light name="key" pos="0.4 -0.5 2.4" dir="-0.15 0.2 -1" diffuse="0.55 0.55 0.55"
           specular="0.1 0.1 0.1" castshadow="true"/>
    <light name="fill" pos="-0.8 0.6 2.0" dir="0.3 -0.2 -1" diffuse="0.2 0.2 0.2"
           specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" size="0 0 0.05" material="floor"/>
    <body name="table" pos="{_TABLE_CENTER_XY[0]} {_TABLE_CENTER_XY[1]} {table_z:.6g}">
      <geom name="table/top" type="box" size="{fmt(_TABLE_HALF)}" material="wood"/>
{legs}
    </body>
    <camera name="camera" pos="{fmt(cam_pos)}" xyaxes="{fmt(cam_x)} {fmt(cam_y)}"
            fovy="{fovy_deg:.6g}"/>
{body_text}
  </worldbody>
</mujoco>
"""


# ---------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectTruth:
    """One object in the camera optical frame (x right, y down, z forward), metres.

    `center_camera`, `size` and `rotation` describe the tight box around all the object's parts in
    its own frame (for the mug: body and handle): `rotation` maps object axes to camera axes.
    """

    name: str
    description: str
    object_id: int  # value of this object in render_segmentation()
    center_camera: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    colour: str
    rgba: tuple[float, float, float, float]
    parts: tuple[str, ...] = field(default=())  # "mug/handle", ...


def noisy_depth(
    depth: np.ndarray,
    hole_fraction: float = 0.0,
    noise_std_m: float = 0.0,
    seed: int = 0,
    hole_size_px: int = 1,
) -> np.ndarray:
    """A corrupted copy of a z-depth image: Gaussian noise, and holes set to NaN (no return).

    Holes are square blobs of `hole_size_px` pixels on a side (1 = speckle) covering about
    `hole_fraction` of the image, like the dropouts of a real RGB-D camera.
    """
    if not 0.0 <= hole_fraction <= 1.0:
        raise ValueError(f"hole_fraction must be in [0, 1], got {hole_fraction}")
    if noise_std_m < 0.0 or hole_size_px < 1:
        raise ValueError("noise_std_m must be >= 0 and hole_size_px >= 1")
    rng = np.random.default_rng(seed)
    out = np.array(depth, dtype=np.float32, copy=True)
    if noise_std_m > 0.0:
        out += rng.normal(0.0, noise_std_m, size=out.shape).astype(np.float32)
    if hole_fraction > 0.0:
        rows = -(-out.shape[0] // hole_size_px)
        cols = -(-out.shape[1] // hole_size_px)
        coarse = rng.random((rows, cols)) < hole_fraction
        holes = np.kron(coarse, np.ones((hole_size_px, hole_size_px), dtype=bool))
        out[holes[: out.shape[0], : out.shape[1]]] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Off-screen rendering (one GL context per scene)
# ---------------------------------------------------------------------------------------------

_LIVE_RENDERERS: weakref.WeakSet[OffscreenRenderer] = weakref.WeakSet()
_EXIT_HOOK_REGISTERED = False


def _close_live_renderers() -> None:
    for renderer in list(_LIVE_RENDERERS):
        renderer.close()


def _release_nothing() -> None:
    """OSMesa and GLFW contexts may be made current from any thread without a release."""


def _release_egl() -> None:
    """Detach the EGL context from this thread: EGL refuses to make a context current in one
    thread while another thread holds it (a ROS executor thread renders, a test reads truth)."""
    import mujoco.egl
    from mujoco.egl import egl_ext

    egl_ext.eglMakeCurrent(mujoco.egl.EGL_DISPLAY, egl_ext.EGL_NO_SURFACE,
                           egl_ext.EGL_NO_SURFACE, egl_ext.EGL_NO_CONTEXT)


class OffscreenRenderer:
    """MuJoCo's low-level render API with a GL context chosen from MUJOCO_GL."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        global _EXIT_HOOK_REGISTERED
        backend = os.environ.get("MUJOCO_GL", "egl").lower()
        self._release = _release_nothing
        if backend == "osmesa":
            from mujoco.osmesa import GLContext
        elif backend == "egl":
            from mujoco.egl import GLContext
            self._release = _release_egl
        else:
            from mujoco.glfw import GLContext
        self._model = model
        self.width, self.height = width, height
        self._gl = GLContext(width, height)
        self._gl.make_current()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=1000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "camera")
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._release()
        extent = model.stat.extent
        self._near = float(model.vis.map.znear * extent)
        self._far = float(model.vis.map.zfar * extent)
        _LIVE_RENDERERS.add(self)
        if not _EXIT_HOOK_REGISTERED:
            # Registered after the first context exists, so it runs before EGL's own exit hook.
            atexit.register(_close_live_renderers)
            _EXIT_HOOK_REGISTERED = True

    def _render(self, data: mujoco.MjData, segmentation: bool, rgb: np.ndarray,
                depth: np.ndarray | None) -> None:
        """Draw the fixed camera's view and read the buffers (rows bottom-up, OpenGL order)."""
        if self._gl is None:
            raise RuntimeError("the scene's renderer was closed")
        self._gl.make_current()
        try:
            mujoco.mjv_updateScene(self._model, data, self._option, None, self._camera,
                                   mujoco.mjtCatBit.mjCAT_ALL.value, self._scene)
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
            self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
            mujoco.mjr_render(self._rect, self._scene, self._context)
            mujoco.mjr_readPixels(rgb, depth, self._rect, self._context)
        finally:
            self._release()

    def colour(self, data: mujoco.MjData) -> np.ndarray:
        """(H, W, 3) uint8 RGB, lit, shadowed and antialiased."""
        rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self._render(data, False, rgb, None)
        return np.flipud(rgb).copy()

    def geometry(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) float32 z-depth in metres (NaN where nothing is hit) and (H, W) int32 geom ids
        (-1 where none), from one pass without multisampling, so both describe pixel centres.

        The antialiased colour pass resolves depth from one off-centre sample, which biases
        depth by a fraction of a pixel; segmentation mode renders pixel centres exactly.
        """
        colour = np.empty((self.height, self.width, 3), dtype=np.uint8)
        window_depth = np.empty((self.height, self.width), dtype=np.float32)
        self._render(data, True, colour, window_depth)
        # Reversed-Z buffer (1 at the near plane, 0 at the far plane) to metric z-depth.
        w = window_depth.astype(np.float64)
        depth = self._near * self._far / (self._near + w * (self._far - self._near))
        depth[w <= 0.0] = np.nan
        segid = (colour[..., 0].astype(np.int64) | (colour[..., 1].astype(np.int64) << 8)
                 | (colour[..., 2].astype(np.int64) << 16))
        lookup = np.full(self._scene.ngeom + 1, -1, dtype=np.int32)
        for index in range(self._scene.ngeom):
            geom = self._scene.geoms[index]
            if geom.segid >= 0 and geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                lookup[geom.segid + 1] = geom.objid
        geoms = lookup[np.clip(segid, 0, self._scene.ngeom)]
        return np.flipud(depth).astype(np.float32), np.flipud(geoms).copy()

    def close(self) -> None:
        if self._gl is not None:
            self._gl.make_current()
            self._context.free()
            self._gl.free()
            self._gl = None
        _LIVE_RENDERERS.discard(self)


# ---------------------------------------------------------------------------------------------
# The scene
# ---------------------------------------------------------------------------------------------


class TabletopScene(MujocoWorld):
    """A seeded tabletop: physics, RGB-D rendering and ground truth in the camera optical frame.

    Methods are thread-safe (one lock around physics and rendering), so a ROS timer can render
    while a test reads ground truth.
    """

    SETTLE_STEPS = 250

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        fovy_deg: float = 45.0,
        camera_distance_m: float = 0.85,
        camera_pitch_deg: float = 50.0,
        shadows: bool = True,
    ) -> None:
        """`shadows=False` roughly doubles the frame rate of software (llvmpipe) rendering."""
        if width < 8 or height < 8:
            raise ValueError(f"image size {width}x{height} is too small")
        self.width, self.height, self.seed, self.fovy_deg = width, height, seed, fovy_deg
        self.mjcf = build_mjcf(width, height, seed, fovy_deg, camera_distance_m, camera_pitch_deg)
        self.model = mujoco.MjModel.from_xml_string(self.mjcf)
        self.data = mujoco.MjData(self.model)
        if not shadows:
            self.model.light_castshadow[:] = 0
        self._lock = threading.RLock()
        self._version = 0
        self._cache: dict[str, tuple] = {}  # name -> (state version, arrays...)
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "camera")
        self._object_specs = {spec.name: spec for spec in _OBJECTS}
        self._geom_of_part: dict[str, int] = {}
        self._object_of_geom = np.zeros(self.model.ngeom, dtype=np.int32)  # 0 = scenery
        for object_id, spec in enumerate(_OBJECTS, start=1):
            for part in spec.parts:
                geom_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM,
                                            _geom_name(spec.name, part.name))
                self._geom_of_part[f"{spec.name}/{part.name}"] = geom_id
                self._object_of_geom[geom_id] = object_id
        self._geom_of_part["table/top"] = mujoco.mj_name2id(
            self.model, mujoco.mjtObj.mjOBJ_GEOM, "table/top")
        # Let the free objects settle onto the table, then call that instant t = 0.
        mujoco.mj_forward(self.model, self.data)
        for _ in range(self.SETTLE_STEPS):
            mujoco.mj_step(self.model, self.data)
        self.data.qvel[:] = 0.0
        self.data.time = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._renderer = OffscreenRenderer(self.model, width, height)

    # -- lifecycle and physics ----------------------------------------------------------------

    def step(self, n: int = 1) -> float:
        """Advance physics by `n` steps; returns the new sim time."""
        with self._lock:
            for _ in range(n):
                mujoco.mj_step(self.model, self.data)
            self._version += 1
            return self.time

    def move_object(self, name: str, position_world: np.ndarray, yaw_rad: float | None = None) -> (
        None
    ):
        """Teleport a movable object (its body origin = bottom centre) and stop it; the scripted
        stand-in for an arm executing a pick and place."""
        spec = self._spec(name)
        if not spec.movable:
            raise ValueError(f"'{name}' is fixed to the table")
        joint = self.model.joint(f"{name.replace(' ', '_')}/joint")
        with self._lock:
            qpos = self.data.qpos[joint.qposadr[0]: joint.qposadr[0] + 7]
            qpos[:3] = np.asarray(position_world, dtype=float)
            if yaw_rad is not None:
                qpos[3:] = (math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2))
            self.data.qvel[joint.dofadr[0]: joint.dofadr[0] + 6] = 0.0
            mujoco.mj_forward(self.model, self.data)
            self._version += 1

    # -- camera -------------------------------------------------------------------------------

    def camera_pose_world(self) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), rotation (3, 3)) of the optical frame in the world; the rotation's
        columns are the optical x (right), y (down) and z (forward) axes in world coordinates."""
        with self._lock:
            position = self.data.cam_xpos[self._camera_id].copy()
            mujoco_axes = self.data.cam_xmat[self._camera_id].reshape(3, 3)
            # MuJoCo cameras look along -z with y up; the optical frame flips y and z.
            return position, mujoco_axes @ np.diag([1.0, -1.0, -1.0])

    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) world points in the camera optical frame."""
        position, rotation = self.camera_pose_world()
        return (np.asarray(points_world, dtype=float) - position) @ rotation

    def camera_to_world(self, points_camera: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) camera optical-frame points in the world."""
        position, rotation = self.camera_pose_world()
        return np.asarray(points_camera, dtype=float) @ rotation.T + position

    # -- rendering ----------------------------------------------------------------------------

    def _colour(self) -> np.ndarray:
        with self._lock:
            cached = self._cache.get("colour")
            if cached is None or cached[0] != self._version:
                cached = (self._version, self._renderer.colour(self.data))
                self._cache["colour"] = cached
            return cached[1]

    def _geometry(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            cached = self._cache.get("geometry")
            if cached is None or cached[0] != self._version:
                cached = (self._version, *self._renderer.geometry(self.data))
                self._cache["geometry"] = cached
            return cached[1], cached[2]

    def render_rgbd(self) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 RGB and z-depth (H, W) float32 metres of the same instant."""
        with self._lock:
            return self._colour().copy(), self._geometry()[0].copy()

    def render_rgb(self) -> np.ndarray:
        return self._colour().copy()

    def render_depth(self) -> np.ndarray:
        """z-depth in metres along the optical axis (not ray length); NaN where nothing is hit."""
        return self._geometry()[0].copy()

    def render_geom_segmentation(self) -> np.ndarray:
        """(H, W) int32 MuJoCo geom id seen at each pixel, -1 where none."""
        return self._geometry()[1].copy()

    def render_segmentation(self) -> np.ndarray:
        """(H, W) int32 object ids (ObjectTruth.object_id); 0 = table, floor or nothing."""
        geoms = self.render_geom_segmentation()
        return np.where(geoms >= 0, self._object_of_geom[np.maximum(geoms, 0)], 0).astype(
            np.int32)

    # -- ground truth -------------------------------------------------------------------------

    def object_names(self) -> list[str]:
        return [spec.name for spec in _OBJECTS]

    def part_names(self) -> list[str]:
        """Names accepted by the target_* methods besides object names, e.g. 'mug/handle'."""
        return list(self._geom_of_part)

    def objects(self) -> list[ObjectTruth]:
        """Every object's pose and size in the camera optical frame, at the current sim time."""
        position, camera_rotation = self.camera_pose_world()
        truths = []
        with self._lock:
            for object_id, spec in enumerate(_OBJECTS, start=1):
                body = self.model.body(spec.name.replace(" ", "_"))
                low, high = self._body_frame_bounds(spec)
                body_rotation = self.data.xmat[body.id].reshape(3, 3)
                center_world = self.data.xpos[body.id] + body_rotation @ ((low + high) / 2)
                truths.append(ObjectTruth(
                    name=spec.name,
                    description=spec.description,
                    object_id=object_id,
                    center_camera=(center_world - position) @ camera_rotation,
                    size=high - low,
                    rotation=camera_rotation.T @ body_rotation,
                    colour=spec.colour,
                    rgba=spec.rgba,
                    parts=tuple(f"{spec.name}/{part.name}" for part in spec.parts),
                ))
        return truths

    def object(self, name: str) -> ObjectTruth:
        for truth in self.objects():
            if truth.name == name:
                return truth
        raise KeyError(f"no object '{name}' (known: {', '.join(self.object_names())})")

    def mask(self, name: str) -> np.ndarray:
        """(H, W) bool visible pixels of an object ('mug') or one part ('mug/handle')."""
        geoms = self.render_geom_segmentation()
        if name in self._geom_of_part:
            return geoms == self._geom_of_part[name]
        spec = self._spec(name)
        ids = [self._geom_of_part[f"{spec.name}/{part.name}"] for part in spec.parts]
        return np.isin(geoms, ids)

    def target_pixel(self, name: str) -> tuple[float, float]:
        """(u, v) centroid of the visible mask; if the centroid is off the mask (a ring-shaped
        mask), the nearest mask pixel instead. Raises if nothing of it is visible."""
        mask = self.mask(name)
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            raise ValueError(f"'{name}' is not visible from the camera")
        u, v = float(cols.mean()), float(rows.mean())
        if not mask[int(round(v)), int(round(u))]:
            nearest = np.argmin((cols - u) ** 2 + (rows - v) ** 2)
            u, v = float(cols[nearest]), float(rows[nearest])
        return u, v

    def target_box(self, name: str) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) tight box of the visible mask, inclusive pixel indices."""
        rows, cols = np.nonzero(self.mask(name))
        if rows.size == 0:
            raise ValueError(f"'{name}' is not visible from the camera")
        return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())

    def target_point_camera(self, name: str) -> np.ndarray:
        """The camera-frame surface point behind target_pixel(name): rendered depth at the
        rounded pixel, back-projected with intrinsics()."""
        u, v = self.target_pixel(name)
        column, row = int(round(u)), int(round(v))
        z = float(self.render_depth()[row, column])
        k = self.intrinsics()
        return np.array([(column - k.cx) * z / k.fx, (row - k.cy) * z / k.fy, z])

    def _spec(self, name: str) -> _ObjectSpec:
        try:
            return self._object_specs[name]
        except KeyError:
            raise KeyError(
                f"no object '{name}' (known: {', '.join(self.object_names())}; parts: "
                f"{', '.join(self.part_names())})"
            ) from None

    def _body_frame_bounds(self, spec: _ObjectSpec) -> tuple[np.ndarray, np.ndarray]:
        """Tight axis-aligned box of all the object's geoms, in its body frame."""
        corners = []
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        for part in spec.parts:
            geom_id = self._geom_of_part[f"{spec.name}/{part.name}"]
            aabb = self.model.geom_aabb[geom_id]  # centre (3) and half sizes (3), geom frame
            rotation = np.empty(9)
            mujoco.mju_quat2Mat(rotation, self.model.geom_quat[geom_id])
            local = aabb[:3] + signs * aabb[3:]
            corners.append(local @ rotation.reshape(3, 3).T + self.model.geom_pos[geom_id])
        stacked = np.concatenate(corners)
        return stacked.min(axis=0), stacked.max(axis=0)
